#pragma once
// The status page's chart: per-topic counters sampled at a fixed interval, the last `capacity`
// samples kept (sans-IO: the caller passes the time and the collected series). Rates are drawn by
// the page from consecutive samples. Memory is capacity x max_topics x counters, fixed.
#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metrics/collector.hpp"

namespace p2pmq::metrics {

class RateHistory {
 public:
  // `counters`: names of per-topic counter families (label "topic") to follow.
  RateHistory(std::vector<std::string> counters, size_t capacity, size_t max_topics);

  // Takes the followed counters of `series` (topics beyond max_topics, by name, are left out).
  void sample(double unix_seconds, const Collector& series);
  size_t size() const { return samples_.size(); }

  // {"interval_counters": [names], "t": [unix seconds...],
  //  "topics": {topic: {counter: [value or null per sample]}}}
  nlohmann::json json() const;

 private:
  struct Sample {
    double time = 0;
    std::map<std::string, std::vector<double>> topics;  // per topic, one value per counter
  };
  std::vector<std::string> counters_;
  size_t capacity_;
  size_t max_topics_;
  std::deque<Sample> samples_;
};

}  // namespace p2pmq::metrics
