#pragma once
// Logging of events a peer can trigger: rate-limited (a flood of bad streams must not become a
// flood of log lines) and escaped (peer-supplied text must not forge lines or terminal codes).
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace p2pmq::host {

// At most `burst` lines per `interval` for one kind of event; the time is an argument (sans-IO).
class LogLimit {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  explicit LogLimit(size_t burst = 10,
                    std::chrono::milliseconds interval = std::chrono::seconds(10))
      : burst_(burst), interval_(interval) {}

  // True: log this one. `suppressed()` then tells how many were dropped before it.
  bool allow(TimePoint now);
  uint64_t suppressed() const { return reported_suppressed_; }
  uint64_t total() const { return total_; }

 private:
  size_t burst_;
  std::chrono::milliseconds interval_;
  TimePoint window_start_{};
  size_t in_window_ = 0;
  uint64_t suppressed_ = 0;           // dropped since the last allowed line
  uint64_t reported_suppressed_ = 0;  // what the last allowed line should mention
  uint64_t total_ = 0;
};

// Printable ASCII kept; anything else (control characters, newlines, escape sequences, bytes
// of UTF-8) as \xNN; cut at max_length with "...".
std::string escape_for_log(std::string_view text, size_t max_length = 128);

}  // namespace p2pmq::host
