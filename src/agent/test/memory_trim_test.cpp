#include "agent/memory_trim.hpp"

#include <gtest/gtest.h>

namespace p2pmq::agent {
namespace {

using namespace std::chrono_literals;
constexpr size_t MiB = 1 << 20;
const TrimPolicy::Clock::time_point t0{};

TEST(TrimPolicy, TrimsAfterALargeReleaseOnly) {
  TrimPolicy p(16 * MiB, 30s);
  EXPECT_FALSE(p.should_trim(2 * MiB, t0));   // baseline
  EXPECT_FALSE(p.should_trim(10 * MiB, t0));  // churn below the threshold
  EXPECT_TRUE(p.should_trim(300 * MiB, t0));  // 200 Listen streams closed
  p.trimmed(40 * MiB, t0);                    // fragments stay
  EXPECT_FALSE(p.should_trim(40 * MiB, t0 + 1s)) << "not every second for what cannot be returned";
  EXPECT_FALSE(p.should_trim(50 * MiB, t0 + 2s));
  EXPECT_TRUE(p.should_trim(60 * MiB, t0 + 3s));
}

TEST(TrimPolicy, FollowsReuseDown) {
  TrimPolicy p(16 * MiB, 30s);
  p.trimmed(40 * MiB, t0);
  EXPECT_FALSE(p.should_trim(1 * MiB, t0 + 1s));  // the free memory was reused
  EXPECT_TRUE(p.should_trim(20 * MiB, t0 + 2s));  // and freed again
}

// Pages pinned by a few live bytes (ids in a TTL cache between freed payloads) come free when
// those expire, which barely moves the free-byte count: what a trim left is retried.
TEST(TrimPolicy, RetriesWhatATrimLeftWhileItStaysAboveTheThreshold) {
  TrimPolicy p(16 * MiB, 30s);
  EXPECT_FALSE(p.should_trim(2 * MiB, t0));  // baseline
  EXPECT_TRUE(p.should_trim(30 * MiB, t0));
  p.trimmed(26 * MiB, t0);
  EXPECT_FALSE(p.should_trim(27 * MiB, t0 + 29s));
  EXPECT_TRUE(p.should_trim(27 * MiB, t0 + 30s));
  p.trimmed(27 * MiB, t0 + 30s);
  EXPECT_FALSE(p.should_trim(27 * MiB, t0 + 31s));
}

TEST(TrimPolicy, NeverRetriesBelowTheThreshold) {
  TrimPolicy p(16 * MiB, 30s);
  EXPECT_FALSE(p.should_trim(2 * MiB, t0));  // baseline
  EXPECT_TRUE(p.should_trim(20 * MiB, t0));
  p.trimmed(4 * MiB, t0);
  EXPECT_FALSE(p.should_trim(4 * MiB, t0 + 60s));
}

}  // namespace
}  // namespace p2pmq::agent
