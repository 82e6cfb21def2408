#include "core/bytes.hpp"

#include <gtest/gtest.h>

using namespace p2pmq;

TEST(Bytes, HexRoundTrip) {
  Bytes b;
  ASSERT_TRUE(from_hex("00ff10Ab", b));
  EXPECT_EQ(to_hex(b), "00ff10ab");
  EXPECT_FALSE(from_hex("abc", b));
  EXPECT_FALSE(from_hex("zz", b));
}
