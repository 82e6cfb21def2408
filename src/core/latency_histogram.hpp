#pragma once
// A log-linear histogram of non-negative integers (latencies in nanoseconds), in the manner of
// HdrHistogram: values below 2^kSubBucketBits are counted exactly; above, every power of two is
// split into 2^kSubBucketBits equal buckets, so a bucket is at most 1/2^kSubBucketBits of its
// lower bound wide. A percentile reads back the highest value of its bucket (clamped to the
// largest value recorded), at most 1/128 (0.79 %) above the value of that rank. Constant memory
// (7,424 counters for the whole uint64 range), no allocation after construction.
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace p2pmq {

class LatencyHistogram {
 public:
  // 7 bits: a relative error of at most 2^-7, like HdrHistogram with 2 significant digits.
  static constexpr unsigned kSubBucketBits = 7;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;

  LatencyHistogram();

  void record(uint64_t value, uint64_t times = 1);
  // Adds every count of `other` (per-subscriber histograms into one).
  void merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  // Exact; 0 when empty.
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const;
  // The value at or below which `percent` (0..100) of the values lie (nearest rank), as the
  // highest value its bucket holds, never above max(). 0 when empty.
  uint64_t percentile(double percent) const;
  // (highest value of the bucket, fraction of values <= it) for every non-empty bucket, in
  // increasing order; the last fraction is 1. Empty when nothing was recorded.
  std::vector<std::pair<uint64_t, double>> cdf() const;

  // The bucket of `value`, and the lowest and highest values a bucket holds (for tests).
  static size_t bucket_of(uint64_t value);
  static uint64_t lowest_in(size_t bucket);
  static uint64_t highest_in(size_t bucket);

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace p2pmq
