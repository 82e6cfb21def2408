#include "core/latency_histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace p2pmq {

namespace {

// Powers of two above the exact range: 64 - kSubBucketBits of them, each kSubBuckets wide.
constexpr size_t kBuckets =
    (64 - LatencyHistogram::kSubBucketBits + 1) * LatencyHistogram::kSubBuckets;

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(kBuckets, 0) {}

size_t LatencyHistogram::bucket_of(uint64_t value) {
  if (value < kSubBuckets) return static_cast<size_t>(value);
  // shift: how many low bits the bucket ignores; top: the value's kSubBucketBits + 1 high bits.
  unsigned shift = static_cast<unsigned>(std::bit_width(value)) - 1 - kSubBucketBits;
  uint64_t top = value >> shift;  // in [kSubBuckets, 2 * kSubBuckets)
  return static_cast<size_t>(shift * kSubBuckets + top);
}

uint64_t LatencyHistogram::lowest_in(size_t bucket) {
  if (bucket < kSubBuckets) return bucket;
  uint64_t shift = bucket / kSubBuckets - 1;
  uint64_t top = bucket - shift * kSubBuckets;
  return top << shift;
}

uint64_t LatencyHistogram::highest_in(size_t bucket) {
  if (bucket < kSubBuckets) return bucket;
  uint64_t shift = bucket / kSubBuckets - 1;
  uint64_t top = bucket - shift * kSubBuckets;
  // The last bucket ends at 2^64 - 1: (top + 1) << shift wraps to 0 there, as unsigned does.
  return ((top + 1) << shift) - 1;
}

void LatencyHistogram::record(uint64_t value, uint64_t times) {
  if (times == 0) return;
  counts_[bucket_of(value)] += times;
  count_ += times;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<long double>(value) * times;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

double LatencyHistogram::mean() const {
  return count_ ? static_cast<double>(sum_ / count_) : 0;
}

uint64_t LatencyHistogram::percentile(double percent) const {
  if (count_ == 0) return 0;
  percent = std::clamp(percent, 0.0, 100.0);
  // Nearest rank; the epsilon keeps 99.9 % of 1000 at rank 999, not 1000 by rounding.
  double exact = percent / 100.0 * static_cast<double>(count_);
  uint64_t rank = static_cast<uint64_t>(std::ceil(exact - 1e-9));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(highest_in(i), max_);
  }
  return max_;
}

std::vector<std::pair<uint64_t, double>> LatencyHistogram::cdf() const {
  std::vector<std::pair<uint64_t, double>> points;
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size() && seen < count_; ++i) {
    if (counts_[i] == 0) continue;
    seen += counts_[i];
    points.emplace_back(std::min(highest_in(i), max_),
                        static_cast<double>(seen) / static_cast<double>(count_));
  }
  return points;
}

}  // namespace p2pmq
