#pragma once
// A gossipsub simulator: many sans-IO pubsub::Routers in one process over an in-memory network
// with VIRTUAL time (DESIGN.md §1: sim/ sits beside the stack). Nothing here reads a clock or
// touches a socket; one seed fixes every outcome.
//
// The core is a discrete-event scheduler: a priority queue of (time, seq, event), seq breaking
// ties in insertion order. Events are
//   - an RPC arriving at its target after the link latency (handle_rpc), unless the link lost it;
//   - a router timer at its next_deadline() (on_timer);
//   - a validator verdict arriving after the validator's delay (report_validation);
//   - a callback scheduled by the caller (publish at t, start an attack at t, ...).
// After every input a router gets, its actions are drained at once: SendRpc goes onto the link,
// ValidateMessage to the node's validator, DeliverMessage into the metrics, DisconnectPeer and
// ConnectPeers (PX) change the topology.
//
// Links are symmetric, with a latency drawn once per link (uniform in [min_latency,
// max_latency] unless a latency function is set), so each direction is FIFO like a stream, and
// a loss probability applied to each RPC independently.
//
// Hooks for tests and attackers: a per-node Validator (accept everything by default) and a
// per-node SendFilter that may rewrite or drop every RPC the node's router sends.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "core/result.hpp"
#include "pubsub/router.hpp"

namespace p2pmq::sim {

using pubsub::Duration;
using pubsub::MessageId;
using pubsub::PeerId;
using pubsub::Time;
using pubsub::TopicId;
using NodeId = size_t;  // index in the order add_node() was called
using Rng = std::mt19937_64;

using namespace std::chrono_literals;

struct NetworkConfig {
  uint64_t seed = 1;
  Time start = Time{} + std::chrono::hours(1);  // virtual time of construction
  // Default link model: latency uniform in [min_latency, max_latency], drawn once per link.
  Duration min_latency = 20ms;
  Duration max_latency = 80ms;
  // Overrides the uniform draw when set (must be deterministic given the rng).
  std::function<Duration(NodeId dialer, NodeId listener, Rng&)> latency;
  double loss = 0;  // default drop probability per RPC per link, in [0, 1]
  // When false, only RPCs that carry messages can be lost (subscriptions and control always
  // arrive): isolates gossip repair from mesh maintenance.
  bool loss_includes_control = true;
  // Encode every sent RPC (encode_rpc) to count wire bytes; costs CPU, off by default.
  bool count_bytes = false;
};

struct NodeConfig {
  pubsub::GossipsubConfig gossip;  // gossip.seed is replaced by one derived from the network seed
  pubsub::PeerScoreParams score;
  pubsub::PeerScoreThresholds thresholds;
  std::string ip;  // empty: a distinct fake 10.x.y.z label (no network is used; P6 stays quiet)
};

// A validator's answer: the verdict, reported to the router after `delay` of virtual time.
struct Validation {
  pubsub::Verdict verdict = pubsub::Verdict::accept;
  Duration delay{};
};
// nullopt: never answer (the router's validation_timeout turns that into IGNORE).
using Validator =
    std::function<std::optional<Validation>(NodeId node, const pubsub::ValidateMessage&)>;
// Sees every RPC `from`'s router sends to `to` before it enters the link; may rewrite it.
// false drops it (counted as filtered, not lost).
using SendFilter = std::function<bool(NodeId from, NodeId to, pubsub::Rpc& rpc)>;

struct Counters {
  uint64_t events = 0;                // events processed by the scheduler
  uint64_t rpcs_sent = 0;             // RPCs put on a link (after the send filter)
  uint64_t rpcs_delivered = 0;        // handed to the target's handle_rpc
  uint64_t rpcs_lost = 0;             // dropped by link loss
  uint64_t rpcs_filtered = 0;         // dropped by a SendFilter
  uint64_t rpcs_unroutable = 0;       // to an unknown or unconnected peer, or the link went away
  uint64_t messages_sent = 0;         // message copies in sent RPCs (publish entries)
  uint64_t control_sent = 0;          // ihave/iwant/graft/prune/idontwant entries in sent RPCs
  uint64_t bytes_sent = 0;            // encoded RPC bytes; only with NetworkConfig::count_bytes
  uint64_t validations = 0;           // ValidateMessage actions
  uint64_t timers = 0;                // on_timer calls
  uint64_t deliveries = 0;            // DeliverMessage actions
  uint64_t duplicate_deliveries = 0;  // a node got DeliverMessage twice for one id (a bug)
  uint64_t disconnects = 0;           // DisconnectPeer actions honoured
  uint64_t px_connects = 0;           // connections made for ConnectPeers actions
  uint64_t timer_stalls = 0;          // next_deadline() still <= now after on_timer (a router bug)
  bool operator==(const Counters&) const = default;
};

// One message as the simulator saw it.
struct MessageRecord {
  MessageId id;
  TopicId topic;
  std::optional<NodeId> origin;  // nullopt: not published through Network::publish
  Time published{};              // or its first delivery when origin is unknown
  std::map<NodeId, Time> delivered;
};

// Delivery over a set of messages and subscribers. Pairs (message, subscriber) exclude the
// message's origin.
struct DeliveryStats {
  size_t messages = 0;
  size_t expected = 0;  // (message, subscriber) pairs
  size_t delivered = 0;
  double worst_ratio = 1;           // the worst single message
  std::vector<Duration> latencies;  // of the delivered pairs, sorted ascending
  double ratio() const {
    return expected == 0 ? 1.0 : static_cast<double>(delivered) / static_cast<double>(expected);
  }
  // Nearest-rank percentile, p in [0, 100]; zero when nothing was delivered.
  Duration percentile(double p) const;
  bool operator==(const DeliveryStats&) const = default;
};

class Network {
 public:
  explicit Network(NetworkConfig config = {});
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // ---- Nodes and topology ----
  // A router with a deterministic Ed25519 identity derived from the seed and the index.
  // Throws std::invalid_argument when the score params or thresholds do not validate.
  NodeId add_node(const NodeConfig& config);
  std::vector<NodeId> add_nodes(size_t count, const NodeConfig& config);
  size_t size() const { return nodes_.size(); }

  // add_peer on both sides now (outbound on the dialer's side); the link gets its latency and
  // the default loss. No-op when already connected or a == b.
  void connect(NodeId dialer, NodeId listener);
  void disconnect(NodeId a, NodeId b);  // remove_peer on both sides; in-flight RPCs are lost
  bool connected(NodeId a, NodeId b) const;
  std::vector<NodeId> neighbours(NodeId node) const;
  // Each dialer connects to k distinct random targets it is not yet connected to (fewer if
  // there are not enough): a random graph of average degree about 2k when dialers == targets.
  void connect_random(const std::vector<NodeId>& dialers, const std::vector<NodeId>& targets,
                      size_t k);
  void connect_random(size_t k);                   // over all nodes
  void set_loss(NodeId a, NodeId b, double loss);  // both directions
  void set_latency(NodeId a, NodeId b, Duration latency);

  // ---- Hooks ----
  void set_validator(NodeId node, Validator validator);  // empty: accept at once
  void set_send_filter(NodeId node, SendFilter filter);  // empty: send as is

  // ---- Application ----
  void join(NodeId node, const TopicId& topic);
  void leave(NodeId node, const TopicId& topic);
  // Publishes with the node's next seqno for the topic (from 1) and records the message.
  Result<MessageId> publish(NodeId node, const TopicId& topic, Bytes data);

  // ---- Time ----
  Time now() const { return now_; }
  Time start() const { return config_.start; }
  // Runs `fn` at virtual time `at` (not before now).
  void at(Time at, std::function<void()> fn);
  void after(Duration delay, std::function<void()> fn) { at(now_ + delay, std::move(fn)); }
  // Processes every event due at or before `end`, then sets now to `end`.
  void run_until(Time end);
  void run_for(Duration d) { run_until(now_ + d); }
  size_t pending_events() const { return queue_.size(); }

  // ---- Access ----
  pubsub::Router& router(NodeId node) { return *nodes_.at(node).router; }
  const pubsub::Router& router(NodeId node) const { return *nodes_.at(node).router; }
  const PeerId& peer_id(NodeId node) const { return nodes_.at(node).id; }
  const std::string& ip(NodeId node) const { return nodes_.at(node).ip; }
  std::optional<NodeId> node_of(const PeerId& peer) const;

  // ---- Metrics ----
  const Counters& counters() const { return counters_; }
  pubsub::RouterCounters router_counters() const;               // summed over all routers
  std::vector<NodeId> subscribers(const TopicId& topic) const;  // joined through join()
  // Messages published through publish(), in order.
  const std::vector<MessageId>& published() const { return published_; }
  const MessageRecord* message(const MessageId& id) const;
  // Over `ids`, counting the given subscribers (default: the topic's current subscribers).
  DeliveryStats delivery(const std::vector<MessageId>& ids,
                         const std::optional<std::vector<NodeId>>& subscribers = {}) const;
  double delivery_ratio(const MessageId& id) const { return delivery({id}).ratio(); }
  // Mesh size -> number of routers with that mesh size, over `nodes` (default: subscribers).
  std::map<size_t, size_t> mesh_degrees(const TopicId& topic,
                                        const std::optional<std::vector<NodeId>>& nodes = {}) const;
  // The score `at` gives `of` now; nullopt when they are not connected.
  std::optional<double> score(NodeId at, NodeId of) const;

 private:
  struct Link {
    Duration latency{};
    double loss = 0;
  };
  struct Node {
    explicit Node(PeerId peer) : id(std::move(peer)) {}
    PeerId id;
    std::string ip;
    std::unique_ptr<pubsub::Router> router;
    std::map<NodeId, Link> links;
    Validator validator;
    SendFilter filter;
    std::map<TopicId, uint64_t> seqno;
    Time timer_at = Time::max();  // the pending timer event, Time::max() when none
    Time last_timer{};            // when on_timer last ran
  };
  struct RpcArrival {
    NodeId from;
    NodeId to;
    pubsub::Rpc rpc;
  };
  struct ValidationDone {
    NodeId node;
    MessageId id;
    pubsub::Verdict verdict;
  };
  struct TimerFire {
    NodeId node;
  };
  struct Callback {
    std::function<void()> fn;
  };
  struct Event {
    Time at;
    uint64_t seq;
    std::variant<RpcArrival, ValidationDone, TimerFire, Callback> what;
  };

  void push(Time at, decltype(Event::what) what);
  void dispatch(Event& event);
  // Handles every queued action of the node, then (re)schedules its timer.
  void drain(NodeId node);
  void schedule_timer(NodeId node);
  void transmit(NodeId from, const PeerId& to, pubsub::Rpc rpc);
  void record_delivery(NodeId node, const pubsub::DeliverMessage& d);
  Link* link(NodeId a, NodeId b);

  NetworkConfig config_;
  Rng rng_;
  Time now_;
  std::vector<Node> nodes_;
  std::unordered_map<PeerId, NodeId, crypto::PeerIdHash> by_peer_;
  std::vector<Event> queue_;  // a binary min-heap on (at, seq)
  uint64_t seq_ = 0;
  std::map<TopicId, std::set<NodeId>> subscribers_;
  std::map<std::string, MessageRecord> messages_;  // by id bytes
  std::vector<MessageId> published_;
  Counters counters_;
};

}  // namespace p2pmq::sim
