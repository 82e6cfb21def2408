#pragma once
// At most one log line per interval for one kind of event, with the count of the lines it held
// back: a full disk or a flood must not turn into one error line per message. Sans-IO: the
// caller passes the time.
#include <chrono>
#include <cstdint>
#include <optional>

namespace p2pmq::agent {

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogLimiter(Clock::duration interval = std::chrono::seconds(10)) : interval_(interval) {}

  // Whether to log now; when yes, `suppressed` is how many events were held back since the
  // last line.
  bool allow(Clock::time_point now, uint64_t& suppressed) {
    if (last_ && now - *last_ < interval_) {
      ++held_back_;
      return false;
    }
    last_ = now;
    suppressed = held_back_;
    held_back_ = 0;
    return true;
  }

 private:
  Clock::duration interval_;
  std::optional<Clock::time_point> last_;
  uint64_t held_back_ = 0;
};

}  // namespace p2pmq::agent
