#pragma once
// The Kademlia DHT node as a sans-IO core (libp2p/specs kad-dht): the server-side request
// handler, the routing table and stores it answers from, the builders of client lookups, and
// the maintenance schedule (bootstrap, bucket refresh, provider republish, store expiry).
// Nothing here does IO or reads a clock; the adapter on the host (see the end of this file)
// drives it.
#include <cstddef>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.hpp"
#include "dht/codec.hpp"
#include "dht/key.hpp"
#include "dht/query.hpp"
#include "dht/routing_table.hpp"
#include "dht/store.hpp"
#include "dht/types.hpp"

namespace p2pmq::dht {

// Token bucket per requesting peer.
struct RateLimitConfig {
  double requests_per_second = 20;
  double burst = 100;
  size_t max_tracked_peers = 10'000;
};

struct DhtConfig {
  Mode mode = Mode::server;
  std::string protocol_prefix = std::string(kP2pmqPrefix);  // "/ipfs" joins public DHTs
  RoutingTableConfig table;
  QueryConfig query;
  ProviderStoreConfig providers;
  RecordStoreConfig records;
  KadLimits limits;
  RateLimitConfig rate;
  size_t max_provider_key_size = 80;   // go-libp2p-kad-dht refuses longer provider keys
  Duration bootstrap_interval = 5min;  // spec: self lookup (and stale buckets) this often
  Duration cleanup_interval = 1h;      // store expiry sweep (spec: "e.g. every hour")
  size_t max_provided_keys = 10'000;   // keys we advertise ourselves
  uint64_t seed = 0;                   // random refresh keys
};

// Names the first bad key, e.g. "dht.query.alpha: must be > 0".
Result<void> validate(const DhtConfig& config);

// Provider keys are multihashes (spec). A CIDv1 is accepted and reduced to its multihash, so a
// peer that sends the CID finds the same record. nullopt: neither.
std::optional<Bytes> provider_key(BytesView key);

// What on_timer() asks the adapter to do.
struct Maintenance {
  bool dial_bootstrappers = false;  // the table is empty at a bootstrap tick: (re)connect
  std::vector<Bytes> lookups;       // run FIND_NODE queries for these keys (self, bucket refresh)
  std::vector<Bytes> provides;      // (re)announce: FIND_NODE the key, ADD_PROVIDER to the closest
};

struct DhtCounters {
  uint64_t requests = 0;
  uint64_t rate_limited = 0;
  uint64_t refused = 0;  // invalid, foreign ADD_PROVIDER, store limits, bad records
};

class Dht {
 public:
  Dht(PeerId self, DhtConfig config = {});

  const PeerId& self() const { return self_; }
  Mode mode() const { return config_.mode; }
  std::string protocol_id() const { return kad_protocol_id(config_.protocol_prefix); }
  const DhtConfig& config() const { return config_; }

  // ---- Server side ---------------------------------------------------------------------
  // The answer to one decoded request: a message to write back, nullopt when the request has
  // none (ADD_PROVIDER), or an error after which the adapter resets the stream (rate limit,
  // client mode, a malformed or refused request).
  // `source` is where the request's connection comes from (request_source() of its remote
  // address): ADD_PROVIDER is counted against its IP and subnet, and filtered by its scope.
  Result<std::optional<KadMessage>> handle_request(const PeerId& from, const KadMessage& req,
                                                   Time now, const RequestSource& source = {});

  // ---- Peers ---------------------------------------------------------------------------
  // A peer answered one of our requests, or identify showed it serves the protocol (server
  // mode). Client-mode peers are never added. `source`: the connection it was seen on, whose
  // IP group the table's diversity limits count (default: not from the network, not limited).
  InsertOutcome on_peer_alive(const PeerId& peer, std::vector<Multiaddr> addrs, Time now,
                              const RequestSource& source = {});
  bool on_peer_failed(const PeerId& peer) { return table_.mark_failed(peer); }

  // ---- Client side ---------------------------------------------------------------------
  // Lookups seeded with the k closest peers of our table (get_value's record filter refers to
  // this Dht: the Query must not outlive it). The caller drives the Query and, for
  // each responder, calls on_peer_alive; for each failure, on_peer_failed.
  Query find_node(BytesView key, Time now);
  Query get_providers(BytesView key, Time now, size_t wanted = 0);
  Query get_value(BytesView key, Time now, size_t quorum = 0);  // records filtered by validate
  KadMessage add_provider_message(BytesView key, std::vector<Multiaddr> self_addrs) const;
  KadMessage put_value_message(const KadRecord& record) const;

  // Topic discovery: advertise ourselves under topic_key(topic) while subscribed.
  Result<void> start_providing(BytesView key, Time now);
  void stop_providing(BytesView key);
  Result<void> provide_topic(std::string_view topic, Time now) {
    return start_providing(topic_key(topic), now);
  }
  void unprovide_topic(std::string_view topic) { stop_providing(topic_key(topic)); }
  // Lookup for the providers of a topic (peers subscribed to it).
  Query find_topic_peers(std::string_view topic, Time now, size_t wanted) {
    return get_providers(topic_key(topic), now, wanted);
  }
  size_t provided_keys() const { return providing_.size(); }

  // ---- Maintenance ---------------------------------------------------------------------
  // The first call (and every bootstrap_interval) asks for a self lookup; stale buckets get a
  // random-key lookup; provided keys are re-announced every republish_interval; expired store
  // entries are dropped every cleanup_interval. Call at start, then when now >= next_deadline().
  Maintenance on_timer(Time now);
  std::optional<Time> next_deadline() const;

  RoutingTable& table() { return table_; }
  const RoutingTable& table() const { return table_; }
  ProviderStore& providers() { return providers_; }
  // Up to `max` providers of `key` we store, a random subset (the store's get with our RNG).
  std::vector<KadPeer> stored_providers(const Bytes& key, Time now, size_t max) {
    return providers_.get(key, now, max, rng_);
  }
  RecordStore& records() { return records_; }
  const DhtCounters& counters() const { return counters_; }

 private:
  struct Bucket {
    double tokens;
    Time last;
  };
  bool allow(const PeerId& from, Time now);
  std::vector<KadPeer> closer_peers(BytesView key, const PeerId& requester) const;
  Result<std::optional<KadMessage>> handle(const PeerId& from, const KadMessage& req, Time now,
                                           const RequestSource& source);
  std::vector<KadPeer> seeds(const KadKey& target) const;

  PeerId self_;
  DhtConfig config_;
  RoutingTable table_;
  ProviderStore providers_;
  RecordStore records_;
  std::unordered_map<PeerId, Bucket, PeerIdHash> rate_;
  std::map<Bytes, Time> providing_;  // key -> next announcement
  std::optional<Time> next_bootstrap_;
  std::optional<Time> next_cleanup_;
  Time last_timer_{};
  std::mt19937_64 rng_;
  DhtCounters counters_;
};

// The IO adapter (src/dht/io/, next): registers protocol_id() on the host in server and
// bootstrapper modes only (and so advertises it through identify); for each inbound stream
// reads framed requests with a MessageReader (several per stream), answers with
// handle_request() and append_framed(), resets the stream on any error; for outbound requests
// opens one stream per request, writes request(), reads one response with a timeout at most
// query.request_timeout, and feeds on_response/on_failure; adds peers to the table through
// on_peer_alive only when they answered or identify lists protocol_id(); dials the configured
// bootstrappers at start; runs the queries Maintenance asks for and sends ADD_PROVIDER to each
// Query::closest() peer of a provide; keeps one timer at min(next_deadline(), every running
// Query's next_deadline()); and stamps Record.timeReceived on an inbound PUT_VALUE.

}  // namespace p2pmq::dht
