#include "dht/routing_table.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

namespace p2pmq::dht {
namespace {

template <class Deque>
auto find_in(Deque& d, const PeerId& peer) {
  return std::find_if(d.begin(), d.end(), [&](const TableEntry& e) { return e.id == peer; });
}

}  // namespace

RoutingTable::RoutingTable(const PeerId& self, RoutingTableConfig config)
    : self_(self), local_(kad_key(self)), config_(config) {}

size_t RoutingTable::bucket_index(const KadKey& key) const {
  return std::min(common_prefix_length(local_, key), kBuckets - 1);
}

InsertOutcome RoutingTable::add(const PeerId& peer, std::vector<Multiaddr> addrs, Time now,
                                const std::string& ip_group) {
  if (peer == self_ || config_.k == 0) return {InsertResult::refused, std::nullopt};
  if (addrs.size() > config_.max_addrs_per_peer) addrs.resize(config_.max_addrs_per_peer);
  KadKey key = kad_key(peer);
  Bucket& b = buckets_[bucket_index(key)];

  if (auto it = find_in(b.peers, peer); it != b.peers.end()) {
    TableEntry e = std::move(*it);
    b.peers.erase(it);
    e.last_seen = now;
    e.failures = 0;
    if (!addrs.empty()) e.addrs = std::move(addrs);
    b.peers.push_back(std::move(e));  // now the most recently seen
    return {InsertResult::updated, std::nullopt};
  }
  if (!group_has_room(b, ip_group)) {
    // Neither admitted nor cached: waiting Sybils would take the next free slot.
    if (auto it = find_in(b.replacements, peer); it != b.replacements.end())
      b.replacements.erase(it);
    return {InsertResult::over_ip_group_limit, std::nullopt};
  }
  if (b.peers.size() < config_.k) {
    if (auto it = find_in(b.replacements, peer); it != b.replacements.end())
      b.replacements.erase(it);
    admit(b, TableEntry{peer, key, std::move(addrs), now, now, 0, ip_group});
    return {InsertResult::added, std::nullopt};
  }
  // Full: the old peers stay; the newcomer waits (freshest last, oldest dropped).
  if (auto it = find_in(b.replacements, peer); it != b.replacements.end()) {
    if (addrs.empty()) addrs = std::move(it->addrs);
    b.replacements.erase(it);
  }
  if (config_.replacement_cache_size == 0) return {InsertResult::refused, b.peers.front().id};
  if (b.replacements.size() >= config_.replacement_cache_size)
    b.replacements.erase(b.replacements.begin());
  b.replacements.push_back(TableEntry{peer, key, std::move(addrs), now, now, 0, ip_group});
  return {InsertResult::cached, b.peers.front().id};
}

bool RoutingTable::mark_failed(const PeerId& peer) {
  Bucket& b = buckets_[bucket_index(kad_key(peer))];
  auto it = find_in(b.peers, peer);
  if (it == b.peers.end()) {
    // A waiting candidate that fails is not worth keeping.
    if (auto r = find_in(b.replacements, peer); r != b.replacements.end()) b.replacements.erase(r);
    return false;
  }
  if (++it->failures < config_.max_failures) return false;
  evict(b, it);
  return true;
}

bool RoutingTable::remove(const PeerId& peer) {
  Bucket& b = buckets_[bucket_index(kad_key(peer))];
  if (auto r = find_in(b.replacements, peer); r != b.replacements.end()) b.replacements.erase(r);
  auto it = find_in(b.peers, peer);
  if (it == b.peers.end()) return false;
  evict(b, it);
  return true;
}

bool RoutingTable::group_has_room(const Bucket& b, const std::string& group) const {
  if (group.empty()) return true;
  if (config_.max_peers_per_ip_group != 0 &&
      peers_in_ip_group(group) >= config_.max_peers_per_ip_group)
    return false;
  if (config_.max_peers_per_ip_group_per_bucket == 0) return true;
  auto in_bucket = std::count_if(b.peers.begin(), b.peers.end(),
                                 [&](const TableEntry& e) { return e.ip_group == group; });
  return static_cast<size_t>(in_bucket) < config_.max_peers_per_ip_group_per_bucket;
}

void RoutingTable::admit(Bucket& b, TableEntry e) {
  if (!e.ip_group.empty()) ++group_peers_[e.ip_group];
  b.peers.push_back(std::move(e));
  ++size_;
}

void RoutingTable::evict(Bucket& b, std::vector<TableEntry>::iterator it) {
  if (!it->ip_group.empty()) {
    auto g = group_peers_.find(it->ip_group);
    if (g != group_peers_.end() && --g->second == 0) group_peers_.erase(g);
  }
  b.peers.erase(it);
  --size_;
  // The freshest replacement whose group has room now; the others keep waiting.
  for (auto r = b.replacements.rbegin(); r != b.replacements.rend(); ++r) {
    if (!group_has_room(b, r->ip_group)) continue;
    TableEntry e = std::move(*r);
    b.replacements.erase(std::next(r).base());
    admit(b, std::move(e));
    return;
  }
}

size_t RoutingTable::peers_in_ip_group(const std::string& group) const {
  auto it = group_peers_.find(group);
  return it == group_peers_.end() ? 0 : it->second;
}

const TableEntry* RoutingTable::find(const PeerId& peer) const {
  const Bucket& b = buckets_[bucket_index(kad_key(peer))];
  auto it = find_in(b.peers, peer);
  return it == b.peers.end() ? nullptr : &*it;
}

std::vector<TableEntry> RoutingTable::nearest(const KadKey& target, size_t count) const {
  // At most 256 * k entries: a full scan is simple and fast enough (TODO(perf) walk buckets
  // outward from the target's if tables grow).
  std::vector<std::pair<Distance, const TableEntry*>> all;
  all.reserve(size_);
  for (const auto& b : buckets_)
    for (const auto& e : b.peers) all.emplace_back(xor_distance(target, e.key), &e);
  count = std::min(count, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(count), all.end(),
                    [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<TableEntry> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) out.push_back(*all[i].second);
  return out;
}

void RoutingTable::mark_lookup(const KadKey& target, Time now) {
  buckets_[bucket_index(target)].last_lookup = now;
}

size_t RoutingTable::refresh_depth() const {
  size_t deepest = 0;
  for (size_t i = 0; i < kBuckets; ++i)
    if (!buckets_[i].peers.empty()) deepest = i;
  return std::min(deepest, config_.max_refresh_cpl);
}

std::vector<size_t> RoutingTable::stale_buckets(Time now) const {
  std::vector<size_t> out;
  if (size_ == 0) return out;  // nothing to refresh from; bootstrap first
  for (size_t i = 0; i <= refresh_depth(); ++i) {
    const auto& last = buckets_[i].last_lookup;
    if (!last || now - *last >= config_.refresh_interval) out.push_back(i);
  }
  return out;
}

std::optional<Time> RoutingTable::next_refresh(Time now) const {
  if (size_ == 0) return std::nullopt;
  std::optional<Time> next;
  for (size_t i = 0; i <= refresh_depth(); ++i) {
    const auto& last = buckets_[i].last_lookup;
    Time due = last ? *last + config_.refresh_interval : now;
    if (!next || due < *next) next = due;
  }
  return next;
}

}  // namespace p2pmq::dht
