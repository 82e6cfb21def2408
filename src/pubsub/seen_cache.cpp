#include "pubsub/seen_cache.hpp"

#include <algorithm>

namespace p2pmq::pubsub {

SeenCache::SeenCache(Duration ttl, size_t max_entries) : ttl_(ttl), max_entries_(max_entries) {}

bool SeenCache::add(const MessageId& id, Time now) {
  const MessageKey key = MessageKey::of(id);
  if (ids_.contains(key)) return false;
  if (max_entries_ == 0) return true;
  if (full()) {
    expire(now);  // make room from what has expired only
    if (full()) return false;
  }
  ids_.insert(key);
  order_.push_back({now, key});
  return true;
}

bool SeenCache::contains(const MessageId& id) const {
  return full() || ids_.contains(MessageKey::of(id));
}

void SeenCache::expire(Time now) {
  while (head_ < order_.size() && order_[head_].first_seen + ttl_ <= now) {
    ids_.erase(order_[head_].key);
    ++head_;
  }
  // Drop the expired prefix once it is the larger part: amortised O(1) per id, and the ring
  // never holds more than twice the live ids.
  if (head_ == order_.size()) {
    order_.clear();
    head_ = 0;
  } else if (head_ > 1024 && head_ * 2 > order_.size()) {
    order_.erase(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  // An empty cache after a burst gives its arrays back.
  if (ids_.empty() && ids_.bucket_count() > 4096) {
    decltype(ids_)().swap(ids_);
    std::vector<Entry>().swap(order_);
  }
}

}  // namespace p2pmq::pubsub
