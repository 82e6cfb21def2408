#pragma once
// What the metrics endpoint and the status page read: every module offers its counters through a
// Probe, and one Collector gathers them at scrape time into Prometheus metric families
// (prometheus-cpp's data model and text format). Nothing is copied between scrapes: the modules'
// own counters are the source of truth.
#include <prometheus/metric_family.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/histogram.hpp"

namespace p2pmq::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Collector {
 public:
  // Names follow Prometheus conventions: p2pmq_ prefix, base units, _total for counters. The
  // same name with other labels adds a series to the family.
  void counter(const std::string& name, const std::string& help, double value,
               const Labels& labels = {});
  void gauge(const std::string& name, const std::string& help, double value,
             const Labels& labels = {});
  void histogram(const std::string& name, const std::string& help, const Histogram& h,
                 const Labels& labels = {});

  const std::vector<prometheus::MetricFamily>& families() const { return families_; }
  // The text exposition format (version 0.0.4).
  std::string text() const;
  // {"name": [{"labels": {...}, "value": v}]}; histograms give "count" and "sum".
  nlohmann::json json() const;

 private:
  prometheus::ClientMetric& add(const std::string& name, const std::string& help,
                                prometheus::MetricType type, const Labels& labels);
  std::vector<prometheus::MetricFamily> families_;
  std::map<std::string, size_t> index_;  // name -> families_ position
};

class Probe {
 public:
  virtual ~Probe() = default;
  // Adds the module's series. Runs on the thread that owns the module (the agent's io thread).
  virtual void collect(Collector& out) const = 0;
};

// Every probe's series, in order.
Collector collect_all(const std::vector<const Probe*>& probes);

}  // namespace p2pmq::metrics
