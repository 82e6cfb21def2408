#include "pubsub/seen_cache.hpp"

namespace p2pmq::pubsub {

SeenCache::SeenCache(Duration ttl, size_t max_entries) : ttl_(ttl), max_entries_(max_entries) {}

bool SeenCache::add(const MessageId& id, Time now) {
  std::string key(as_string(id));
  if (ids_.contains(key)) return false;
  if (max_entries_ == 0) return true;
  if (full()) {
    expire(now);  // make room from what has expired only
    if (full()) return false;
  }
  ids_.insert(key);
  order_.emplace_back(now, std::move(key));
  return true;
}

bool SeenCache::contains(const MessageId& id) const {
  return full() || ids_.contains(std::string(as_string(id)));
}

void SeenCache::expire(Time now) {
  while (!order_.empty() && order_.front().first + ttl_ <= now) {
    ids_.erase(order_.front().second);
    order_.pop_front();
  }
}

}  // namespace p2pmq::pubsub
