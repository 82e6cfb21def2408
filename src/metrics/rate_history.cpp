#include "metrics/rate_history.hpp"

#include <set>

namespace p2pmq::metrics {

RateHistory::RateHistory(std::vector<std::string> counters, size_t capacity, size_t max_topics)
    : counters_(std::move(counters)), capacity_(capacity), max_topics_(max_topics) {}

void RateHistory::sample(double unix_seconds, const Collector& series) {
  if (capacity_ == 0) return;
  Sample s{unix_seconds, {}};
  for (const auto& family : series.families()) {
    auto which = std::find(counters_.begin(), counters_.end(), family.name);
    if (which == counters_.end()) continue;
    size_t index = static_cast<size_t>(which - counters_.begin());
    for (const auto& m : family.metric) {
      auto label = std::find_if(m.label.begin(), m.label.end(),
                                [](const auto& l) { return l.name == "topic"; });
      if (label == m.label.end()) continue;
      auto it = s.topics.find(label->value);
      if (it == s.topics.end()) {
        if (s.topics.size() >= max_topics_) {
          // Keep the first max_topics_ names: drop the largest if this one sorts before it.
          if (label->value > s.topics.rbegin()->first) continue;
          s.topics.erase(std::prev(s.topics.end()));
        }
        it = s.topics.emplace(label->value, std::vector<double>(counters_.size(), -1)).first;
      }
      it->second[index] = m.counter.value;
    }
  }
  samples_.push_back(std::move(s));
  while (samples_.size() > capacity_) samples_.pop_front();
}

nlohmann::json RateHistory::json() const {
  nlohmann::json times = nlohmann::json::array();
  std::set<std::string> names;
  for (const auto& s : samples_) {
    times.push_back(s.time);
    for (const auto& [topic, values] : s.topics) names.insert(topic);
  }
  nlohmann::json topics = nlohmann::json::object();
  for (const auto& topic : names) {
    nlohmann::json per = nlohmann::json::object();
    for (size_t c = 0; c < counters_.size(); ++c) {
      nlohmann::json values = nlohmann::json::array();
      for (const auto& s : samples_) {
        auto it = s.topics.find(topic);
        if (it == s.topics.end() || it->second[c] < 0)
          values.push_back(nullptr);
        else
          values.push_back(it->second[c]);
      }
      per[counters_[c]] = std::move(values);
    }
    topics[topic] = std::move(per);
  }
  return {{"counters", counters_}, {"t", std::move(times)}, {"topics", std::move(topics)}};
}

}  // namespace p2pmq::metrics
