#include "core/varint.hpp"

#include <gtest/gtest.h>

namespace p2pmq {
namespace {

Bytes hex(std::string_view h) {
  Bytes b;
  EXPECT_TRUE(from_hex(h, b));
  return b;
}

// multiformats/unsigned-varint README examples.
TEST(Varint, SpecVectors) {
  const std::pair<uint64_t, const char*> cases[] = {
      {1, "01"},     {127, "7f"},       {128, "8001"}, {255, "ff01"},
      {300, "ac02"}, {16384, "808001"}, {0, "00"},
  };
  for (auto [value, h] : cases) {
    EXPECT_EQ(to_hex(varint_bytes(value)), h) << value;
    EXPECT_EQ(varint_size(value), hex(h).size());
    auto r = varint_decode(hex(h));
    ASSERT_TRUE(r && r->has_value()) << h;
    EXPECT_EQ((*r)->value, value);
    EXPECT_EQ((*r)->length, hex(h).size());
  }
}

TEST(Varint, MaxNineBytes) {
  const uint64_t max = (uint64_t{1} << 63) - 1;
  Bytes b = varint_bytes(max);
  ASSERT_EQ(b.size(), 9u);
  auto r = varint_decode(b);
  ASSERT_TRUE(r && r->has_value());
  EXPECT_EQ((*r)->value, max);
  // 2^63 needs a 10th byte: refused.
  EXPECT_FALSE(varint_decode(varint_bytes(uint64_t{1} << 63)));
}

TEST(Varint, TrailingBytesIgnored) {
  auto r = varint_decode(hex("ac02ff"));
  ASSERT_TRUE(r && r->has_value());
  EXPECT_EQ((*r)->value, 300u);
  EXPECT_EQ((*r)->length, 2u);
}

TEST(Varint, NeedMore) {
  for (auto h : {"", "80", "ff80", "8080808080808080"}) {
    auto r = varint_decode(hex(h));
    ASSERT_TRUE(r) << h;
    EXPECT_FALSE(r->has_value()) << h;
  }
}

TEST(Varint, RejectsNonMinimalAndOverlong) {
  for (auto h : {"8000", "ff00", "808000", "808080808080808080", "80808080808080808001"}) {
    auto r = varint_decode(hex(h));
    EXPECT_FALSE(r) << h;
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::invalid_input);
    }
  }
}

}  // namespace
}  // namespace p2pmq
