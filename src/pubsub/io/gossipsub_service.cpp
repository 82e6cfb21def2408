#include "pubsub/io/gossipsub_service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "host/log_limit.hpp"

namespace p2pmq::pubsub {

using host::Task;
namespace asio = host::asio;

namespace {

const std::vector<std::string>& offered_protocols() {
  static const std::vector<std::string> protocols{
      std::string(kMeshsubV12), std::string(kMeshsubV11), std::string(kMeshsubV10),
      std::string(kFloodsubProtocol)};
  return protocols;
}

host::LogLimit stream_drops;  // peer-triggered: rate-limited

std::string ip_of(const host::Connection& conn) {
  auto target = conn.info().remote_addr.tcp_target();
  return target ? target->host : std::string();
}

}  // namespace

PeerKind peer_kind_of(std::string_view protocol) {
  if (protocol == kMeshsubV12) return PeerKind::gossipsub_v1_2;
  if (protocol == kMeshsubV11) return PeerKind::gossipsub_v1_1;
  if (protocol == kMeshsubV10) return PeerKind::gossipsub_v1_0;
  return PeerKind::floodsub;
}

struct GossipsubService::Link {
  Link(PeerId p, asio::any_io_executor ex) : peer(std::move(p)), ready(ex) {}
  PeerId peer;
  std::shared_ptr<host::Connection> conn;
  std::shared_ptr<host::Stream> out;
  // The queue's bytes are reserved against `out` (declared after it: released first).
  std::unique_ptr<host::BufferAccount> queue_account;
  // The peer's one inbound stream: a new one replaces (resets) it, as go-libp2p-pubsub does.
  std::shared_ptr<host::Stream> in;
  bool in_partial = false;  // `in` holds part of a frame
  bool opening = false;
  bool writing = false;
  bool in_router = false;
  bool closed = false;
  std::optional<Time> writing_since;  // a write to `out` is under way (blocked, maybe)
  std::deque<Bytes> queue;
  size_t queued_bytes = 0;
  host::Signal ready;
};

GossipsubService::GossipsubService(host::Host& host, GossipsubConfig config,
                                   PeerScoreParams score_params, PeerScoreThresholds thresholds,
                                   ServiceConfig service)
    : host_(host),
      router_(host.peer_id(), host.identity(), std::move(config), std::move(score_params),
              thresholds, Clock::now()),
      service_(service),
      timer_wake_(host.executor()) {
  // A topic configured for messages over the frame limit must still be readable (such topics
  // are not for go peers, which refuse frames over 1 MiB).
  size_t largest = router_.config().max_message_size;
  for (const auto& [topic, size] : router_.config().max_message_size_per_topic)
    largest = std::max(largest, size);
  service_.limits.max_rpc_size = std::max(service_.limits.max_rpc_size, largest + kRpcOverhead);
  // PX sends the signed peer records identify brought us (go-libp2p-pubsub makePrune).
  router_.set_peer_record_lookup([this](const PeerId& peer) -> const Bytes* {
    auto it = host_.peer_store().find(peer);
    return it == host_.peer_store().end() ? nullptr : &it->second.signed_peer_record;
  });
}

GossipsubService::~GossipsubService() {
  stop();
  *alive_ = false;
}

void GossipsubService::start() {
  if (running_) return;
  running_ = true;
  for (const auto& protocol : offered_protocols()) {
    host_.handle(
        protocol,
        [this, alive = alive_](std::shared_ptr<host::Stream> s) -> Task<void> {
          if (!*alive) co_return;
          co_await serve_inbound(std::move(s));
        },
        "pubsub");
  }
  host_.observe([this, alive = alive_](const std::shared_ptr<host::Connection>& conn,
                                       host::ConnectionEvent e) {
    if (*alive && running_) on_connection(conn, e);
  });
  for (const auto& conn : host_.connections())
    if (conn->is_open()) on_connection(conn, host::ConnectionEvent::opened);
  asio::co_spawn(host_.executor(), timer_loop(), asio::detached);
}

void GossipsubService::stop() {
  if (!running_) return;
  running_ = false;
  for (const auto& protocol : offered_protocols()) host_.unhandle(protocol);
  for (auto& [peer, link] : links_) {
    link->closed = true;
    link->queue_account.reset();
    if (link->in) link->in->reset();
    if (link->out) link->out->close_write();
    link->ready.notify();
  }
  links_.clear();
  timer_wake_.notify();
}

void GossipsubService::join(const TopicId& topic) {
  router_.join(topic, now());
  drain();
}

void GossipsubService::leave(const TopicId& topic) {
  router_.leave(topic, now());
  drain();
}

Result<MessageId> GossipsubService::publish(const TopicId& topic, Bytes data, uint64_t seqno) {
  auto id = router_.publish(topic, std::move(data), seqno, now());
  drain();
  return id;
}

void GossipsubService::on_connection(const std::shared_ptr<host::Connection>& conn,
                                     host::ConnectionEvent e) {
  const auto& peer = conn->remote_peer();
  if (e == host::ConnectionEvent::opened) {
    auto& link = links_[peer];
    if (!link) link = std::make_shared<Link>(peer, host_.executor());
    if (!link->conn || !link->conn->is_open()) link->conn = conn;
    if (!link->out && !link->opening)
      asio::co_spawn(host_.executor(), open_outbound(peer, link->conn), asio::detached);
    return;
  }
  auto it = links_.find(peer);
  if (it == links_.end()) return;
  auto link = it->second;
  if (link->conn != conn) return;  // another connection of the peer closed
  if (auto other = host_.connection_to(peer)) {
    // Move to the peer's remaining connection; the outbound stream died with the old one.
    link->conn = other;
    link->queue_account.reset();
    link->out.reset();
    if (!link->opening)
      asio::co_spawn(host_.executor(), open_outbound(peer, other), asio::detached);
    return;
  }
  link->closed = true;
  link->queue_account.reset();
  link->ready.notify();
  links_.erase(it);
  if (link->in_router) {
    router_.remove_peer(peer, now());
    drain();
  }
}

Task<void> GossipsubService::open_outbound(crypto::PeerId peer,
                                           std::shared_ptr<host::Connection> conn) {
  auto it = links_.find(peer);
  if (it == links_.end()) co_return;
  auto link = it->second;
  link->opening = true;
  auto stream = co_await host_.new_stream(conn, offered_protocols());
  link->opening = false;
  if (link->closed || !running_) {
    if (stream) (*stream)->reset();
    co_return;
  }
  if (!stream) {
    spdlog::debug("pubsub: {} does not speak pubsub: {}", peer.to_string(),
                  stream.error().to_string());
    co_return;
  }
  link->out = *stream;
  link->queue_account = std::make_unique<host::BufferAccount>(*link->out);
  if (!link->queue_account->update(link->queued_bytes)) {
    // What was queued before the stream opened does not fit this peer's account: drop it.
    dropped_rpcs_ += link->queue.size();
    link->queue.clear();
    link->queued_bytes = 0;
  }
  add_to_router(*link, peer_kind_of(link->out->protocol()));
  if (!link->writing) asio::co_spawn(host_.executor(), write_loop(link), asio::detached);
}

void GossipsubService::add_to_router(Link& link, PeerKind kind) {
  if (link.in_router || !link.conn) return;
  link.in_router = true;
  router_.add_peer(link.peer, kind, link.conn->info().outbound, ip_of(*link.conn), now());
  drain();
}

Task<void> GossipsubService::serve_inbound(std::shared_ptr<host::Stream> stream) {
  auto peer = stream->remote_peer();
  auto it = links_.find(peer);
  if (it == links_.end()) {
    stream->reset();
    co_return;
  }
  auto link = it->second;
  if (link->in && link->in != stream) {
    // One inbound stream per peer: the newest wins, the older one (and its partial RPC) goes.
    // Abandoning a frame half sent is how a peer makes us hold its bytes: P7.
    ++replaced_inbound_streams_;
    if (link->in_partial) router_.penalize(peer);
    link->in->reset();
  }
  link->in_partial = false;
  link->in = stream;
  add_to_router(*link, peer_kind_of(stream->protocol()));
  RpcReader reader(service_.limits);
  Bytes buffer(64 * 1024);
  // The read buffer and the partial RPC are held for this peer: on its account.
  host::BufferAccount account(*stream);
  struct Forget {
    Link& link;
    const std::shared_ptr<host::Stream>& stream;
    ~Forget() {
      if (link.in == stream) link.in.reset();
    }
  } forget{*link, stream};
  if (auto r = account.update(buffer.size()); !r) {
    stream->reset();
    co_return;
  }
  for (;;) {
    auto n = co_await stream->read_some(buffer);
    if (!n || *n == 0 || !running_) break;
    if (auto r = account.update(buffer.size() + reader.buffered() + *n); !r) {
      if (stream_drops.allow(Clock::now()))
        spdlog::warn("pubsub: resetting stream from {}: {} ({} similar lines suppressed)",
                     peer.to_string(), r.error().message, stream_drops.suppressed());
      stream->reset();
      co_return;
    }
    reader.feed(BytesView(buffer.data(), *n));
    for (;;) {
      size_t dropped_before = reader.dropped();
      auto rpc = reader.next();
      if (!rpc) {
        // A malformed or oversized frame: the stream is unusable. Reset only, as go and rust
        // do: a frame limit another implementation sets differently is not misbehaviour.
        if (stream_drops.allow(Clock::now()))
          spdlog::info("pubsub: dropping stream from {}: {} ({} similar lines suppressed)",
                       peer.to_string(), rpc.error().to_string(), stream_drops.suppressed());
        stream->reset();
        co_return;
      }
      if (!*rpc) break;
      if (size_t n = reader.dropped() - dropped_before; n > 0) {
        truncated_items_ += n;
        spdlog::debug("pubsub: {} sent an RPC over the limits: {} items dropped", peer.to_string(),
                      n);
      }
      std::vector<TopicId> announced;
      if (topic_announced_)
        for (const auto& sub : (**rpc).subscriptions)
          if (sub.subscribe) announced.push_back(sub.topic);
      router_.handle_rpc(peer, std::move(**rpc), now());
      drain();
      if (!announced.empty()) {
        auto taken = router_.peer_topics(peer);  // sorted: the router keeps a std::set
        for (const auto& topic : announced)
          if (std::binary_search(taken.begin(), taken.end(), topic)) topic_announced_(peer, topic);
      }
    }
    (void)account.update(buffer.size() + reader.buffered());  // shrinks: cannot fail
    if (link->in == stream) link->in_partial = reader.buffered() > 0;
  }
  stream->close_write();
}

void GossipsubService::enqueue(const PeerId& peer, Rpc rpc) {
  auto it = links_.find(peer);
  if (it == links_.end() || it->second->closed) {
    ++dropped_rpcs_;
    return;
  }
  auto& link = *it->second;
  for (auto& piece : split_rpc(std::move(rpc), kMaxOutboundRpcSize, service_.limits)) {
    Bytes frame;
    append_framed_rpc(frame, piece);
    if (link.queued_bytes + frame.size() > service_.max_queued_bytes_per_peer) {
      // A peer that does not keep up loses messages and gossip, never mesh membership:
      // subscriptions, GRAFT and PRUNE are small and go out anyway, or mesh views diverge.
      Rpc membership;
      membership.subscriptions = std::move(piece.subscriptions);
      membership.control.graft = std::move(piece.control.graft);
      membership.control.prune = std::move(piece.control.prune);
      if (dropped_rpcs_++ % 1000 == 0)
        spdlog::warn("pubsub: {} is not keeping up: dropping RPCs (max_queued_bytes_per_peer {})",
                     peer.to_string(), service_.max_queued_bytes_per_peer);
      if (membership.empty()) continue;
      frame.clear();
      append_framed_rpc(frame, membership);
    }
    if (link.queue_account) {
      if (auto r = link.queue_account->update(link.queued_bytes + frame.size()); !r) {
        // The peer's (or the system's) memory is spent: the peer loses this RPC, as a slow
        // peer does at max_queued_bytes_per_peer.
        if (dropped_rpcs_++ % 1000 == 0)
          spdlog::warn("pubsub: dropping RPCs to {}: {}", peer.to_string(), r.error().message);
        continue;
      }
    }
    link.queued_bytes += frame.size();
    link.queue.push_back(std::move(frame));
  }
  link.ready.notify();
  if (!link.out && !link.opening && link.conn && link.conn->is_open())
    asio::co_spawn(host_.executor(), open_outbound(peer, link.conn), asio::detached);
}

Task<void> GossipsubService::write_loop(std::shared_ptr<Link> link) {
  link->writing = true;
  while (!link->closed && link->out) {
    if (link->queue.empty()) {
      co_await link->ready.wait();
      continue;
    }
    // Coalesce what is queued into one write: fewer, larger frames on the wire.
    Bytes batch = std::move(link->queue.front());
    link->queue.pop_front();
    while (!link->queue.empty() && batch.size() < 256 * 1024) {
      append(batch, link->queue.front());
      link->queue.pop_front();
    }
    link->queued_bytes = 0;
    for (const auto& q : link->queue) link->queued_bytes += q.size();
    if (link->queue_account) (void)link->queue_account->update(link->queued_bytes);
    auto stream = link->out;
    link->writing_since = now();
    auto w = co_await stream->write(batch);
    link->writing_since.reset();
    if (!w) {
      spdlog::debug("pubsub: writing to {}: {}", link->peer.to_string(), w.error().to_string());
      stream->reset();
      if (link->out == stream) {
        link->queue_account.reset();
        link->out.reset();
      }
      break;
    }
  }
  link->writing = false;
}

Task<void> GossipsubService::timer_loop() {
  auto alive = alive_;
  while (*alive && running_) {
    co_await timer_wake_.wait_until(router_.next_deadline());
    if (!*alive || !running_) break;
    if (now() >= router_.next_deadline()) {
      router_.on_timer(now());
      drain();
      disconnect_stalled_peers(now());
    }
  }
}

void GossipsubService::disconnect_stalled_peers(Time now) {
  if (service_.write_stall_timeout.count() <= 0) return;
  std::vector<std::shared_ptr<Link>> stalled;
  for (const auto& [peer, link] : links_)
    if (link->writing_since && now - *link->writing_since >= service_.write_stall_timeout)
      stalled.push_back(link);
  for (const auto& link : stalled) {
    ++stalled_peers_;
    spdlog::warn("pubsub: {} took none of our RPCs for {} ms: disconnecting",
                 link->peer.to_string(), service_.write_stall_timeout.count());
    link->writing_since.reset();
    if (link->out) link->out->reset();  // ends the blocked write
    host_.disconnect(link->peer, "pubsub: peer stopped reading");
  }
}

void GossipsubService::drain() {
  if (draining_) return;  // the outer call keeps polling
  draining_ = true;
  auto before = router_.next_deadline();
  while (auto action = router_.poll_action()) {
    std::visit(
        [&](auto& a) {
          using A = std::decay_t<decltype(a)>;
          if constexpr (std::is_same_v<A, SendRpc>) {
            enqueue(a.peer, std::move(a.rpc));
          } else if constexpr (std::is_same_v<A, DeliverMessage>) {
            for (auto& h : handlers_) h(a);
          } else if constexpr (std::is_same_v<A, ValidateMessage>) {
            auto done = [this, alive = alive_, id = a.id](Verdict verdict) {
              if (!*alive) return;
              router_.report_validation(id, verdict, now());
              drain();
            };
            if (validator_)
              validator_(a, done);
            else
              done(Verdict::accept);
          } else if constexpr (std::is_same_v<A, DisconnectPeer>) {
            host_.disconnect(a.peer, "pubsub");
          } else if constexpr (std::is_same_v<A, ConnectPeers>) {
            for (const auto& record : a.peers) {
              auto peer = crypto::PeerId::from_bytes(record.peer_id);
              if (!peer || *peer == host_.peer_id() || host_.connection_to(*peer)) continue;
              // Bounded as go's connector queue: beyond prune_peers dials under way, skip.
              if (connect_dials_ >= router_.config().prune_peers) break;
              // A signed record (the router checked it is the peer's) gives the addresses;
              // without one, only what our peer store already knows can be dialed.
              if (record.signed_peer_record)
                (void)host_.add_signed_peer_record(*peer, *record.signed_peer_record);
              if (auto d = service_.direct_peer_addrs.find(*peer);
                  d != service_.direct_peer_addrs.end())
                host_.add_addrs(*peer, d->second);
              ++connect_dials_;
              asio::co_spawn(
                  host_.executor(),
                  [this, alive = alive_, p = *peer]() -> Task<void> {
                    (void)co_await host_.connect(p);
                    if (*alive) --connect_dials_;
                  },
                  asio::detached);
            }
          }
        },
        *action);
  }
  draining_ = false;
  if (router_.next_deadline() < before) timer_wake_.notify();
}

}  // namespace p2pmq::pubsub
