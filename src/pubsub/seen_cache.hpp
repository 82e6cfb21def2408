#pragma once
// The seen cache: ids of messages already received, kept for a TTL from first sight so a
// message looping back through the mesh is recognised as a duplicate. Bounded: when full the
// oldest id is evicted early (at worst a very old message is processed twice).
#include <cstddef>
#include <deque>
#include <string>
#include <unordered_set>
#include <utility>

#include "pubsub/types.hpp"

namespace p2pmq::pubsub {

class SeenCache {
 public:
  SeenCache(Duration ttl, size_t max_entries);

  // True when `id` was new (and is now remembered); false when already seen.
  bool add(const MessageId& id, Time now);
  bool contains(const MessageId& id) const;
  // Forgets ids first seen more than ttl before `now`.
  void expire(Time now);
  size_t size() const { return ids_.size(); }

 private:
  Duration ttl_;
  size_t max_entries_;
  std::unordered_set<std::string> ids_;
  std::deque<std::pair<Time, std::string>> order_;  // first-seen order
};

}  // namespace p2pmq::pubsub
