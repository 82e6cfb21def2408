#include "../json_seqno.hpp"

#include <gtest/gtest.h>

namespace p2pmq::cli {
namespace {

TEST(JsonSeqno, UpToTwoToThe53MinusOneIsAJsonNumber) {
  for (uint64_t s : {uint64_t{0}, uint64_t{1}, kMaxExactJsonInteger}) {
    auto j = json_seqno(s);
    ASSERT_TRUE(j.is_number_unsigned()) << s;
    EXPECT_EQ(j.dump(), std::to_string(s));
  }
}

TEST(JsonSeqno, AboveTwoToThe53IsAnExactDecimalString) {
  // 2^53 + 1 is the first integer a double cannot hold; the others: a rust seqno (unix time
  // in ns) and the largest uint64
  for (uint64_t s : {kMaxExactJsonInteger + 1, kMaxExactJsonInteger + 2,
                     uint64_t{1764780000123456789}, UINT64_MAX}) {
    auto j = json_seqno(s);
    ASSERT_TRUE(j.is_string()) << s;
    EXPECT_EQ(j.dump(), "\"" + std::to_string(s) + "\"");
  }
}

}  // namespace
}  // namespace p2pmq::cli
