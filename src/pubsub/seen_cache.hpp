#pragma once
// The seen cache: ids of messages already received, kept for a TTL from first sight so a
// message looping back through the mesh is recognised as a duplicate.
//
// Bounded by time, with a count bound that cannot enable replays: an unexpired id is never
// forgotten early (that would let a flood evict an id and the attacker replay its message).
// When max_entries unexpired ids are held, the cache reports every unknown id as seen: new
// messages are ignored (not validated, forwarded or delivered) until ids expire. A flood can
// thus delay messages for at most one TTL, never make one be processed twice.
//
// Storage is flat (a hash set and a ring in two arrays of MessageKey, no allocation per id).
#include <cstddef>
#include <cstdint>
#include <vector>

#include <boost/unordered/unordered_flat_set.hpp>

#include "pubsub/message_key.hpp"
#include "pubsub/types.hpp"

namespace p2pmq::pubsub {

class SeenCache {
 public:
  SeenCache(Duration ttl, size_t max_entries);

  // True when `id` was new and is now remembered; false when already seen, or when the cache
  // is full of unexpired ids (then it is not remembered).
  bool add(const MessageId& id, Time now);
  // Also true for every id while full.
  bool contains(const MessageId& id) const;
  // Forgets ids first seen more than ttl before `now`.
  void expire(Time now);
  size_t size() const { return ids_.size(); }
  bool full() const { return max_entries_ != 0 && ids_.size() >= max_entries_; }

 private:
  struct Entry {
    Time first_seen;
    MessageKey key;
  };

  Duration ttl_;
  size_t max_entries_;
  boost::unordered_flat_set<MessageKey, MessageKeyHash> ids_;
  std::vector<Entry> order_;  // first-seen order; entries before head_ are expired
  size_t head_ = 0;
};

}  // namespace p2pmq::pubsub
