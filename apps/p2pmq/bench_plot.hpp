#pragma once
// The plot of `p2pmq bench --plot FILE.svg`.
#include <string>
#include <vector>

#include "core/latency_histogram.hpp"

namespace p2pmq::cli {

// A self-contained SVG document: the latency CDF of `latency` (nanoseconds, drawn in log-scaled
// milliseconds) and the delivered and acked rates over time (msg/s per `interval_s`).
std::string bench_svg(const std::string& title, const LatencyHistogram& latency,
                      const std::vector<double>& delivered, const std::vector<double>& acked,
                      double interval_s);

}  // namespace p2pmq::cli
