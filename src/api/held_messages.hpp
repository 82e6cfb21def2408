#pragma once
// What the agent holds for a subscribed topic while no Listen stream of it is open
// (Control.Subscribe: "held by the agent (bounded) for the next listener"). Only topics a client
// asked for with Control.Subscribe are held: a topic joined by --topic, by the archive role, by
// a Listen stream that went away or by a publish is not, so nobody can make the agent keep
// messages that no client will read. The total is bounded in bytes (footprint()) across topics
// and in messages per topic; on overflow the oldest item of the largest topic goes first.
// Sans-IO, not thread-safe: the agent uses it from its io thread.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>

#include "api/backend.hpp"

namespace p2pmq::api {

struct HoldConfig {
  size_t max_bytes = 64 << 20;             // all topics together (grpc.max_held_bytes)
  size_t max_messages_per_topic = 10'000;  // per topic
};

// Bytes an item keeps in memory, payload and fixed part together (never 0, so a flood of empty
// messages is bounded too).
size_t footprint(const ListenItem& item);

class HeldMessages {
 public:
  explicit HeldMessages(HoldConfig config = {}) : config_(config) {}

  // A client asked for the topic (Control.Subscribe): hold it from now on.
  void request(const std::string& topic);
  // The client unsubscribed: stop holding and drop what is held.
  void release(const std::string& topic);
  bool requested(const std::string& topic) const { return requested_.contains(topic); }

  // Holds the item if the topic was requested; false when it was not held. Evicts the oldest
  // items of the largest topic while over a bound (the new item itself when it is the one).
  bool hold(const std::string& topic, const ListenItem& item);
  // What is held for the topic, oldest first; the topic stays requested.
  std::deque<ListenItem> take(const std::string& topic);

  size_t bytes() const { return bytes_; }
  size_t items(const std::string& topic) const;
  uint64_t dropped() const { return dropped_; }

 private:
  struct Topic {
    std::deque<ListenItem> items;
    size_t bytes = 0;
  };
  void drop_oldest(Topic& t);

  HoldConfig config_;
  std::set<std::string> requested_;
  std::map<std::string, Topic> held_;
  size_t bytes_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace p2pmq::api
