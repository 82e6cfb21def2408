#pragma once
// Binds the gossipsub router (sans-IO) to the host: one outbound stream per peer for our RPCs
// (negotiating /meshsub/1.2.0, 1.1.0, 1.0.0 or /floodsub/1.0.0), inbound streams read into the
// router, a timer for heartbeats, and the actions the router emits turned into IO.
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "host/host.hpp"
#include "pubsub/router.hpp"
#include "pubsub/rpc.hpp"

namespace p2pmq::pubsub {

struct ServiceConfig {
  RpcLimits limits;  // inbound; max_rpc_size grows to fit the largest configured message
  // A slower peer loses messages and gossip beyond this (never subscriptions, GRAFT, PRUNE).
  size_t max_queued_bytes_per_peer = 8 << 20;
  // A peer that takes none of our RPCs for this long (a write stays blocked on its yamux
  // window) is disconnected: stopped or hostile, it only holds our buffers. 0: never.
  std::chrono::milliseconds write_stall_timeout{20000};
  // The configured addresses of the router's direct peers (gossip.direct_peers): put back in
  // the peer store before each (re)connect, so they never expire out of it.
  std::map<PeerId, std::vector<Multiaddr>> direct_peer_addrs;
};

class GossipsubService {
 public:
  using MessageHandler = std::function<void(const DeliverMessage&)>;
  // Called for every remote message; call `done` exactly once (now or later) with the verdict.
  using Validator = std::function<void(const ValidateMessage&, std::function<void(Verdict)> done)>;

  GossipsubService(host::Host& host, GossipsubConfig config, PeerScoreParams score_params,
                   PeerScoreThresholds thresholds, ServiceConfig service = {});
  ~GossipsubService();

  // Registers the protocols, follows connections (existing ones too) and starts heartbeats.
  void start();
  void stop();

  void join(const TopicId& topic);
  void leave(const TopicId& topic);
  Result<MessageId> publish(const TopicId& topic, Bytes data, uint64_t seqno);
  void on_message(MessageHandler handler) { handlers_.push_back(std::move(handler)); }
  // Without a validator, messages that pass the router's own checks are accepted.
  void set_validator(Validator validator) { validator_ = std::move(validator); }
  // A peer subscribed to a topic and the router took the subscription (an archive adopts the
  // topics peers announce: sync.archive_topics). Called on the io thread; may join topics.
  using TopicAnnounced = std::function<void(const PeerId&, const TopicId&)>;
  void on_topic_announced(TopicAnnounced handler) { topic_announced_ = std::move(handler); }

  Router& router() { return router_; }
  const Router& router() const { return router_; }
  uint64_t dropped_rpcs() const { return dropped_rpcs_; }
  // Items peers sent over our RPC count limits, dropped instead of resetting the stream.
  uint64_t truncated_items() const { return truncated_items_; }
  // Inbound streams reset because the same peer opened a newer one.
  uint64_t replaced_inbound_streams() const { return replaced_inbound_streams_; }
  // Peers disconnected for taking none of our RPCs for write_stall_timeout.
  uint64_t stalled_peers() const { return stalled_peers_; }

 private:
  struct Link;
  void on_connection(const std::shared_ptr<host::Connection>& conn, host::ConnectionEvent e);
  host::Task<void> open_outbound(crypto::PeerId peer, std::shared_ptr<host::Connection> conn);
  host::Task<void> serve_inbound(std::shared_ptr<host::Stream> stream);
  host::Task<void> write_loop(std::shared_ptr<Link> link);
  host::Task<void> timer_loop();
  void add_to_router(Link& link, PeerKind kind);
  void enqueue(const PeerId& peer, Rpc rpc);
  void drain();
  void disconnect_stalled_peers(Time now);
  Time now() const { return Clock::now(); }

  host::Host& host_;
  Router router_;
  ServiceConfig service_;
  std::map<PeerId, std::shared_ptr<Link>> links_;
  std::vector<MessageHandler> handlers_;
  Validator validator_;
  TopicAnnounced topic_announced_;
  host::Signal timer_wake_;
  bool running_ = false;
  bool draining_ = false;
  uint64_t dropped_rpcs_ = 0;
  uint64_t truncated_items_ = 0;
  uint64_t replaced_inbound_streams_ = 0;
  uint64_t stalled_peers_ = 0;
  size_t connect_dials_ = 0;  // ConnectPeers dials under way (at most config prune_peers)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

PeerKind peer_kind_of(std::string_view protocol);

}  // namespace p2pmq::pubsub
