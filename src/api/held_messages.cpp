#include "api/held_messages.hpp"

#include <algorithm>
#include <variant>

namespace p2pmq::api {

size_t footprint(const ListenItem& item) {
  if (const auto* m = std::get_if<AgentMessage>(&item))
    return sizeof(AgentMessage) + m->id.size() + m->topic.size() + m->data.size() +
           m->origin.size();
  const auto& g = std::get<GapNotice>(item);
  return sizeof(GapNotice) + g.topic.size() + g.origin.size();
}

void HeldMessages::request(const std::string& topic) {
  requested_.insert(topic);
}

void HeldMessages::release(const std::string& topic) {
  requested_.erase(topic);
  if (auto it = held_.find(topic); it != held_.end()) {
    bytes_ -= it->second.bytes;
    held_.erase(it);
  }
}

void HeldMessages::drop_oldest(Topic& t) {
  size_t n = footprint(t.items.front());
  t.items.pop_front();
  t.bytes -= n;
  bytes_ -= n;
  ++dropped_;
}

bool HeldMessages::hold(const std::string& topic, const ListenItem& item) {
  if (!requested(topic)) return false;
  auto& t = held_[topic];
  size_t n = footprint(item);
  t.items.push_back(item);
  t.bytes += n;
  bytes_ += n;
  if (t.items.size() > config_.max_messages_per_topic) drop_oldest(t);
  while (bytes_ > config_.max_bytes) {
    auto largest = std::max_element(held_.begin(), held_.end(), [](const auto& a, const auto& b) {
      return a.second.bytes < b.second.bytes;
    });
    drop_oldest(largest->second);
    if (largest->second.items.empty()) held_.erase(largest);
  }
  return true;
}

std::deque<ListenItem> HeldMessages::take(const std::string& topic) {
  auto it = held_.find(topic);
  if (it == held_.end()) return {};
  auto items = std::move(it->second.items);
  bytes_ -= it->second.bytes;
  held_.erase(it);
  return items;
}

size_t HeldMessages::items(const std::string& topic) const {
  auto it = held_.find(topic);
  return it == held_.end() ? 0 : it->second.items.size();
}

}  // namespace p2pmq::api
