#include "crypto/peer_id.hpp"

#include <gtest/gtest.h>

#include <set>
#include <unordered_set>

#include "core/cid.hpp"
#include "core/multibase.hpp"
#include "core/multihash.hpp"
#include "spec_vectors.hpp"
#include "test_util.hpp"

namespace p2pmq::crypto {
namespace {

using test::hex;

PublicKey key_of(std::string_view proto_hex) {
  return *PublicKey::decode(hex(proto_hex));
}

// Peer ids of the peer-ids spec's test keys, computed independently.
TEST(PeerId, SpecKeys) {
  struct Case {
    std::string_view key, base58, cid;
  };
  const Case cases[] = {
      {test::kEd25519Public, "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
       "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6"},
      {test::kSecp256k1Public, "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY",
       "bafzaajiiaijcca3xo7uzjzcsyilaj6i54cj44qk7kqzpoao5rti2pjx6udtdbp6kte"},
      {test::kEcdsaPublic, "QmVMT29id3TUASyfZZ6k9hmNyc2nYabCo4uMSpDw4zrgDk",
       "bafzbeidigywdclqvl5hxfefwp5onbffcfife7pza57mmfb4tiqmtkdjw64"},
      {test::kRsaPublic, "QmaeANgBs1DTSxWSrPPtobgQuxW8XTfsS4ydbK4rCHzqxG",
       "bafzbeifwzcumbiyql7bhv7fe7mixg6i7aohegq75k234m63bnw6dbicmzu"},
  };
  for (const auto& c : cases) {
    PublicKey key = key_of(c.key);
    PeerId id = PeerId::from_public_key(key);
    EXPECT_EQ(id.to_base58(), c.base58);
    EXPECT_EQ(id.to_string(), c.base58);
    EXPECT_EQ(id.to_cid_string(), c.cid);
    EXPECT_TRUE(id.matches(key));
    auto from_base58 = PeerId::parse(c.base58);
    auto from_cid = PeerId::parse(c.cid);
    ASSERT_TRUE(from_base58 && from_cid) << c.base58;
    EXPECT_EQ(*from_base58, id);
    EXPECT_EQ(*from_cid, id);
    auto from_bytes = PeerId::from_bytes(id.bytes());
    ASSERT_TRUE(from_bytes);
    EXPECT_EQ(*from_bytes, id);
    // Only the short keys (Ed25519, Secp256k1) are inlined.
    auto extracted = id.extract_public_key();
    if (key.encode().size() <= kMaxInlineKeySize) {
      ASSERT_TRUE(extracted);
      EXPECT_EQ(*extracted, key);
    } else {
      EXPECT_FALSE(extracted);
      EXPECT_EQ(id.bytes().size(), 34u);
    }
  }
}

TEST(PeerId, SpecExamples) {
  auto a = PeerId::parse("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
  auto b = PeerId::parse("bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(to_hex(a->bytes()),
            "12209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21bf6f0b9");
  auto ed = PeerId::parse("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA");
  ASSERT_TRUE(ed);
  auto key = ed->extract_public_key();
  ASSERT_TRUE(key);
  EXPECT_EQ(key->type(), KeyType::ed25519);
  EXPECT_TRUE(ed->matches(*key));
  EXPECT_FALSE(a->matches(*key));
}

TEST(PeerId, OtherMultibases) {
  PeerId id = PeerId::from_public_key(PrivateKey::generate().public_key());
  Cid cid{kCodecLibp2pKey, *Multihash::decode(id.bytes())};
  for (auto base : {Multibase::base58btc, Multibase::base64url}) {
    auto parsed = PeerId::parse(multibase_encode(base, cid.encode()));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, id);
  }
  std::string upper = id.to_cid_string();
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto parsed = PeerId::parse(upper);  // 'B' is upper-case base32
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, id);
}

TEST(PeerId, RejectsBadInput) {
  PeerId id = PeerId::from_public_key(key_of(test::kRsaPublic));
  Multihash mh = *Multihash::decode(id.bytes());
  const std::string bad[] = {
      "",
      "Qm",
      "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5",    // truncated digest
      "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx50",   // '0' is not base58
      "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3",  // truncated CID
      "xyz",
      std::string(kMaxPeerIdText + 1, 'Q'),
      Cid{0x55, mh}.to_string(),                                 // codec raw, not libp2p-key
      base58btc_encode(Multihash{0x13, Bytes(64, 1)}.encode()),  // sha2-512
      base58btc_encode(Multihash{multihash::kSha2_256, Bytes(20, 1)}.encode()),
      base58btc_encode(Multihash{multihash::kIdentity, {}}.encode()),
  };
  for (const auto& text : bad) EXPECT_FALSE(PeerId::parse(text)) << text;
  EXPECT_FALSE(PeerId::from_bytes({}));
  Bytes trailing = id.bytes();
  trailing.push_back(0);
  EXPECT_FALSE(PeerId::from_bytes(trailing));
}

TEST(PeerId, IdentityWithBadKeyHasNoPublicKey) {
  auto id = PeerId::from_bytes(Multihash{multihash::kIdentity, to_bytes("not a key")}.encode());
  ASSERT_TRUE(id);
  EXPECT_FALSE(id->extract_public_key());
}

TEST(PeerId, Containers) {
  PeerId a = PeerId::from_public_key(key_of(test::kEd25519Public));
  PeerId b = PeerId::from_public_key(key_of(test::kRsaPublic));
  std::unordered_set<PeerId, PeerIdHash> hashed{a, b, a};
  std::set<PeerId> ordered{a, b, b};
  EXPECT_EQ(hashed.size(), 2u);
  EXPECT_EQ(ordered.size(), 2u);
  EXPECT_NE(a, b);
  EXPECT_TRUE((a < b) != (b < a));
}

}  // namespace
}  // namespace p2pmq::crypto
