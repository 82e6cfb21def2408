#include "crypto/hash.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace p2pmq::crypto {
namespace {

using test::hex;
using test::range;
using test::repeat;

std::string hex_of(BytesView b) {
  return to_hex(b);
}

TEST(Sha256, KnownAnswers) {
  EXPECT_EQ(hex_of(sha256({})), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex_of(sha256(as_bytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, IncrementalMatchesOneShotAndResets) {
  Bytes data = range(0, 256);
  data.insert(data.end(), data.begin(), data.end());
  Sha256 h;
  h.update(BytesView(data).first(7));
  h.update(BytesView(data).subspan(7));
  EXPECT_EQ(h.finish(), sha256(data));
  h.update(as_bytes("abc"));  // finish() left a fresh state
  EXPECT_EQ(h.finish(), sha256(as_bytes("abc")));
  Sha256 moved = std::move(h);
  moved.update(as_bytes("abc"));
  EXPECT_EQ(moved.finish(), sha256(as_bytes("abc")));
}

// RFC 4231 section 4.
TEST(HmacSha256, Rfc4231) {
  struct Case {
    Bytes key, data;
    std::string mac;
  };
  const std::string big_key_data =
      "This is a test using a larger than block-size key and a larger than block-size data. The "
      "key needs to be hashed before being used by the HMAC algorithm.";
  const Case cases[] = {
      {repeat(0x0b, 20), to_bytes("Hi There"),
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {to_bytes("Jefe"), to_bytes("what do ya want for nothing?"),
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {repeat(0xaa, 20), repeat(0xdd, 50),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {range(1, 26), repeat(0xcd, 50),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {repeat(0xaa, 131), to_bytes("Test Using Larger Than Block-Size Key - Hash Key First"),
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {repeat(0xaa, 131), to_bytes(big_key_data),
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  for (const auto& c : cases) EXPECT_EQ(hex_of(hmac_sha256(c.key, c.data)), c.mac);
  // Test case 5 is truncated to 128 bits.
  auto t5 = hmac_sha256(repeat(0x0c, 20), as_bytes("Test With Truncation"));
  EXPECT_EQ(hex_of(BytesView(t5).first(16)), "a3b6167473100ee06e0c796c2955552b");
}

TEST(HmacSha256, EmptyKey) {
  // HMAC with an empty key equals HMAC with a 32-byte zero key (both pad to 64 zero bytes).
  EXPECT_EQ(hmac_sha256({}, as_bytes("x")), hmac_sha256(Bytes(32, 0), as_bytes("x")));
}

// RFC 5869 appendix A.1-A.3.
TEST(HkdfSha256, Rfc5869) {
  EXPECT_EQ(hex_of(hmac_sha256(range(0, 13), repeat(0x0b, 22))),
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
  EXPECT_EQ(hex_of(hkdf_sha256(range(0, 13), repeat(0x0b, 22), range(0xf0, 0xfa), 42)),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
  EXPECT_EQ(hex_of(hkdf_sha256(range(0x60, 0xb0), range(0, 0x50), range(0xb0, 0x100), 82)),
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41"
            "c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87");
  EXPECT_EQ(hex_of(hkdf_sha256({}, repeat(0x0b, 22), {}, 42)),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

TEST(HkdfSha256, Lengths) {
  EXPECT_TRUE(hkdf_sha256({}, as_bytes("k"), {}, 0).empty());
  Bytes max = hkdf_sha256({}, as_bytes("k"), {}, 255 * 32);
  EXPECT_EQ(max.size(), 255u * 32);
  // A shorter request is a prefix of a longer one.
  EXPECT_EQ(hkdf_sha256({}, as_bytes("k"), {}, 64), Bytes(max.begin(), max.begin() + 64));
  EXPECT_THROW(hkdf_sha256({}, as_bytes("k"), {}, 255 * 32 + 1), std::invalid_argument);
}

}  // namespace
}  // namespace p2pmq::crypto
