#include "core/multibase.hpp"

#include <gtest/gtest.h>

namespace p2pmq {
namespace {

using namespace std::string_literals;

std::string decode_text(std::string_view text) {
  auto r = multibase_decode(text);
  EXPECT_TRUE(r) << text << ": " << (r ? "" : r.error().to_string());
  return r ? std::string(as_string(*r)) : "";
}

// multiformats/multibase tests/basic.csv, leading_zero.csv, two_leading_zeros.csv.
struct Vector {
  std::string input;
  const char* base16;
  const char* base32;
  const char* base32upper;
  const char* base58btc;
  const char* base64url;
};
const Vector kVectors[] = {
    {"yes mani !", "f796573206d616e692021", "bpfsxgidnmfxgsibb", "BPFSXGIDNMFXGSIBB",
     "z7paNL19xttacUY", "ueWVzIG1hbmkgIQ"},
    {"\0yes mani !"s, "f00796573206d616e692021", "bab4wk4zanvqw42jaee", "BAB4WK4ZANVQW42JAEE",
     "z17paNL19xttacUY", "uAHllcyBtYW5pICE"},
    {"\0\0yes mani !"s, "f0000796573206d616e692021", "baaahszltebwwc3tjeaqq",
     "BAAAHSZLTEBWWC3TJEAQQ", "z117paNL19xttacUY", "uAAB5ZXMgbWFuaSAh"},
};

TEST(Multibase, SpecVectorsEncode) {
  for (const auto& v : kVectors) {
    EXPECT_EQ(multibase_encode(Multibase::base58btc, as_bytes(v.input)), v.base58btc);
    EXPECT_EQ(multibase_encode(Multibase::base32, as_bytes(v.input)), v.base32);
    EXPECT_EQ(multibase_encode(Multibase::base64url, as_bytes(v.input)), v.base64url);
  }
}

TEST(Multibase, SpecVectorsDecode) {
  for (const auto& v : kVectors) {
    for (const char* text : {v.base16, v.base32, v.base32upper, v.base58btc, v.base64url})
      EXPECT_EQ(decode_text(text), v.input) << text;
  }
}

// multiformats/multibase tests/case_insensitivity.csv.
TEST(Multibase, CaseInsensitivity) {
  EXPECT_EQ(decode_text("f68656c6c6f20776F726C64"), "hello world");
  EXPECT_EQ(decode_text("bnbswy3dpeB3W64TMMQ"), "hello world");
  EXPECT_EQ(decode_text("Bnbswy3dpeB3W64TMMQ"), "hello world");
}

TEST(Multibase, Empty) {
  EXPECT_EQ(base58btc_encode({}), "");
  EXPECT_EQ(base32_encode({}), "");
  EXPECT_EQ(base64url_encode({}), "");
  EXPECT_TRUE(base58btc_decode("")->empty());
  EXPECT_TRUE(base32_decode("")->empty());
  EXPECT_TRUE(base64url_decode("")->empty());
}

TEST(Multibase, Base58Zeros) {
  EXPECT_EQ(base58btc_encode(Bytes{0}), "1");
  EXPECT_EQ(base58btc_encode(Bytes{0, 0, 1}), "112");
  EXPECT_EQ(*base58btc_decode("111"), (Bytes{0, 0, 0}));
}

TEST(Multibase, RoundTripsAllLengths) {
  Bytes data;
  for (int n = 0; n < 80; ++n) {
    for (auto base : {Multibase::base58btc, Multibase::base32, Multibase::base64url}) {
      auto r = multibase_decode(multibase_encode(base, data));
      ASSERT_TRUE(r) << n;
      EXPECT_EQ(*r, data) << n;
    }
    data.push_back(static_cast<uint8_t>(n * 37 + (n % 3 == 0 ? 0 : 200)));
  }
}

TEST(Multibase, RejectsBadInput) {
  for (auto text :
       {"", "x123", "z0OIl", "bpfsxgidnmfxgsib=", "b1", "bnbswy3dpeb3w64tmmr",
        "b"
        "a",
        "ueWVzIG1hbmkgIQ==", "ueWVzIG1hbmkgIR", "u+/", "fabc", "fzz", "z7paNL19 xttacUY"}) {
    EXPECT_FALSE(multibase_decode(text)) << text;
  }
}

TEST(Multibase, UnknownPrefixIsUnsupported) {
  auto r = multibase_decode("mZm9v");  // base64 with padding-free standard alphabet
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unsupported);
}

TEST(Multibase, LengthBounds) {
  EXPECT_EQ(base58btc_decode(std::string(kMaxBase58Text + 1, '2')).error().code,
            Errc::limit_exceeded);
  EXPECT_EQ(multibase_decode("b" + std::string(kMaxMultibaseText, 'a')).error().code,
            Errc::limit_exceeded);
  // The largest base58 text accepted still decodes quickly.
  EXPECT_TRUE(base58btc_decode(std::string(kMaxBase58Text, 'z')));
}

}  // namespace
}  // namespace p2pmq
