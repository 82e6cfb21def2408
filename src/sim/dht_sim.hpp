#pragma once
// A Kademlia DHT simulator: many sans-IO dht::Dht nodes in one process over an in-memory network
// with VIRTUAL time. Nothing here reads a clock or touches a socket; one seed fixes every outcome.
//
// Each node is driven the way the host adapter (src/dht/io/dht_service.cpp) drives its Dht:
//   - start(): dial the bootstrappers (connect, identify), then the maintenance timer loop: at
//     Dht::next_deadline() call on_timer() and run what Maintenance asks for (self lookup, bucket
//     refresh lookups, provides: FIND_NODE the key, then ADD_PROVIDER to Query::closest()); at
//     least 100 ms between rounds; start_providing wakes the loop.
//   - a lookup: Query::poll → one request per peer → the target's Dht::handle_request → the
//     answer back to Query::on_response and Dht::on_peer_alive; a refused request (stream reset),
//     a failed dial or a request without an answer after query.request_timeout goes to
//     Query::on_failure and Dht::on_peer_failed. Answers to a finished lookup are dropped.
//   - identify: when a connection comes up, each side adds the other to its table (on_peer_alive)
//     one round trip later if the other serves the DHT (server or bootstrapper mode).
//   - a full bucket's probe (InsertOutcome::probe): a FIND_NODE for our own id to that peer;
//     an answer refreshes it, a failure counts against it.
//
// The network:
//   - one-way latency per pair of nodes, uniform in [min_latency, max_latency], a pure function
//     of (seed, pair): symmetric, constant, nothing stored;
//   - connections: the first message between two nodes opens one (connect_rtts round trips before
//     the request leaves, shared by everything sent while it comes up); connections stay open;
//   - loss: each request and each answer is lost independently with probability `loss` (the
//     requester sees a stalled stream: a failure at request_timeout);
//   - go_offline(): the node stops; its connections close, dials to it fail after dial_timeout,
//     requests already on their way to it go unanswered.
// Peers carry no addresses (the simulator routes by peer id). A provide's ADD_PROVIDERs leave
// together (the adapter writes them one after the other).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "dht/dht.hpp"

namespace p2pmq::sim {

using DhtNodeId = size_t;  // index in the order add_node() was called
using LookupId = size_t;   // index in the order lookups were recorded

struct DhtSimConfig {
  uint64_t seed = 1;
  dht::Time start = dht::Time{} + std::chrono::hours(1);      // virtual time of construction
  dht::Duration min_latency = std::chrono::milliseconds(20);  // one way, per pair of nodes
  dht::Duration max_latency = std::chrono::milliseconds(80);
  double loss = 0;          // per request and per answer, in [0, 1]
  size_t connect_rtts = 0;  // round trips before a new connection carries a request (0: free)
  dht::Duration dial_timeout = std::chrono::seconds(5);  // a dial to an offline node fails then
  bool through_codec = false;  // encode and decode every message (counts bytes; costs CPU)
  // Probe the least recently seen peer of a full bucket whenever a newcomer lands in it, as the
  // adapter does (false: never probe; only to measure what the probes cost).
  bool probe_full_buckets = true;
  dht::DhtConfig dht;  // every node's; mode is per node, seed derived per node
};

struct DhtSimCounters {
  uint64_t events = 0;
  uint64_t requests = 0;            // requests sent (lookups, probes, ADD_PROVIDER)
  uint64_t answers = 0;             // answers delivered to the requester
  uint64_t refused = 0;             // handle_request errors (streams reset)
  uint64_t lost = 0;                // requests and answers dropped by loss
  uint64_t unanswered = 0;          // requests that reached an offline node
  uint64_t timeouts = 0;            // requests failed at request_timeout
  uint64_t dial_failures = 0;       // dials to offline nodes
  uint64_t connections = 0;         // connections opened
  uint64_t identify_adds = 0;       // on_peer_alive calls from identify
  uint64_t probes = 0;              // full-bucket liveness probes sent
  uint64_t maintenance_rounds = 0;  // Dht::on_timer calls
  uint64_t maintenance_lookups = 0;
  uint64_t provides = 0;       // provide lookups started
  uint64_t add_providers = 0;  // ADD_PROVIDER messages sent
  uint64_t lookups = 0;        // lookups started (all purposes)
  uint64_t bytes = 0;          // encoded message bytes; only with through_codec
};

enum class LookupPurpose { user, provide };

// One recorded lookup (find_node, get_providers, or the FIND_NODE of a provide).
//
// Depth of a candidate: 0 for the seeds the lookup started from (our own routing table); a
// peer first learned from the answer of a peer of depth d has depth d + 1 ("learned from"
// links, first learned wins, as the adapter counts them).
struct LookupRecord {
  DhtNodeId origin = 0;
  dht::QueryKind kind = dht::QueryKind::find_node;
  LookupPurpose purpose = LookupPurpose::user;
  Bytes key;
  std::optional<dht::PeerId> target;  // FIND_NODE of a simulated peer's id: that peer
  dht::Time started{};
  std::optional<dht::Time> finished;
  // The result first in hand. FIND_NODE with a target: its record arrived in an answer (or it
  // was in our own table: `started`). GET_PROVIDERS: the first provider other than the origin.
  std::optional<dht::Time> found_at;
  // Round trips on the chain that produced the result: depth of the peer whose answer carried
  // it, plus one (0: the target was in our own table).
  size_t found_hops = 0;
  // The adapter's LookupResult::hops: depth of the closest peer that answered, plus one.
  size_t closest_hops = 0;
  dht::QueryState state = dht::QueryState::running;
  dht::QueryStats stats;
  std::vector<dht::PeerId> closest;    // Query::closest()
  std::vector<dht::PeerId> providers;  // Query::providers()
  size_t add_providers = 0;            // provide: ADD_PROVIDER messages sent

  bool done() const { return finished.has_value(); }
};

class DhtNetwork {
 public:
  explicit DhtNetwork(DhtSimConfig config = {});
  ~DhtNetwork();
  DhtNetwork(const DhtNetwork&) = delete;
  DhtNetwork& operator=(const DhtNetwork&) = delete;

  // ---- Nodes ----
  // A Dht with the configured DhtConfig in `mode`. `id` empty: a sha2-256 peer id derived from
  // the seed and the index. Bootstrapper-mode nodes become everyone's bootstrappers.
  DhtNodeId add_node(dht::Mode mode = dht::Mode::server, std::optional<dht::PeerId> id = {});
  size_t size() const { return nodes_.size(); }
  const std::vector<DhtNodeId>& bootstrappers() const { return bootstrappers_; }

  // Joins now: dials the bootstrappers, then runs the maintenance loop. Once per node.
  void start(DhtNodeId node);
  // Stops the node for good (see the header comment).
  void go_offline(DhtNodeId node);
  bool online(DhtNodeId node) const { return nodes_.at(node).online; }
  bool started(DhtNodeId node) const { return nodes_.at(node).started; }
  // The bootstrap dials finished and the maintenance loop runs.
  bool bootstrapped(DhtNodeId node) const { return nodes_.at(node).bootstrapped; }

  // ---- Application ----
  // Dht::start_providing now, and wakes the maintenance loop (which announces it). Each
  // announcement's FIND_NODE is recorded (purpose provide).
  Result<void> provide(DhtNodeId node, BytesView key);
  // One announcement now, as the adapter's provide(): the node adds itself to its own provider
  // store, runs a (recorded) FIND_NODE for the key and sends ADD_PROVIDER to every peer of
  // Query::closest(). Does not wake the maintenance loop and schedules no republish.
  LookupId provide_once(DhtNodeId node, BytesView key);
  // Recorded lookups started now. A node that is offline or not started gets a lookup that is
  // finished at once (starved). `query`: parameters for this lookup instead of the node's
  // DhtConfig::query (seeded as Dht::find_node does: the node's query.k closest known peers),
  // e.g. to compare β on one network.
  LookupId find_node(DhtNodeId from, BytesView key,
                     const std::optional<dht::QueryConfig>& query = {});
  LookupId get_providers(DhtNodeId from, BytesView key, size_t wanted = 0,
                         const std::optional<dht::QueryConfig>& query = {});
  const LookupRecord& lookup(LookupId id) const { return records_.at(id); }
  size_t lookups() const { return records_.size(); }

  // ---- Time ----
  dht::Time now() const { return now_; }
  void at(dht::Time at, std::function<void()> fn);
  void after(dht::Duration delay, std::function<void()> fn) { at(now_ + delay, std::move(fn)); }
  // Processes every event due at or before `end`, then sets now to `end`.
  void run_until(dht::Time end);
  void run_for(dht::Duration d) { run_until(now_ + d); }
  size_t pending_events() const { return heap_.size(); }

  // ---- Access ----
  dht::Dht& dht(DhtNodeId node) { return *nodes_.at(node).dht; }
  const dht::Dht& dht(DhtNodeId node) const { return *nodes_.at(node).dht; }
  const dht::PeerId& peer_id(DhtNodeId node) const { return nodes_.at(node).id; }
  const dht::KadKey& kad_key(DhtNodeId node) const { return nodes_.at(node).key; }
  std::optional<DhtNodeId> node_of(const dht::PeerId& peer) const;
  dht::Duration latency(DhtNodeId a, DhtNodeId b) const;  // one way
  bool connected(DhtNodeId a, DhtNodeId b) const;
  const DhtSimCounters& counters() const { return counters_; }
  // The `count` started, online, non-client nodes closest to `key` (the ground truth).
  std::vector<DhtNodeId> closest_nodes(BytesView key, size_t count) const;

 private:
  enum class Ctx : uint8_t { query, probe, add_provider };
  enum class Phase : uint8_t { idle, bootstrapping, running };

  struct Node {
    dht::PeerId id;
    dht::KadKey key;
    std::unique_ptr<dht::Dht> dht;
    bool started = false;
    bool online = true;
    bool bootstrapped = false;
    bool bootstrapping = false;
    bool self_lookup_after_bootstrap = false;  // a re-bootstrap asked for by Maintenance
    size_t pending_dials = 0;
    uint32_t epoch = 0;  // bumped when the node goes offline: its connections close
    dht::Time timer_at = dht::Time::max();
  };
  struct Conn {
    dht::Time ready{};
    uint32_t epoch_lo = 0;
    uint32_t epoch_hi = 0;
  };
  struct ActiveQuery {
    ActiveQuery(dht::Query q, DhtNodeId o) : query(std::move(q)), origin(o) {}
    dht::Query query;
    DhtNodeId origin;
    std::optional<LookupId> record;
    std::optional<Bytes> provide_key;                     // announce to closest() when done
    std::unordered_map<DhtNodeId, uint64_t> outstanding;  // peer asked -> request serial
    std::unordered_map<dht::PeerId, uint32_t, dht::PeerIdHash> depth;  // recorded only
    dht::Time timer_at = dht::Time::max();  // the pending QueryDeadline event
  };
  struct Probe {
    DhtNodeId node;
    DhtNodeId peer;
  };

  // Events.
  struct RequestArrival {
    DhtNodeId from, to;
    Ctx ctx;
    uint64_t id;  // query or probe id
    uint64_t serial;
    dht::KadMessage msg;
  };
  struct AnswerArrival {  // msg empty: the stream failed (reset or dial failure)
    DhtNodeId from, to;   // from: the peer asked; to: the requester
    Ctx ctx;
    uint64_t id;
    uint64_t serial;
    std::optional<dht::KadMessage> msg;
  };
  struct RequestTimeout {
    DhtNodeId from, to;
    Ctx ctx;
    uint64_t id;
    uint64_t serial;
  };
  struct QueryDeadline {
    uint64_t id;
  };
  struct TimerFire {
    DhtNodeId node;
  };
  struct Identified {  // `node` learned through identify that `peer` serves the DHT
    DhtNodeId node, peer;
    uint32_t epoch_node, epoch_peer;
  };
  struct BootstrapDialDone {
    DhtNodeId node;
  };
  struct Callback {
    std::function<void()> fn;
  };
  using Payload = std::variant<RequestArrival, AnswerArrival, RequestTimeout, QueryDeadline,
                               TimerFire, Identified, BootstrapDialDone, Callback>;
  struct Event {
    dht::Time at;
    uint64_t seq;
    uint32_t slot;
  };

  void push(dht::Time at, Payload payload);
  void dispatch(Payload& payload);

  static uint64_t pair_key(DhtNodeId a, DhtNodeId b);
  // The time the connection a -> b carries data (opening it, with identify, when needed);
  // nullopt when b is offline (the dial fails after dial_timeout).
  std::optional<dht::Time> connection(DhtNodeId a, DhtNodeId b);
  bool lost();
  dht::KadMessage wire(dht::KadMessage msg);

  void send_request(DhtNodeId from, DhtNodeId to, Ctx ctx, uint64_t id, dht::KadMessage msg,
                    uint64_t serial);
  void on_request(RequestArrival& r);
  void on_answer(AnswerArrival& a);
  void on_request_timeout(const RequestTimeout& t);
  void peer_alive(DhtNodeId node, DhtNodeId peer);
  void peer_failed(DhtNodeId node, DhtNodeId peer);
  void start_probe(DhtNodeId node, const dht::PeerId& peer);

  void bootstrap(DhtNodeId node);
  void bootstrap_done(DhtNodeId node);
  void arm_timer(DhtNodeId node, dht::Time due);
  void on_timer(DhtNodeId node);
  void run_maintenance(DhtNodeId node);

  dht::Query make_query(DhtNodeId node, dht::QueryKind kind, BytesView key,
                        dht::QueryConfig config);
  uint64_t start_query(DhtNodeId origin, dht::Query query, std::optional<LookupId> record,
                       std::optional<Bytes> provide_key);
  LookupId record_lookup(DhtNodeId from, dht::QueryKind kind, BytesView key, LookupPurpose purpose);
  void drive(uint64_t qid);
  void finish(uint64_t qid);

  DhtSimConfig config_;
  std::mt19937_64 rng_;
  dht::Time now_;
  std::vector<Node> nodes_;
  std::vector<DhtNodeId> bootstrappers_;
  std::unordered_map<dht::PeerId, DhtNodeId, dht::PeerIdHash> by_peer_;
  std::unordered_map<uint64_t, Conn> conns_;
  std::unordered_map<uint64_t, ActiveQuery> queries_;
  std::unordered_map<uint64_t, Probe> probes_;
  std::vector<LookupRecord> records_;
  uint64_t next_id_ = 1;  // queries and probes
  uint64_t next_serial_ = 1;
  std::vector<Event> heap_;  // a binary min-heap on (at, seq)
  std::vector<Payload> slots_;
  std::vector<uint32_t> free_slots_;
  uint64_t seq_ = 0;
  DhtSimCounters counters_;
};

}  // namespace p2pmq::sim
