#include "core/multihash.hpp"

#include <gtest/gtest.h>

namespace p2pmq {
namespace {

Bytes hex(std::string_view h) {
  Bytes b;
  EXPECT_TRUE(from_hex(h, b)) << h;
  return b;
}

// multiformats/multihash tests/values/test_cases.csv (sha2-256 rows; truncated digests
// included) and the README's sha2-256("multihash") example.
TEST(Multihash, SpecVectors) {
  const std::pair<const char*, size_t> cases[] = {
      {"120affb31f07aa15348368c9", 10},
      {"1214ffb31f07aa15348368c90c73a834dbf9f8710365", 20},
      {"1220ffb31f07aa15348368c90c73a834dbf9f8710365860fa0fd4ddce9ac2782cc17", 32},
      {"12203afa34fba2f3572ac56d80f52002e8727dd95f17a2e7c9376a3147a96d3e78ac", 32},
      {"12209cbc07c3f991725836a3aa2a581ca2029198aa420b9d99bc0e131d9f3e2cbe47", 32},
      {"1114e861e452cfd84dca9a176258c3d06e020a0c93d8", 20},  // sha1
  };
  for (auto [h, size] : cases) {
    auto mh = Multihash::decode(hex(h));
    ASSERT_TRUE(mh) << h;
    EXPECT_EQ(mh->digest.size(), size);
    EXPECT_EQ(to_hex(mh->encode()), h);
  }
  auto mh = Multihash::decode(hex(cases[2].first));
  EXPECT_EQ(mh->code, multihash::kSha2_256);
  EXPECT_EQ(to_hex(mh->digest), "ffb31f07aa15348368c90c73a834dbf9f8710365860fa0fd4ddce9ac2782cc17");
}

TEST(Multihash, IdentityAndMultiByteCode) {
  Multihash id{multihash::kIdentity, to_bytes("hello")};
  EXPECT_EQ(to_hex(id.encode()), "000568656c6c6f");
  EXPECT_EQ(*Multihash::decode(id.encode()), id);
  // blake2b-256 = 0xb220: a two-byte code varint.
  Multihash blake{0xb220, Bytes(32, 7)};
  Bytes enc = blake.encode();
  EXPECT_EQ(to_hex(BytesView(enc).first(3)), "a0e402");
  EXPECT_EQ(*Multihash::decode(enc), blake);
}

TEST(Multihash, DecodePrefix) {
  Bytes in =
      hex("120affb31f07aa15348368c9"
          "0401");
  size_t consumed = 0;
  auto mh = Multihash::decode_prefix(in, consumed);
  ASSERT_TRUE(mh);
  EXPECT_EQ(consumed, 12u);
  EXPECT_FALSE(Multihash::decode(in));  // trailing bytes
}

TEST(Multihash, RejectsBadInput) {
  for (auto h : {"", "12", "1220", "120affb31f07aa15348368", "120affb31f07aa15348368c900",
                 "80000100", "12800100"}) {
    EXPECT_FALSE(Multihash::decode(hex(h))) << h;
  }
}

TEST(Multihash, DigestLimit) {
  Multihash ok{multihash::kIdentity, Bytes(127, 1)};
  EXPECT_TRUE(Multihash::decode(ok.encode()));
  Multihash big{multihash::kIdentity, Bytes(128, 1)};
  auto r = Multihash::decode(big.encode());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::limit_exceeded);
}

}  // namespace
}  // namespace p2pmq
