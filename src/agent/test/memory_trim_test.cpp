#include "agent/memory_trim.hpp"

#include <gtest/gtest.h>

namespace p2pmq::agent {
namespace {

constexpr size_t MiB = 1 << 20;

TEST(TrimPolicy, TrimsAfterALargeReleaseOnly) {
  TrimPolicy p(16 * MiB);
  EXPECT_FALSE(p.should_trim(2 * MiB));   // baseline
  EXPECT_FALSE(p.should_trim(10 * MiB));  // churn below the threshold
  EXPECT_TRUE(p.should_trim(300 * MiB));  // 200 Listen streams closed
  p.trimmed(40 * MiB);                    // fragments stay
  EXPECT_FALSE(p.should_trim(40 * MiB)) << "not every second for what cannot be returned";
  EXPECT_FALSE(p.should_trim(50 * MiB));
  EXPECT_TRUE(p.should_trim(60 * MiB));
}

TEST(TrimPolicy, FollowsReuseDown) {
  TrimPolicy p(16 * MiB);
  p.trimmed(40 * MiB);
  EXPECT_FALSE(p.should_trim(1 * MiB));  // the free memory was reused
  EXPECT_TRUE(p.should_trim(20 * MiB));  // and freed again
}

}  // namespace
}  // namespace p2pmq::agent
