#pragma once
// The Kademlia routing table (libp2p/specs kad-dht "Kademlia routing table"): 256 k-buckets,
// bucket i holding peers whose KadKey shares exactly i leading bits with ours (the last one
// also takes anything closer). Sans-IO: calls carry `now`.
//
// Liveness rules (Kademlia §2.2): a full bucket keeps its peers, oldest first, because peers that
// have stayed long are likely to stay; a newcomer waits in the bucket's bounded replacement
// cache, and add() names the least recently seen peer as worth a liveness probe. A peer whose
// requests fail max_failures times in a row is evicted and the freshest replacement takes its
// place.
//
// Only peers that speak the DHT protocol in server mode belong here (spec, "Client and server
// mode"): the caller adds a peer after it answered a request, or after identify listed the
// protocol; never merely because it connected.
//
// Diversity (go-libp2p-kad-dht's routing-table peer-diversity filter, hostile-peers finding 11):
// each peer counts under the IP group its connection comes from (RequestSource::ip_group: a
// public /16, legacy /8 or IPv6 /32); a bucket holds at most max_peers_per_ip_group_per_bucket
// peers of one group and the table max_peers_per_ip_group, so Sybils on one network cannot take
// a bucket over (eclipse) while peers from other groups still get in. Over-limit peers are not
// cached either, and a replacement is promoted only if its group has room.
#include <array>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/multiaddr.hpp"
#include "dht/key.hpp"
#include "dht/types.hpp"

namespace p2pmq::dht {

struct RoutingTableConfig {
  size_t k = 20;                       // bucket size (the spec's replication parameter)
  size_t replacement_cache_size = 20;  // candidates waiting per bucket
  size_t max_failures = 2;             // consecutive failed requests before eviction
  size_t max_addrs_per_peer = 16;      // addresses remembered per peer
  Duration refresh_interval = 10min;   // a bucket not looked up for this long is stale (go: 10m)
  size_t max_refresh_cpl = 15;         // buckets past this are not refreshed: finding a key for
                                       // bucket i takes ~2^(i+1) hashes (go-libp2p-kad-dht: 15)
  // Peers of one IP group per bucket and in the whole table; 0: no limit. go-libp2p-kad-dht's
  // amino defaults (DefaultMaxPeersPerIPGroupPerCpl 2, DefaultMaxPeersPerIPGroup 3).
  size_t max_peers_per_ip_group_per_bucket = 2;
  size_t max_peers_per_ip_group = 3;
};

struct TableEntry {
  PeerId id;
  KadKey key;
  std::vector<Multiaddr> addrs;
  Time added;
  Time last_seen;  // last add() or successful response
  size_t failures = 0;
  std::string ip_group;  // diversity group it was admitted under; empty: not limited
};

// over_ip_group_limit: the peer's IP group already holds its share of the bucket or table.
enum class InsertResult { added, updated, cached, refused, over_ip_group_limit };

struct InsertOutcome {
  InsertResult result;
  // When the bucket was full: its least recently seen peer, worth a liveness check (a PING or
  // FIND_NODE); report the answer with add() or mark_failed().
  std::optional<PeerId> probe;
};

class RoutingTable {
 public:
  static constexpr size_t kBuckets = 256;

  RoutingTable(const PeerId& self, RoutingTableConfig config = {});

  // Adds or refreshes a peer that is known to be alive and in server mode. Refused: ourselves.
  // `ip_group`: the diversity group of the connection it was seen on (empty: not limited); a
  // peer already in the table keeps the group it was admitted under.
  InsertOutcome add(const PeerId& peer, std::vector<Multiaddr> addrs, Time now,
                    const std::string& ip_group = {});
  // A request to the peer failed or timed out. True when it was evicted (then a replacement,
  // if any, took its place). Unknown peers are ignored.
  bool mark_failed(const PeerId& peer);
  bool remove(const PeerId& peer);  // also from the replacement caches

  bool contains(const PeerId& peer) const { return find(peer) != nullptr; }
  const TableEntry* find(const PeerId& peer) const;
  // Up to `count` peers, closest to `target` first.
  std::vector<TableEntry> nearest(const KadKey& target, size_t count) const;

  size_t bucket_index(const KadKey& key) const;  // common prefix length with us, at most 255
  const std::vector<TableEntry>& bucket(size_t index) const { return buckets_.at(index).peers; }
  size_t replacements(size_t index) const { return buckets_.at(index).replacements.size(); }

  // Record that a lookup for `target` ran, refreshing its bucket.
  void mark_lookup(const KadKey& target, Time now);
  // Buckets (by index) due for a refresh lookup: up to the deepest non-empty one (capped at
  // max_refresh_cpl), those never looked up or not within refresh_interval.
  std::vector<size_t> stale_buckets(Time now) const;
  // When the next bucket becomes stale (nullopt: nothing to refresh).
  std::optional<Time> next_refresh(Time now) const;

  size_t size() const { return size_; }
  size_t peers_in_ip_group(const std::string& group) const;  // in the table, over all buckets
  const KadKey& local_key() const { return local_; }
  const RoutingTableConfig& config() const { return config_; }

 private:
  struct Bucket {
    std::vector<TableEntry> peers;         // least recently seen first
    std::vector<TableEntry> replacements;  // most recently seen last
    std::optional<Time> last_lookup;
  };
  size_t refresh_depth() const;
  bool group_has_room(const Bucket& b, const std::string& group) const;
  void admit(Bucket& b, TableEntry e);
  void evict(Bucket& b, std::vector<TableEntry>::iterator it);  // and promote a replacement

  PeerId self_;
  KadKey local_;
  RoutingTableConfig config_;
  std::array<Bucket, kBuckets> buckets_;
  size_t size_ = 0;
  std::map<std::string, size_t> group_peers_;  // table peers per non-empty IP group
};

}  // namespace p2pmq::dht
