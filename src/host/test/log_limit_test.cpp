#include "host/log_limit.hpp"

#include <gtest/gtest.h>

namespace p2pmq::host {
namespace {

using namespace std::chrono_literals;

TEST(LogLimit, PeerTriggeredEventsAreRateLimitedAndCountSuppressedLines) {
  LogLimit limit(3, 10s);
  auto t = std::chrono::steady_clock::time_point{} + 1h;
  int logged = 0;
  for (int i = 0; i < 1000; ++i) logged += limit.allow(t + std::chrono::milliseconds(i));
  EXPECT_EQ(logged, 3);
  EXPECT_EQ(limit.total(), 1000u);
  ASSERT_TRUE(limit.allow(t + 11s));  // a new window
  EXPECT_EQ(limit.suppressed(), 997u);
}

TEST(LogLimit, PeerSuppliedTextIsEscaped) {
  EXPECT_EQ(escape_for_log("go-libp2p/0.36"), "go-libp2p/0.36");
  EXPECT_EQ(escape_for_log("a\nERROR fake line\x1b[31m"), "a\\x0aERROR fake line\\x1b[31m");
  EXPECT_EQ(escape_for_log("\\"), "\\x5c");
  EXPECT_EQ(escape_for_log(std::string(500, 'x'), 8), "xxxxxxxx...");
}

}  // namespace
}  // namespace p2pmq::host
