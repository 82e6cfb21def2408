#pragma once
// A fixed-bucket histogram of durations or sizes, as Prometheus models them: counts per upper
// bound, a sum and a total. Modules keep one where they time something (validation, DHT
// queries); the metrics endpoint exports it as it is. Constant memory, no allocation after
// construction.
#include <cstdint>
#include <span>
#include <vector>

namespace p2pmq {

class Histogram {
 public:
  // `bounds`: increasing upper bounds; a value above the last lands in the implicit +Inf bucket.
  explicit Histogram(std::span<const double> bounds)
      : bounds_(bounds.begin(), bounds.end()), counts_(bounds.size() + 1, 0) {}

  void observe(double value) {
    size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i]) ++i;
    ++counts_[i];
    sum_ += value;
    ++count_;
  }

  const std::vector<double>& bounds() const { return bounds_; }
  // Per bucket, not cumulative; one more than bounds() (the last is +Inf).
  const std::vector<uint64_t>& counts() const { return counts_; }
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Seconds, from a millisecond to a minute: validation and lookup latencies.
inline constexpr double kLatencyBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,      2.5,   5,    10,    30,   60};

}  // namespace p2pmq
