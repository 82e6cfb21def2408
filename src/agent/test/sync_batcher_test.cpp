#include "agent/sync_batcher.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "agent/log_limiter.hpp"

namespace p2pmq::agent {
namespace {

using namespace std::chrono_literals;

TEST(SyncBatcher, RequestsQueuedDuringASyncShareTheNextOne) {
  std::promise<void> first_started, release_first;
  auto released = release_first.get_future().share();
  std::atomic<int> calls{0};
  std::atomic<int> answered{0};
  {
    SyncBatcher batcher([&]() -> Result<void> {
      if (calls.fetch_add(1) == 0) {
        first_started.set_value();
        released.wait();  // a slow fsync
      }
      return {};
    });
    batcher.request([&](Result<void> r) { answered += r ? 1 : 0; });
    first_started.get_future().wait();
    // 50 publishes while the disk is busy: one more fsync covers them all.
    for (int i = 0; i < 50; ++i) batcher.request([&](Result<void> r) { answered += r ? 1 : 0; });
    release_first.set_value();
  }  // the destructor runs what is queued
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(answered.load(), 51);
}

TEST(SyncBatcher, FailuresReachEveryRequest) {
  std::promise<int> failed;
  SyncBatcher batcher([] { return Result<void>(fail(Errc::io, "No space left on device")); });
  batcher.request([&](Result<void> r) { failed.set_value(r ? 0 : 1); });
  EXPECT_EQ(failed.get_future().get(), 1);
}

TEST(LogLimiter, OneLinePerIntervalWithTheCountHeldBack) {
  LogLimiter limiter(10s);
  auto t = LogLimiter::Clock::time_point{} + 1h;
  uint64_t suppressed = 99;
  EXPECT_TRUE(limiter.allow(t, suppressed));
  EXPECT_EQ(suppressed, 0u);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limiter.allow(t + 1ms * i, suppressed));
  EXPECT_TRUE(limiter.allow(t + 10s, suppressed));
  EXPECT_EQ(suppressed, 1000u);
}

}  // namespace
}  // namespace p2pmq::agent
