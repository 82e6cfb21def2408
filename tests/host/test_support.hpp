#pragma once
// Test scaffolding for in-process host tests: one io_context on the test thread, hosts listening
// on 127.0.0.1:0, a "run this scenario with a deadline" helper, log capture, and event counters.
// Everything waits on events (a log line, a counter, a closed socket) with a generous deadline;
// nothing sleeps.
#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "host/host.hpp"
#include "protocols/ping.hpp"

namespace p2pmq::test {

namespace asio = host::asio;
using host::Clock;
using host::Task;
using host::tcp;

// How long any single awaited event may take. Generous: the suite runs on a loaded 2-core box,
// under ASan too. No test asserts a timing.
inline constexpr std::chrono::seconds kEventTimeout{20};
inline Clock::time_point deadline() {
  return Clock::now() + kEventTimeout;
}

// A protocol whose handler keeps every stream it accepts open and never reads past the
// negotiation: the remote's window is never credited.
inline constexpr std::string_view kHoldProtocol = "/p2pmq-test/hold/1.0.0";

// ASSERT_* returns from the function, which a coroutine cannot; these co_return instead.
// CO_ASSERT_OK takes a named Result (it is evaluated twice): never a co_await expression.
#define CO_ASSERT(cond)                            \
  do {                                             \
    if (!(cond)) {                                 \
      ADD_FAILURE() << "assertion failed: " #cond; \
      co_return;                                   \
    }                                              \
  } while (0)

#define CO_ASSERT_OK(result)                                                   \
  do {                                                                         \
    if (!(result)) {                                                           \
      ADD_FAILURE() << #result << " failed: " << (result).error().to_string(); \
      co_return;                                                               \
    }                                                                          \
  } while (0)

// Every line logged through spdlog's default logger while it lives; wakes coroutines waiting
// for a line. Only the io thread logs, so the wake-up needs no further locking.
class LogCapture {
 public:
  explicit LogCapture(asio::any_io_executor ex);
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  bool contains(std::string_view needle) const { return count(needle) > 0; }
  size_t count(std::string_view needle) const;
  // True once a line containing `needle` was logged (maybe already); false at the deadline.
  Task<bool> wait_for(std::string needle, Clock::time_point deadline);
  std::string dump() const;

 private:
  class Sink;
  std::shared_ptr<Sink> sink_;
  std::shared_ptr<spdlog::logger> previous_;
  host::Signal signal_;
};

// Counts events (connection closed, dial finished...) and lets a coroutine wait for a count.
// Held by shared_ptr: host observers outlive the scenario that registered them.
class Counter {
 public:
  explicit Counter(asio::any_io_executor ex) : signal_(ex) {}
  void bump() {
    ++n_;
    signal_.notify();
  }
  size_t count() const { return n_; }
  Task<bool> wait_for(size_t n, Clock::time_point deadline) {
    for (;;) {
      if (n_ >= n) co_return true;
      bool woken = co_await signal_.wait_until(deadline);
      if (!woken) co_return n_ >= n;
    }
  }

 private:
  size_t n_ = 0;
  host::Signal signal_;
};

// A Host with ping and the hold protocol, listening on 127.0.0.1 (ephemeral port).
struct Node {
  Node(asio::io_context& io, host::HostConfig config);
  host::Host host;
  protocols::Ping ping;
  std::vector<std::shared_ptr<host::Stream>> held;  // accepted on kHoldProtocol

  Multiaddr addr() const;  // the listen address with /p2p/
  tcp::endpoint endpoint() const;
};

class HostTest : public ::testing::Test {
 protected:
  // A started node; the fixture owns it and shuts it down after the test.
  Node& make_node(host::HostConfig config = {});
  // Runs the scenario on the io_context until it finishes; fails the test (and abandons the
  // scenario) when it does not finish in `limit`.
  void run(std::function<Task<void>()> scenario,
           std::chrono::seconds limit = std::chrono::seconds(120));
  void TearDown() override;

  // Order matters: nodes die before the log capture and the io_context they use.
  asio::io_context io;
  LogCapture logs{io.get_executor()};
  std::vector<std::unique_ptr<Node>> nodes;

 private:
  bool abandoned_ = false;
};

// Dials `to` (with its /p2p/ id) and pings once over the new connection.
Task<Result<std::shared_ptr<host::Connection>>> connect_and_ping(Node& from, Node& to);
Task<Result<void>> ping_once(Node& from, const std::shared_ptr<host::Connection>& conn);
// After a misbehaving peer was dropped: the connection opened earlier still pings, and a
// newcomer can still connect and ping.
Task<void> expect_still_serving(Node& target, Node& old_peer,
                                std::shared_ptr<host::Connection> old_conn, Node& newcomer);

}  // namespace p2pmq::test
