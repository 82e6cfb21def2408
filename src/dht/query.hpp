#pragma once
// An iterative Kademlia lookup (libp2p/specs kad-dht "Peer routing", "Value retrieval",
// "Content provider discovery") as a sans-IO state machine, one object per lookup.
//
// Driving it:
//   poll(now)          the peers to send request() to now (keeps at most α in flight)
//   on_response(...)   with each decoded response
//   on_failure(...)    when a dial, stream or decode fails (the adapter's own errors)
//   on_timer(now)      whenever now >= next_deadline() (request and query timeouts)
// and call poll() again after each event until done(). Outstanding requests may be cancelled
// once done(); late answers are ignored.
//
// Candidates are kept sorted by XOR distance to the target. Only the k closest peers not
// known to have failed are ever asked, closest first. The lookup completes when the β closest
// of them have answered (go-libp2p-kad-dht's "resiliency" rule; β = k is the spec's "queried
// and gotten responses from the k closest nodes it has seen"), or starves when nobody is left
// to ask, or stops early once enough providers or records arrived, or times out.
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "dht/codec.hpp"
#include "dht/key.hpp"
#include "dht/types.hpp"

namespace p2pmq::dht {

struct QueryConfig {
  size_t alpha = 10;  // requests in flight (go-libp2p-kad-dht's default; the spec says 3)
  size_t k = 20;      // replication: the result size and the set of peers worth asking
  size_t beta = 20;   // done when the beta closest live peers answered (min(beta, k) is used;
                      // k is the spec's rule, go uses 3 for speed)
  Duration request_timeout = 10s;
  Duration query_timeout = 60s;
  size_t max_candidates = 200;  // peers remembered; the farthest not-yet-asked are dropped
  size_t max_providers = 100;   // providers collected (GET_PROVIDERS)
  size_t wanted_providers = 0;  // stop once this many providers are known (0: never early)
  size_t quorum = 0;            // GET_VALUE: stop after this many accepted records (0: never)
};

enum class QueryKind { find_node, get_providers, get_value };
enum class QueryState { running, completed, starved, stopped, timed_out };
const char* query_state_name(QueryState s);

struct QueryStats {
  size_t requests = 0;
  size_t responses = 0;
  size_t failures = 0;  // including timeouts
  size_t max_in_flight = 0;
};

class Query {
 public:
  // GET_VALUE records are kept only when the filter accepts them (RecordStore::validate).
  using RecordFilter = std::function<bool(const KadRecord&)>;

  // `seeds`: the closest peers from our routing table (RoutingTable::nearest(target, k)).
  // `self` is never asked, whoever names it.
  Query(QueryKind kind, Bytes key, PeerId self, const std::vector<KadPeer>& seeds,
        QueryConfig config, Time now, RecordFilter filter = {});

  // The request to send to every peer poll() returns.
  KadMessage request() const;
  const Bytes& key() const { return key_; }
  const KadKey& target() const { return target_; }
  QueryKind kind() const { return kind_; }

  std::vector<KadPeer> poll(Time now);
  // False (and nothing changes) when `from` has no request outstanding. A response of the
  // wrong type counts as a failure.
  bool on_response(const PeerId& from, const KadMessage& response, Time now);
  void on_failure(const PeerId& from, Time now);
  void on_timer(Time now);
  std::optional<Time> next_deadline() const;

  bool done() const { return state_ != QueryState::running; }
  QueryState state() const { return state_; }
  // Up to k peers that answered, closest first: where ADD_PROVIDER / PUT_VALUE go.
  std::vector<KadPeer> closest() const;
  const std::vector<KadPeer>& providers() const { return providers_; }
  // Accepted GET_VALUE records with the peer that returned each (the caller selects the best
  // and corrects outdated peers, as the spec describes).
  const std::vector<std::pair<PeerId, KadRecord>>& records() const { return records_; }
  size_t in_flight() const { return in_flight_; }
  const QueryStats& stats() const { return stats_; }

 private:
  enum class PeerState { heard, waiting, answered, failed };
  struct Candidate {
    KadPeer peer;
    PeerState state = PeerState::heard;
    Time sent{};
  };

  void add_candidate(const KadPeer& peer);
  void fail(Candidate& c);
  void update_state();
  std::map<Distance, Candidate>::iterator find(const PeerId& peer);

  QueryKind kind_;
  Bytes key_;
  KadKey target_;
  PeerId self_;
  QueryConfig config_;
  RecordFilter filter_;
  Time deadline_;
  QueryState state_ = QueryState::running;
  std::map<Distance, Candidate> candidates_;  // closest first
  size_t in_flight_ = 0;
  std::vector<KadPeer> providers_;
  std::vector<std::pair<PeerId, KadRecord>> records_;
  QueryStats stats_;
};

}  // namespace p2pmq::dht
