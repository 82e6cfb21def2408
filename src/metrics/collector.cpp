#include "metrics/collector.hpp"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace p2pmq::metrics {

prometheus::ClientMetric& Collector::add(const std::string& name, const std::string& help,
                                         prometheus::MetricType type, const Labels& labels) {
  auto [it, inserted] = index_.try_emplace(name, families_.size());
  if (inserted) families_.push_back({name, help, type, {}});
  auto& family = families_[it->second];
  auto& metric = family.metric.emplace_back();
  for (const auto& [k, v] : labels) metric.label.push_back({k, v});
  return metric;
}

void Collector::counter(const std::string& name, const std::string& help, double value,
                        const Labels& labels) {
  add(name, help, prometheus::MetricType::Counter, labels).counter.value = value;
}

void Collector::gauge(const std::string& name, const std::string& help, double value,
                      const Labels& labels) {
  add(name, help, prometheus::MetricType::Gauge, labels).gauge.value = value;
}

void Collector::histogram(const std::string& name, const std::string& help, const Histogram& h,
                          const Labels& labels) {
  auto& m = add(name, help, prometheus::MetricType::Histogram, labels).histogram;
  m.sample_count = h.count();
  m.sample_sum = h.sum();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    cumulative += h.counts()[i];
    m.bucket.push_back({cumulative, h.bounds()[i]});
  }
  m.bucket.push_back({h.count(), std::numeric_limits<double>::infinity()});
}

std::string Collector::text() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families_);
  return out.str();
}

nlohmann::json Collector::json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& f : families_) {
    auto& series = out[f.name] = nlohmann::json::array();
    for (const auto& m : f.metric) {
      nlohmann::json labels = nlohmann::json::object();
      for (const auto& l : m.label) labels[l.name] = l.value;
      nlohmann::json s{{"labels", labels}};
      switch (f.type) {
        case prometheus::MetricType::Counter:
          s["value"] = m.counter.value;
          break;
        case prometheus::MetricType::Gauge:
          s["value"] = m.gauge.value;
          break;
        case prometheus::MetricType::Histogram:
          s["count"] = m.histogram.sample_count;
          s["sum"] = m.histogram.sample_sum;
          break;
        default:
          break;
      }
      series.push_back(std::move(s));
    }
  }
  return out;
}

Collector collect_all(const std::vector<const Probe*>& probes) {
  Collector c;
  for (const auto* p : probes) p->collect(c);
  return c;
}

}  // namespace p2pmq::metrics
