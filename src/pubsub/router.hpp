#pragma once
// The gossipsub router (libp2p/specs pubsub/gossipsub v1.0, v1.1, v1.2) as a pure state
// machine: no sockets, clocks or threads. Every input is a call carrying `now`; every output is
// an Action queued for the IO adapter, drained with poll_action(). Given the same inputs and
// config.seed the router behaves identically (std::mt19937_64, ordered containers).
//
// Driving it:
//   add_peer / remove_peer       when a pubsub stream to a peer opens / the peer goes away
//   handle_rpc                   for every decoded inbound RPC
//   join / leave / publish       for the local application
//   report_validation            with the verdict for each ValidateMessage action
//   on_timer                     whenever now >= next_deadline() (heartbeat, score refresh,
//                                validation timeouts)
//   poll_action                  after each call, until it returns nullopt
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/histogram.hpp"
#include "core/result.hpp"
#include "crypto/keys.hpp"
#include "pubsub/id_aliases.hpp"
#include "pubsub/mcache.hpp"
#include "pubsub/message.hpp"
#include "pubsub/rpc.hpp"
#include "pubsub/score.hpp"
#include "pubsub/seen_cache.hpp"
#include "pubsub/trace.hpp"
#include "pubsub/types.hpp"

namespace p2pmq::pubsub {

using namespace std::chrono_literals;

// Parameter names follow go-libp2p-pubsub (GossipSubParams) and the specs.
struct GossipsubConfig {
  // Mesh degree (v1.0) and its v1.1 refinements.
  size_t D = 6, D_lo = 5, D_hi = 12;
  size_t D_score = 4;  // peers kept by score when pruning an oversized mesh
  size_t D_out = 2;    // outbound peers the mesh keeps
  size_t D_lazy = 6;   // minimum gossip targets per topic
  double gossip_factor = 0.25;

  Duration heartbeat_interval = 1s;
  Duration heartbeat_initial_delay = 100ms;
  Duration fanout_ttl = 60s;
  size_t max_fanout_topics = 1000;  // oldest-published fanout topic is dropped beyond this

  size_t mcache_len = 5;     // history windows
  size_t mcache_gossip = 3;  // windows advertised in IHAVE
  size_t mcache_max_messages = 100'000;
  Duration seen_ttl = 120s;
  size_t seen_max_entries = 1'000'000;

  Duration prune_backoff = 60s;
  Duration unsubscribe_backoff = 10s;
  Duration max_backoff = 3600s;  // cap on a peer-supplied PRUNE backoff
  Duration graft_flood_threshold = 10s;
  size_t prune_peers = 16;  // PX entries in a PRUNE
  bool do_px = false;
  bool flood_publish = true;
  size_t opportunistic_graft_ticks = 60, opportunistic_graft_peers = 2;

  // Gossip flood protection.
  size_t max_ihave_length = 5000;  // message ids taken from one IHAVE, and sent in one
  // Message ids asked from one peer per heartbeat: go answers an IWANT in one RPC, and a p2pmq
  // receiver takes at most RpcLimits::max_messages (5000) messages from one RPC.
  size_t max_iwant_length = 5000;
  size_t max_ihave_messages = 10;    // IHAVE RPCs accepted from one peer per heartbeat
  size_t gossip_retransmission = 3;  // IWANT replies per message and peer
  Duration iwant_followup_time = 3s;
  size_t max_iwant_promises = 100'000;

  // v1.2 IDONTWANT.
  size_t idontwant_message_size_threshold = 1000;  // send IDONTWANT for messages this big
  size_t max_idontwant_messages = 1000;  // RPCs with IDONTWANT accepted per peer per heartbeat
  size_t max_idontwant_length = 10;      // ids taken from one such RPC
  size_t idontwant_ttl_ticks = 3;        // heartbeats an IDONTWANT is remembered

  // Encoded message bytes: what fits one RPC frame of go's 1 MiB limit, so every message we
  // accept can be forwarded to any peer (a payload of up to kMaxMessageDataSize).
  size_t max_message_size = kMaxEncodedMessageSize;
  std::map<TopicId, size_t> max_message_size_per_topic;

  std::vector<PeerId> direct_peers;
  size_t direct_connect_ticks = 300;

  SignaturePolicy signature_policy = SignaturePolicy::strict_sign;
  MessageIdFn message_id_fn = MessageIdFn::p2pmq;
  std::map<TopicId, MessageIdFn> message_id_fn_per_topic;

  // Subscription filter for remote peers.
  size_t max_subscriptions_per_peer = 200;
  size_t max_topic_length = 256;
  std::optional<std::set<TopicId>> allowed_topics;  // nullopt: any topic

  // Validation pipeline.
  // A whole RPC of messages fits (RpcLimits::max_messages): go answers an IWANT in one RPC.
  size_t max_pending_validations_per_topic = 5000;
  Duration validation_timeout = 5s;

  uint64_t seed = 0;
};

// Names the first bad key, e.g. "gossip.D_lo: must be <= D".
Result<void> validate(const GossipsubConfig& config);

// ---- Actions -------------------------------------------------------------------------------
struct SendRpc {
  PeerId peer;
  Rpc rpc;
};
// A validated message for the local application (also our own publications when subscribed).
struct DeliverMessage {
  MessageId id;
  Message message;
  PeerId received_from;
};
// Ask the validator; answer with report_validation(id, verdict) before validation_timeout.
struct ValidateMessage {
  MessageId id;
  Message message;
  PeerId received_from;
};
struct DisconnectPeer {
  PeerId peer;
};
// Peer exchange: peers worth connecting to (from a PRUNE, or direct peers not connected).
struct ConnectPeers {
  std::vector<PeerRecord> peers;
};
using Action = std::variant<SendRpc, DeliverMessage, ValidateMessage, DisconnectPeer, ConnectPeers>;

struct RouterCounters {
  uint64_t published = 0;
  uint64_t delivered = 0;  // DeliverMessage actions
  uint64_t forwarded = 0;  // message copies sent to peers (publish and forward)
  uint64_t duplicates = 0;
  uint64_t rejected = 0;  // failed local checks or validator REJECT
  uint64_t ignored = 0;   // validator IGNORE
  uint64_t validation_timeouts = 0;
  uint64_t throttled = 0;  // pending-validation queue full
  uint64_t too_large = 0;
  uint64_t not_subscribed = 0;  // messages of topics we have not joined
  uint64_t graylisted_rpcs = 0;
  uint64_t subscriptions_refused = 0;
  uint64_t iwant_served = 0;
  uint64_t iwant_asked = 0;     // message ids we asked for by IWANT
  uint64_t ihave_received = 0;  // message ids peers offered by IHAVE
  uint64_t ihave_sent = 0;
  uint64_t broken_promises = 0;
  uint64_t idontwant_sent = 0;
  uint64_t idontwant_suppressed = 0;  // sends skipped because the peer said IDONTWANT
  uint64_t px_invalid_records = 0;    // PX entries dropped: bad or foreign signed peer record
};

// The same counts per joined topic (for the metrics endpoint). A topic's counters live while it is
// joined, so their number is bounded by the topics the agent chose to join.
struct TopicCounters {
  uint64_t published = 0;
  uint64_t delivered = 0;  // DeliverMessage actions, our own publications included
  uint64_t duplicates = 0;
  uint64_t rejected = 0;
  uint64_t ignored = 0;                           // validator IGNORE and validation timeouts
  uint64_t throttled = 0;                         // pending-validation queue full
  Histogram validation_seconds{kLatencyBuckets};  // from receipt to the verdict
};

class Router {
 public:
  // Throws std::invalid_argument when validate(config) fails (a start-up error).
  Router(PeerId self, crypto::PrivateKey key, GossipsubConfig config, PeerScoreParams score_params,
         PeerScoreThresholds thresholds, Time now);

  // ---- Inputs ----
  // A pubsub stream with `peer` is up. Sends it our subscriptions. `ip` feeds P6 (may be empty).
  void add_peer(const PeerId& peer, PeerKind kind, bool outbound, const std::string& ip, Time now);
  void remove_peer(const PeerId& peer, Time now);

  // Subscribe and build the mesh (fanout peers first), sending GRAFTs. Idempotent.
  void join(const TopicId& topic, Time now);
  // Unsubscribe; mesh peers get a PRUNE with the unsubscribe backoff.
  void leave(const TopicId& topic, Time now);
  // Signs per policy and sends; delivered locally when subscribed (never sent to validation).
  // Fails on a too-large or already-seen message.
  Result<MessageId> publish(const TopicId& topic, Bytes data, uint64_t seqno, Time now);

  void handle_rpc(const PeerId& from, Rpc rpc, Time now);
  // Unknown or timed-out ids are ignored.
  void report_validation(const MessageId& id, Verdict verdict, Time now);

  // One heartbeat now (on_timer calls it when due; tests may call it directly).
  void heartbeat(Time now);
  // Earliest time on_timer has work: heartbeat, score refresh, validation timeout.
  Time next_deadline() const;
  void on_timer(Time now);

  // Where PRUNE's peer exchange finds the signed peer record of a peer (the IO side's peer
  // store); a null or empty answer sends the bare peer id, as go does without a record.
  using PeerRecordLookup = std::function<const Bytes*(const PeerId&)>;
  void set_peer_record_lookup(PeerRecordLookup lookup) { peer_records_ = std::move(lookup); }

  // Events for an event trace (publish, deliver, reject, duplicate, graft, prune, join, leave),
  // given to `sink` as they happen; none are built without a sink.
  void set_trace_sink(TraceSink sink) { trace_ = std::move(sink); }

  // ---- Outputs ----
  // The next queued action, oldest first; nullopt when none (Action is not default-constructible:
  // PeerId has no empty state).
  std::optional<Action> poll_action();
  size_t pending_actions() const { return actions_.size(); }

  // ---- Introspection ----
  std::vector<PeerId> mesh(const TopicId& topic) const;
  std::vector<PeerId> fanout(const TopicId& topic) const;
  std::vector<TopicId> peer_topics(const PeerId& peer) const;
  std::vector<PeerId> topic_peers(const TopicId& topic) const;
  std::vector<TopicId> topics() const;  // joined
  std::vector<PeerId> peers() const;
  bool is_subscribed(const TopicId& topic) const { return mesh_.contains(topic); }
  bool in_backoff(const PeerId& peer, const TopicId& topic, Time now) const;
  double score(const PeerId& peer, Time now) const { return score_.score(peer, now); }
  // A behaviour penalty (P7) for misbehaviour the IO side sees, such as a malformed RPC.
  void penalize(const PeerId& peer, int count = 1) { score_.add_penalty(peer, count); }
  size_t pending_validations() const { return pending_.size(); }
  size_t seen_size() const { return seen_.size(); }
  size_t mcache_size() const { return mcache_.size(); }
  uint64_t heartbeat_ticks() const { return ticks_; }
  const RouterCounters& counters() const { return counters_; }
  // nullptr unless joined.
  const TopicCounters* topic_counters(const TopicId& topic) const;
  size_t pending_validations(const TopicId& topic) const;
  const GossipsubConfig& config() const { return config_; }
  MessageIdFn id_fn(const TopicId& topic) const;  // the topic's override, else the default

 private:
  struct PeerState {
    PeerKind kind = PeerKind::gossipsub_v1_1;
    bool outbound = false;
    std::string ip;
    std::set<TopicId> topics;
    size_t ihave_rpcs = 0;      // this heartbeat
    size_t ihave_asked = 0;     // ids we asked this peer for this heartbeat
    size_t idontwant_rpcs = 0;  // this heartbeat
    std::unordered_map<std::string, uint64_t> dont_want;  // id -> last tick it applies
    // Learned from its gossip: the peer names messages by another id function (another
    // implementation on its default), so our gossip to it uses that function's ids.
    std::optional<MessageIdFn> id_form;
  };
  struct Pending {
    MessageId id;
    Message message;
    PeerId from;
    Time deadline;
    Time received;
    std::set<PeerId> also_from;  // peers that sent duplicates meanwhile (bounded)
  };
  using PeerSet = std::set<PeerId>;
  using TopicPeers = std::map<TopicId, PeerSet>;

  // Messages.
  void handle_message(const PeerId& from, Message message, Time now);
  bool accept_subscription(const PeerState& state, const SubOpts& sub) const;
  void handle_subscription(const PeerId& from, PeerState& state, const SubOpts& sub, Time now);
  void deliver_and_forward(Pending pending, Time now);
  void forward(const MessageId& id, const Message& message, const PeerSet& exclude, Time now);
  void send_idontwant(const MessageId& id, const Message& message, const PeerId& from);
  void expire_validations(Time now);

  // Control.
  std::vector<MessageId> handle_ihave(const PeerId& from, PeerState& state,
                                      const std::vector<ControlIHave>& ihaves, Time now);
  std::vector<Message> handle_iwant(const PeerId& from, const std::vector<ControlIWant>& iwants,
                                    Time now);
  std::vector<ControlPrune> handle_graft(const PeerId& from, const PeerState& state,
                                         const std::vector<ControlGraft>& grafts, Time now);
  void handle_prune(const PeerId& from, const std::vector<ControlPrune>& prunes, Time now);
  void handle_idontwant(PeerState& state, const std::vector<ControlIDontWant>& idontwants);
  ControlPrune make_prune(const PeerId& peer, const TopicId& topic, bool do_px, bool unsubscribe,
                          Time now);
  void px_connect(std::vector<PeerRecord> records);

  // Heartbeat parts.
  void maintain_mesh(const TopicId& topic, PeerSet& peers, std::map<PeerId, double>& scores,
                     Time now);
  void prune_oversized(const TopicId& topic, PeerSet& peers, std::map<PeerId, double>& scores,
                       Time now);
  void opportunistic_graft(const TopicId& topic, PeerSet& peers, std::map<PeerId, double>& scores,
                           Time now);
  void maintain_fanout(std::map<PeerId, double>& scores, Time now);
  void emit_gossip(const TopicId& topic, const PeerSet& exclude, std::map<PeerId, double>& scores,
                   Time now);
  void apply_broken_promises(Time now);
  void connect_direct_peers();
  void clear_heartbeat_state();

  // Mesh membership with its scoring hooks.
  void graft_peer(const TopicId& topic, PeerSet& peers, const PeerId& peer, Time now);
  void prune_peer(const TopicId& topic, PeerSet& peers, const PeerId& peer, Time now, bool no_px);
  void add_backoff(const PeerId& peer, const TopicId& topic, Duration interval, Time now);
  bool in_mesh(const PeerId& peer, const TopicId& topic) const;
  void cache_message(const MessageId& id, const Message& message);
  void fulfil_promises(const MessageId& id, const Message& message);
  // `ids` the way `peer` names them (unchanged for peers on our function).
  std::vector<MessageId> ids_for_peer(const PeerId& peer, const TopicId& topic,
                                      std::vector<MessageId> ids) const;
  bool backing_off(const PeerId& peer, const TopicId& topic) const;

  // Helpers.
  std::vector<PeerId> select_peers(const TopicId& topic, size_t count,
                                   const std::function<bool(const PeerId&)>& filter);
  bool is_gossipsub(const PeerId& peer) const;
  bool is_direct(const PeerId& peer) const { return direct_.contains(peer); }
  bool dont_want(const PeerId& peer, const MessageId& id) const;
  double cached_score(std::map<PeerId, double>& scores, const PeerId& peer, Time now) const;
  size_t max_message_size(const TopicId& topic) const;
  void add_iwant_promise(const PeerId& peer, const std::vector<MessageId>& ids, Time now);
  Rpc& outgoing(const PeerId& peer);  // coalesced control for the current heartbeat
  void flush_outgoing();
  void send(const PeerId& peer, Rpc rpc);
  template <class T>
  void shuffle(std::vector<T>& v) {
    std::shuffle(v.begin(), v.end(), rng_);
  }

  PeerId self_;
  crypto::PrivateKey key_;
  GossipsubConfig config_;
  PeerScoreThresholds thresholds_;
  PeerScore score_;
  std::mt19937_64 rng_;

  std::map<PeerId, PeerState> peers_;
  PeerSet direct_;
  TopicPeers topic_peers_;  // remote subscriptions
  TopicPeers mesh_;         // joined topics (possibly with an empty mesh)
  TopicPeers fanout_;
  std::map<TopicId, Time> fanout_last_pub_;
  std::map<TopicId, std::map<PeerId, Time>> backoff_;

  SeenCache seen_;
  MessageCache mcache_;
  IdAliases aliases_;                       // foreign ids of what mcache_ holds
  std::map<std::string, Pending> pending_;  // by message id bytes
  std::map<TopicId, size_t> pending_per_topic_;
  std::deque<std::pair<Time, std::string>> pending_order_;  // deadlines, FIFO (same timeout)
  // IWANT promises: message id -> peer -> deadline (go-libp2p-pubsub's gossip tracer).
  std::map<std::string, std::map<PeerId, Time>> promises_;

  std::map<PeerId, Rpc> outgoing_;
  std::deque<Action> actions_;
  PeerRecordLookup peer_records_;
  TraceSink trace_;
  void trace(TraceType type, const TopicId& topic, const MessageId* id = nullptr,
             const PeerId* peer = nullptr, std::optional<RejectReason> reason = {}) {
    if (trace_)
      trace_(TraceEvent{type, topic, id ? *id : MessageId{},
                        peer ? std::optional<PeerId>(*peer) : std::nullopt, reason});
  }
  Time next_heartbeat_;
  uint64_t ticks_ = 0;
  RouterCounters counters_;
  std::map<TopicId, TopicCounters> topic_counters_;  // joined topics only
  TopicCounters* joined_counters(const TopicId& topic);
};

}  // namespace p2pmq::pubsub
