#include "pubsub/mcache.hpp"

namespace p2pmq::pubsub {

MessageCache::MessageCache(size_t history_length, size_t gossip_length, size_t max_messages)
    : gossip_length_(gossip_length), max_messages_(max_messages) {
  windows_.resize(history_length == 0 ? 1 : history_length);
}

bool MessageCache::put(const MessageId& id, const Message& message) {
  if (messages_.size() >= max_messages_) return false;
  auto [it, inserted] = messages_.try_emplace(std::string(as_string(id)), Entry{message, {}});
  if (!inserted) return false;
  windows_.front().push_back(WindowEntry{id, message.topic});
  return true;
}

const Message* MessageCache::get(const MessageId& id) const {
  auto it = messages_.find(std::string(as_string(id)));
  return it == messages_.end() ? nullptr : &it->second.message;
}

std::pair<const Message*, size_t> MessageCache::get_for_peer(const MessageId& id,
                                                             const PeerId& peer) {
  auto it = messages_.find(std::string(as_string(id)));
  if (it == messages_.end()) return {nullptr, 0};
  size_t count = ++it->second.requests[peer];
  return {&it->second.message, count};
}

std::vector<MessageId> MessageCache::gossip_ids(const TopicId& topic) const {
  std::vector<MessageId> out;
  for (size_t w = 0; w < gossip_length_ && w < windows_.size(); ++w) {
    for (const auto& entry : windows_[w]) {
      if (entry.topic == topic) out.push_back(entry.id);
    }
  }
  return out;
}

void MessageCache::shift() {
  for (const auto& entry : windows_.back()) messages_.erase(std::string(as_string(entry.id)));
  windows_.pop_back();
  windows_.emplace_front();
}

}  // namespace p2pmq::pubsub
