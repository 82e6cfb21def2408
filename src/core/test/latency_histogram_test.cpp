#include "core/latency_histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace p2pmq {
namespace {

// The value of nearest rank `percent` in sorted `v`, the definition the histogram approximates.
uint64_t exact_percentile(const std::vector<uint64_t>& v, double percent) {
  auto rank =
      static_cast<size_t>(std::ceil(percent / 100.0 * static_cast<double>(v.size()) - 1e-9));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return v[rank - 1];
}

TEST(LatencyHistogram, EmptyReadsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.percentile(50), 0u);
  EXPECT_EQ(h.mean(), 0);
  EXPECT_TRUE(h.cdf().empty());
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 0; v < 2 * LatencyHistogram::kSubBuckets; ++v) h.record(v);
  for (uint64_t v = 0; v < 2 * LatencyHistogram::kSubBuckets; ++v) {
    EXPECT_EQ(LatencyHistogram::lowest_in(LatencyHistogram::bucket_of(v)), v);
    EXPECT_EQ(LatencyHistogram::highest_in(LatencyHistogram::bucket_of(v)), v);
  }
  EXPECT_EQ(h.percentile(50), 127u);  // rank 128 of 0..255
  EXPECT_EQ(h.percentile(100), 255u);
  EXPECT_EQ(h.percentile(0), 0u);
}

TEST(LatencyHistogram, BucketsTileTheRangeWithBoundedWidth) {
  // Consecutive buckets meet without a gap or overlap, and each is at most 2^-7 of its lower
  // bound wide, up to the last bucket that ends at 2^64 - 1.
  size_t last = LatencyHistogram::bucket_of(UINT64_MAX);
  for (size_t b = 0; b < last; ++b) {
    uint64_t lo = LatencyHistogram::lowest_in(b), hi = LatencyHistogram::highest_in(b);
    ASSERT_LE(lo, hi) << b;
    ASSERT_EQ(LatencyHistogram::lowest_in(b + 1), hi + 1) << b;
    ASSERT_EQ(LatencyHistogram::bucket_of(lo), b);
    ASSERT_EQ(LatencyHistogram::bucket_of(hi), b);
    if (lo >= LatencyHistogram::kSubBuckets) {
      ASSERT_LE(hi - lo + 1, lo / LatencyHistogram::kSubBuckets) << b;
    }
  }
  EXPECT_EQ(LatencyHistogram::highest_in(last), UINT64_MAX);
}

TEST(LatencyHistogram, PercentilesWithinRelativeErrorOfExact) {
  std::mt19937_64 rng(42);
  // Log-normal like latencies: 10 us .. seconds, in nanoseconds.
  std::lognormal_distribution<double> dist(std::log(2e6), 1.5);
  std::vector<uint64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 100000; ++i) {
    auto v = static_cast<uint64_t>(dist(rng));
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    uint64_t exact = exact_percentile(values, p);
    uint64_t got = h.percentile(p);
    EXPECT_GE(got, exact) << p;
    EXPECT_LE(static_cast<double>(got - exact),
              static_cast<double>(exact) / LatencyHistogram::kSubBuckets)
        << p;
  }
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.percentile(100), values.back());
}

TEST(LatencyHistogram, PercentilesAreMonotone) {
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> dist(1e-6);
  LatencyHistogram h;
  for (int i = 0; i < 5000; ++i) h.record(static_cast<uint64_t>(dist(rng)));
  uint64_t previous = 0;
  for (double p = 0; p <= 100; p += 0.1) {
    uint64_t v = h.percentile(p);
    EXPECT_GE(v, previous) << p;
    previous = v;
  }
}

TEST(LatencyHistogram, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a, b, all;
  for (uint64_t v = 1; v < 100000; v += 37) {
    (v % 2 ? a : b).record(v * 11);
    all.record(v * 11);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  for (double p : {50.0, 90.0, 99.0, 99.9}) EXPECT_EQ(a.percentile(p), all.percentile(p));
  EXPECT_EQ(a.cdf(), all.cdf());
}

TEST(LatencyHistogram, CdfIsIncreasingAndEndsAtOne) {
  LatencyHistogram h;
  h.record(5, 3);
  h.record(1000);
  h.record(1'000'000'000);
  auto cdf = h.cdf();
  ASSERT_EQ(cdf.size(), 3u);
  EXPECT_EQ(cdf[0].first, 5u);
  EXPECT_DOUBLE_EQ(cdf[0].second, 0.6);
  EXPECT_EQ(cdf[2].first, 1'000'000'000u);  // clamped to the max recorded
  EXPECT_DOUBLE_EQ(cdf[2].second, 1.0);
  for (size_t i = 1; i < cdf.size(); ++i) {
    EXPECT_GT(cdf[i].first, cdf[i - 1].first);
    EXPECT_GT(cdf[i].second, cdf[i - 1].second);
  }
}

TEST(LatencyHistogram, ExtremeValuesDoNotOverflow) {
  LatencyHistogram h;
  h.record(0);
  h.record(UINT64_MAX);
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.percentile(50), 0u);
  EXPECT_EQ(h.percentile(100), UINT64_MAX);
}

}  // namespace
}  // namespace p2pmq
