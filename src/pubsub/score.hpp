#pragma once
// Gossipsub v1.1 peer scoring (libp2p/specs pubsub/gossipsub/gossipsub-v1.1.md, "Peer Scoring"),
// behaving like go-libp2p-pubsub's score.go. Sans-IO: every call that depends on time takes
// `now`; nothing here reads a clock. The router reports mesh changes, message events and
// misbehaviour, and calls refresh() at next_refresh().
//
// score = min(sum over topics of topic_weight * (w1*P1 + w2*P2 + w3*P3 + w3b*P3b + w4*P4),
//             topic_score_cap)
//       + w5*P5 + w6*P6 + w7*P7
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/container/small_vector.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include "core/result.hpp"
#include "pubsub/message_key.hpp"
#include "pubsub/types.hpp"

namespace p2pmq::pubsub {

// Per-topic parameters. The defaults suit a topic of a few messages a second at the default
// decay_interval (1s): P1 and P2 reward staying and delivering, P4 punishes invalid messages.
// P3/P3b are off (weight 0) by default because their threshold must be tuned to the topic's
// expected message rate, or honest mesh peers of a quiet topic get penalised.
struct TopicScoreParams {
  double topic_weight = 1.0;  // >= 0

  // P1: time in mesh, in whole quanta, capped. Weight >= 0.
  double time_in_mesh_weight = 1.0 / 3600;  // +1 after an hour in the mesh
  Duration time_in_mesh_quantum = std::chrono::seconds(1);
  double time_in_mesh_cap = 3600;

  // P2: first deliveries of valid messages; decaying counter, capped. Weight >= 0.
  double first_message_deliveries_weight = 1.0;
  double first_message_deliveries_decay = 0.9987216;  // to 1% in an hour
  double first_message_deliveries_cap = 100;

  // P3: mesh deliveries (first or within the window after validation); the penalty is the
  // squared deficit under the threshold, active once the peer has been in the mesh for
  // `activation`. Weight <= 0.
  double mesh_message_deliveries_weight = 0;
  double mesh_message_deliveries_decay = 0.9261187;  // to 1% in a minute
  double mesh_message_deliveries_cap = 100;
  double mesh_message_deliveries_threshold = 1;
  Duration mesh_message_deliveries_window = std::chrono::milliseconds(10);
  Duration mesh_message_deliveries_activation = std::chrono::seconds(30);

  // P3b: sticky penalty, the squared P3 deficit at prune time. Weight <= 0.
  double mesh_failure_penalty_weight = 0;
  double mesh_failure_penalty_decay = 0.9923541;  // to 1% in ten minutes

  // P4: invalid messages; the penalty is the squared counter. Weight <= 0.
  double invalid_message_deliveries_weight = -10;
  double invalid_message_deliveries_decay = 0.9987216;  // to 1% in an hour
};

struct PeerScoreParams {
  // Per-topic parameters. A topic not listed here uses default_topic when set (so a REJECT on
  // any topic counts against its sender, P4), and is not scored when it is unset.
  std::map<TopicId, TopicScoreParams> topics;
  std::optional<TopicScoreParams> default_topic;
  // Caps the positive sum of topic scores (0 = no cap); negative sums are never capped.
  double topic_score_cap = 0;

  // P5: application-specific score (PeerScore::set_app_specific_score).
  double app_specific_weight = 1.0;

  // P6: IP colocation; (peers on the IP - threshold)^2 when above the threshold. Weight <= 0.
  double ip_colocation_factor_weight = -10;
  double ip_colocation_factor_threshold = 5;  // >= 1 when the weight is set
  // Networks exempt from P6 (CIDR). Loopback by default so local clusters work.
  std::vector<std::string> ip_colocation_factor_whitelist = {"127.0.0.0/8", "::1/128"};

  // P7: router-detected misbehaviour; (counter - threshold)^2 above the threshold. Weight <= 0.
  double behaviour_penalty_weight = -10;
  double behaviour_penalty_threshold = 6;
  double behaviour_penalty_decay = 0.9923541;  // to 1% in ten minutes

  Duration decay_interval = std::chrono::seconds(1);  // >= 1s
  double decay_to_zero = 0.01;                        // a decayed counter below this becomes 0
  // How long a disconnected peer's non-positive score is kept, so reconnecting does not
  // wash it clean.
  Duration retain_score = std::chrono::hours(1);

  // Bounds. Delivery records (message id -> status, peers) live as long as the seen cache
  // (go: TimeCacheDuration, 2 min); the oldest go first when the cap is reached.
  Duration delivery_record_ttl = std::chrono::seconds(120);
  size_t max_delivery_records = 100'000;
  // Retained (disconnected) peers; the one closest to expiry goes first at the cap.
  size_t max_retained_peers = 10'000;
};

struct PeerScoreThresholds {
  double gossip_threshold = -10;             // <= 0: below it, no gossip to or from the peer
  double publish_threshold = -50;            // <= gossip: below it, no flood-publishing to the peer
  double graylist_threshold = -80;           // <= publish: below it, the peer's RPCs are ignored
  double accept_px_threshold = 100;          // >= 0: PX accepted only from peers above it
  double opportunistic_graft_threshold = 1;  // >= 0: median mesh score that triggers it
};

// Every rule of go-libp2p-pubsub's validate() (atomic mode), plus sanity checks of the
// bounds and the whitelist. Errors name the YAML key: "score.topics.<topic>.<field>: ...",
// "thresholds.<field>: ...".
Result<void> validate(const PeerScoreParams& params);
Result<void> validate(const PeerScoreThresholds& thresholds);

// The per-interval decay factor that takes a counter from 1 to decay_to_zero in `decay`
// (go: ScoreParameterDecayWithBase).
double score_parameter_decay(Duration decay, Duration decay_interval, double decay_to_zero = 0.01);

class PeerScore {
 public:
  // Params should have passed validate(); malformed whitelist entries are skipped.
  PeerScore(PeerScoreParams params, Time now);

  // P5 hook; without one P5 is 0.
  void set_app_specific_score(std::function<double(const PeerId&)> fn);

  // A peer connected. A retained peer gets its old counters back.
  void add_peer(const PeerId& peer, Time now);
  // A peer disconnected. A positive score is dropped; otherwise it is kept for retain_score
  // with first deliveries cleared and the mesh-failure penalty applied for meshes it was in.
  void remove_peer(const PeerId& peer, Time now);

  // The addresses a tracked peer is connected from (P6); calls for unknown peers are ignored.
  // A retained peer's addresses keep counting until removed, as in go.
  void add_ip(const PeerId& peer, const std::string& ip);
  void remove_ip(const PeerId& peer, const std::string& ip);

  void graft(const PeerId& peer, const TopicId& topic, Time now);
  void prune(const PeerId& peer, const TopicId& topic, Time now);

  // Message lifecycle, as go's tracer calls: validate_message when a message is first seen
  // and enters validation; then deliver_message (valid) or reject_message; and
  // duplicate_message for every later copy. reject_message: signature/author/self-origin/
  // too_large cost the sender P4 at once; validation_failed costs the sender and every peer
  // that sent a copy while it was pending; validation_ignored/throttled, blacklisted and
  // duplicate cost nobody.
  void validate_message(const PeerId& from, const MessageId& id, const TopicId& topic, Time now);
  void deliver_message(const PeerId& from, const MessageId& id, const TopicId& topic, Time now);
  void reject_message(const PeerId& from, const MessageId& id, const TopicId& topic,
                      RejectReason reason, Time now);
  void duplicate_message(const PeerId& from, const MessageId& id, const TopicId& topic, Time now);

  // P7: adds `count` (> 0) to the peer's behaviour penalty counter.
  void add_penalty(const PeerId& peer, int count);

  // 0 for unknown peers. Computed on demand: P1 and the P3 activation use `now` directly,
  // so they need no refresh.
  double score(const PeerId& peer, Time now) const;

  // Decays the counters of connected peers once, drops expired retained peers and delivery
  // records. Call at next_refresh().
  void refresh(Time now);
  Time next_refresh() const { return next_refresh_; }

  struct TopicStats {
    bool in_mesh = false;
    Duration mesh_time{};  // as of the latest event or refresh; 0 when not in the mesh
    double first_message_deliveries = 0;
    double mesh_message_deliveries = 0;
    double mesh_failure_penalty = 0;
    double invalid_message_deliveries = 0;
  };
  std::optional<TopicStats> topic_stats(const PeerId& peer, const TopicId& topic) const;
  double behaviour_penalty(const PeerId& peer) const;

  size_t peer_count() const { return peers_.size(); }  // connected and retained
  size_t delivery_record_count() const { return records_.size(); }

 private:
  struct TopicCounters {
    bool in_mesh = false;
    Time graft_time{};
    double first_message_deliveries = 0;
    double mesh_message_deliveries = 0;
    double mesh_failure_penalty = 0;
    double invalid_message_deliveries = 0;
  };
  struct PeerIp {
    std::string ip;
    bool whitelisted = false;
  };
  struct PeerStats {
    uint64_t serial = 0;  // how delivery records name the peer
    bool connected = true;
    Time expire{};                            // when a retained peer is forgotten
    std::map<TopicId, TopicCounters> topics;  // scored topics only
    std::vector<PeerIp> ips;
    double behaviour_penalty = 0;
  };
  enum class Status { unknown, valid, invalid, ignored, throttled };
  struct DeliveryRecord {
    Status status = Status::unknown;
    Time first_seen{};
    Time validated{};
    // Who else sent it, by PeerStats::serial (tracked peers only, so bounded; a mesh's worth
    // fits inline, so a record allocates nothing).
    boost::container::small_vector<uint64_t, 8> peers;
  };
  struct Cidr {
    std::array<uint8_t, 16> addr{};
    bool v4 = false;
    int prefix = 0;
  };

  TopicCounters* counters(const PeerId& peer, const TopicId& topic);
  const TopicScoreParams* topic_params(const TopicId& topic) const;
  DeliveryRecord& record(const MessageId& id, Time now);
  bool mesh_active(const TopicCounters& tc, const TopicScoreParams& tp, Time now) const;
  void apply_mesh_failure(TopicCounters& tc, const TopicScoreParams& tp, Time now);
  void mark_invalid(const PeerId& peer, const TopicId& topic);
  void mark_first(const PeerId& peer, const TopicId& topic);
  void mark_duplicate(const PeerId& peer, const TopicId& topic, std::optional<Time> validated,
                      Time now);
  void erase_peer(const PeerId& peer);
  void pop_oldest_record();
  // The serial of a tracked peer, 0 for others.
  uint64_t serial_of(const PeerId& peer) const;
  void evict_one_retained();
  bool whitelisted(const std::string& ip) const;
  void advance(Time now);

  PeerScoreParams params_;
  std::vector<Cidr> whitelist_;
  std::function<double(const PeerId&)> app_score_;
  std::unordered_map<PeerId, PeerStats, crypto::PeerIdHash> peers_;
  std::unordered_map<std::string, std::vector<PeerId>> peers_by_ip_;
  size_t retained_ = 0;
  // Flat, like the seen cache: records live for delivery_record_ttl (minutes), and per-record
  // allocations between the messages' buffers would keep freed heap pages from the OS.
  // record_order_ holds ids in creation order for expiry and the cap, from record_head_ on.
  boost::unordered_flat_map<MessageKey, DeliveryRecord, MessageKeyHash> records_;
  std::vector<std::pair<MessageKey, Time>> record_order_;  // (id, expiry)
  size_t record_head_ = 0;
  std::unordered_map<uint64_t, PeerId> by_serial_;  // tracked peers
  uint64_t next_serial_ = 1;
  Time now_;
  Time next_refresh_;
};

}  // namespace p2pmq::pubsub
