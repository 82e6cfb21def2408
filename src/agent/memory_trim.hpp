#pragma once
// When to give freed heap memory back to the OS (glibc keeps what was freed in its arenas:
// after a Listen stream or a peer holding hundreds of MB goes away, RSS stays at the peak).
// The agent asks once a second with the allocator's free bytes; the answer is yes when they
// grew by more than `threshold` over the lowest level seen since the last trim, i.e. after a
// large release, not while memory is merely reused. Sans-IO: the agent's timer calls
// malloc_trim (apps/p2pmq/agent.cpp).
#include <algorithm>
#include <cstddef>
#include <limits>

namespace p2pmq::agent {

class TrimPolicy {
 public:
  explicit TrimPolicy(size_t threshold = 16 << 20) : threshold_(threshold) {}

  // `free_bytes`: the allocator's free (not yet returned) bytes now.
  bool should_trim(size_t free_bytes) {
    low_ = std::min(low_, free_bytes);
    return free_bytes > low_ + threshold_;
  }
  // After a trim: what stays free (fragments it could not return) is the new floor.
  void trimmed(size_t free_bytes_after) { low_ = free_bytes_after; }

 private:
  size_t threshold_;
  size_t low_ = std::numeric_limits<size_t>::max();
};

}  // namespace p2pmq::agent
