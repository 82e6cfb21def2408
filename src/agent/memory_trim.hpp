#pragma once
// When to give freed heap memory back to the OS (glibc keeps what was freed in its arenas:
// after a Listen stream or a peer holding hundreds of MB goes away, RSS stays at the peak).
// The agent asks once a second with the allocator's free bytes; the answer is yes when they
// grew by more than `threshold` over the lowest level seen since the last trim, i.e. after a
// large release, not while memory is merely reused. A trim returns only whole free pages, and
// the allocator still counts returned pages as free, so what a trim left is retried every
// `retry` while it stays above the threshold: pages pinned by a few live bytes come free
// when those expire (a TTL cache), without the free-byte count moving. Sans-IO: the agent's
// timer calls malloc_trim (apps/p2pmq/agent.cpp).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <limits>
#include <optional>

namespace p2pmq::agent {

class TrimPolicy {
 public:
  using Clock = std::chrono::steady_clock;

  explicit TrimPolicy(size_t threshold = 16 << 20, Clock::duration retry = std::chrono::seconds(10))
      : threshold_(threshold), retry_(retry) {}

  // `free_bytes`: the allocator's free (not yet returned) bytes now.
  bool should_trim(size_t free_bytes, Clock::time_point now) {
    low_ = std::min(low_, free_bytes);
    if (free_bytes > low_ + threshold_) return true;
    return last_trim_ && free_bytes > threshold_ && now - *last_trim_ >= retry_;
  }
  // After a trim: what stays free (fragments it could not return) is the new floor.
  void trimmed(size_t free_bytes_after, Clock::time_point now) {
    low_ = free_bytes_after;
    last_trim_ = now;
  }

 private:
  size_t threshold_;
  Clock::duration retry_;
  size_t low_ = std::numeric_limits<size_t>::max();
  std::optional<Clock::time_point> last_trim_;
};

}  // namespace p2pmq::agent
