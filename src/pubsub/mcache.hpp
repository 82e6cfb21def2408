#pragma once
// The message cache ("mcache", gossipsub v1.0): messages seen in the last `history_length`
// heartbeat windows, served in reply to IWANT; the newest `gossip_length` windows are
// advertised in IHAVE. Bounded by max_messages: beyond it new messages are still routed but not
// cached (so not gossiped).
#include <cstddef>
#include <deque>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pubsub/types.hpp"

namespace p2pmq::pubsub {

class MessageCache {
 public:
  MessageCache(size_t history_length, size_t gossip_length, size_t max_messages);

  // False when already cached or the cache is full.
  bool put(const MessageId& id, const Message& message);
  const Message* get(const MessageId& id) const;
  // The message and how many times `peer` has now asked for it (this request included), so the
  // router can refuse excessive retransmissions. {nullptr, 0} when not cached.
  std::pair<const Message*, size_t> get_for_peer(const MessageId& id, const PeerId& peer);
  // Ids of `topic` in the gossip windows, newest window first.
  std::vector<MessageId> gossip_ids(const TopicId& topic) const;
  // Starts a new window and drops the oldest one.
  void shift();
  size_t size() const { return messages_.size(); }

 private:
  struct Entry {
    Message message;
    std::map<PeerId, size_t> requests;  // IWANT count per peer (bounded by connected peers)
  };
  struct WindowEntry {
    MessageId id;
    TopicId topic;
  };
  size_t gossip_length_;
  size_t max_messages_;
  std::unordered_map<std::string, Entry> messages_;
  std::deque<std::vector<WindowEntry>> windows_;  // front = newest
};

}  // namespace p2pmq::pubsub
