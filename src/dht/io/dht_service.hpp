#pragma once
// Binds the sans-IO Kademlia core (dht::Dht, dht::Query) to the host: serves requests on
// <prefix>/kad/1.0.0 in server and bootstrapper modes (and only then registers the protocol, so
// identify advertises it), runs lookups with one outbound stream per request, learns peers from
// identify and from answers, dials the bootstrappers, and runs the maintenance the core asks for
// (self lookup, bucket refresh, provider republish, store expiry).
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "core/histogram.hpp"
#include "dht/dht.hpp"
#include "host/host.hpp"
#include "protocols/identify.hpp"

namespace p2pmq::dht {

struct ServiceStats {
  uint64_t queries = 0;
  uint64_t requests_sent = 0;
  uint64_t request_failures = 0;
  uint64_t requests_served = 0;
  uint64_t requests_refused = 0;             // malformed, rate limited, refused by the core
  Histogram query_seconds{kLatencyBuckets};  // lookups, start to end (for metrics)
};

// One finished lookup.
struct LookupResult {
  QueryState state = QueryState::running;
  std::vector<KadPeer> closest;    // peers that answered, closest first
  std::vector<KadPeer> providers;  // GET_PROVIDERS
  QueryStats stats;
  size_t hops = 0;  // rounds: the longest chain of "learned from" links to an answering peer
  host::Clock::duration elapsed{};
};

class DhtService {
 public:
  DhtService(host::Host& host, protocols::Identify& identify, DhtConfig config,
             std::vector<Multiaddr> bootstrappers);
  ~DhtService();
  DhtService(const DhtService&) = delete;
  DhtService& operator=(const DhtService&) = delete;

  // Registers the protocol (server modes), follows identify, dials the bootstrappers and starts
  // the maintenance timer.
  void start();
  void stop();

  // FIND_NODE lookup of `key` (a peer id multihash or any key).
  host::Task<LookupResult> lookup(Bytes key);
  // The peer's addresses: from an open connection, else a FIND_NODE lookup. nullopt: not found.
  host::Task<std::optional<KadPeer>> find_peer(const PeerId& peer);
  // Providers of `key` (ours included when we store it), stopping once `wanted` are known
  // (0: run the full lookup). Their addresses go to the host's peer store.
  host::Task<std::vector<KadPeer>> find_providers(Bytes key, size_t wanted);
  // Announces us once: FIND_NODE the key, then ADD_PROVIDER to the closest peers that answered.
  // Returns how many were sent.
  host::Task<size_t> provide(Bytes key);
  // Keeps announcing `key` (now and every republish interval) until stop_providing.
  Result<void> start_providing(const Bytes& key);
  void stop_providing(const Bytes& key);

  Dht& core() { return dht_; }
  const Dht& core() const { return dht_; }
  const ServiceStats& stats() const { return stats_; }
  bool bootstrapped() const { return bootstrapped_; }
  // Called once the first bootstrap attempt finished (the table may still be empty).
  void on_bootstrapped(std::function<void()> f) { bootstrapped_handlers_.push_back(std::move(f)); }

 private:
  struct Run;
  host::Task<LookupResult> drive(Query query);
  host::Task<void> ask(std::shared_ptr<Run> run, KadPeer peer);
  // One request on a fresh stream: the decoded answer, nullopt when none is expected.
  host::Task<Result<std::optional<KadMessage>>> send(const PeerId& peer, const KadMessage& request,
                                                     bool expect_answer);
  host::Task<void> serve(std::shared_ptr<host::Stream> stream);
  host::Task<void> bootstrap();
  host::Task<void> timer_loop();
  host::Task<void> probe(PeerId peer);
  void on_identified(const protocols::IdentifyInfo& info);
  void peer_alive(const PeerId& peer, std::vector<Multiaddr> addrs);
  void remember_addrs(const KadPeer& peer);
  void fill_addrs(std::vector<KadPeer>& peers) const;
  std::vector<Multiaddr> addrs_of(const PeerId& peer) const;
  void run_maintenance();
  Time now() const { return Clock::now(); }

  host::Host& host_;
  protocols::Identify& identify_;
  Dht dht_;
  std::vector<Multiaddr> bootstrappers_;
  std::string protocol_;
  bool running_ = false;
  bool bootstrapping_ = false;
  bool bootstrapped_ = false;
  std::vector<std::function<void()>> bootstrapped_handlers_;
  host::Signal timer_wake_;
  ServiceStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace p2pmq::dht
