#include "core/cid.hpp"

#include <gtest/gtest.h>

#include "core/multibase.hpp"

namespace p2pmq {
namespace {

// Peer id pairs (legacy base58btc multihash, CIDv1 libp2p-key in base32): the first from
// libp2p/specs peer-ids.md, the others from go-multiaddr's tests, each checked by decoding
// the base58 text and re-encoding it as a CID independently of this code.
struct PeerIdPair {
  const char* base58;
  const char* cid;
};
const PeerIdPair kPairs[] = {
    {"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
     "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe"},
    {"QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
     "bafzbeigvf25ytwc3akrijfecaotc74udrhcxzh2cx3we5qqnw5vgrei4bm"},
    {"12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV",
     "bafzaajaiaejcalj543iwv2d7pkjt7ykvefrkfu7qjfi6sduakhso4lay6abn2d5u"},
    {"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
     "bafzaajaiaejcal72gwuz2or47oyxxn6b3rkwdmmkrxgkjxzy3rqt5kczyn7lcm3l"},
};

TEST(Cid, PeerIdPairs) {
  for (const auto& pair : kPairs) {
    auto mh_bytes = base58btc_decode(pair.base58);
    ASSERT_TRUE(mh_bytes);
    auto mh = Multihash::decode(*mh_bytes);
    ASSERT_TRUE(mh);
    Cid cid{kCodecLibp2pKey, *mh};
    EXPECT_EQ(cid.to_string(), pair.cid);
    auto parsed = Cid::parse(pair.cid);
    ASSERT_TRUE(parsed) << pair.cid;
    EXPECT_EQ(*parsed, cid);
    EXPECT_EQ(base58btc_encode(parsed->hash.encode()), pair.base58);
  }
}

TEST(Cid, Ed25519PeerIdUsesIdentityHash) {
  auto cid = Cid::parse(kPairs[2].cid);
  ASSERT_TRUE(cid);
  EXPECT_EQ(cid->codec, kCodecLibp2pKey);
  EXPECT_EQ(cid->hash.code, multihash::kIdentity);
  EXPECT_EQ(cid->hash.digest.size(), 36u);  // protobuf PublicKey{Ed25519, 32 bytes}
}

TEST(Cid, BinaryForm) {
  auto cid = Cid::parse(kPairs[0].cid);
  ASSERT_TRUE(cid);
  Bytes enc = cid->encode();
  EXPECT_EQ(to_hex(BytesView(enc).first(4)), "01721220");
  EXPECT_EQ(*Cid::decode(enc), *cid);
}

TEST(Cid, OtherMultibases) {
  auto cid = Cid::parse(kPairs[0].cid);
  ASSERT_TRUE(cid);
  for (auto base : {Multibase::base58btc, Multibase::base64url}) {
    auto again = Cid::parse(multibase_encode(base, cid->encode()));
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, *cid);
  }
}

TEST(Cid, RejectsV0AndOtherVersions) {
  auto v0 = Cid::parse("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
  ASSERT_FALSE(v0);
  EXPECT_EQ(v0.error().code, Errc::unsupported);
  auto v0_bytes = Cid::decode(*base58btc_decode("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"));
  ASSERT_FALSE(v0_bytes);
  EXPECT_EQ(v0_bytes.error().code, Errc::unsupported);
  Bytes v2 = Cid::parse(kPairs[0].cid)->encode();
  v2[0] = 2;
  auto r = Cid::decode(v2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unsupported);
}

TEST(Cid, RejectsMalformed) {
  Bytes enc = Cid::parse(kPairs[0].cid)->encode();
  for (size_t n = 0; n < enc.size(); ++n) EXPECT_FALSE(Cid::decode(BytesView(enc).first(n))) << n;
  enc.push_back(0);
  EXPECT_FALSE(Cid::decode(enc));
  EXPECT_FALSE(Cid::parse(""));
  EXPECT_FALSE(Cid::parse("b"));
  EXPECT_FALSE(Cid::parse("bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqx"));
}

}  // namespace
}  // namespace p2pmq
