#include "agent_backend.hpp"

#include <spdlog/spdlog.h>

namespace p2pmq::cli {

namespace asio = host::asio;

AgentBackend::AgentBackend(host::Host& host, pubsub::GossipsubService& gossip, api::HoldConfig hold,
                           size_t max_topics)
    : host_(host), gossip_(gossip), held_(hold), max_topics_(max_topics) {
  gossip_.on_message([this](const pubsub::DeliverMessage& d) {
    if (!hooks_.own_delivery) deliver(to_agent_message(d, false));
  });
}

void AgentBackend::set_hooks(Hooks hooks) {
  hooks_ = std::move(hooks);
}

Result<uint64_t> AgentBackend::next_seqno(const std::string& topic) {
  if (hooks_.next_seqno) {
    auto seqno = hooks_.next_seqno(topic);
    if (seqno) seqnos_[topic] = *seqno;
    return seqno;
  }
  return ++seqnos_[topic];
}

Result<uint64_t> AgentBackend::wire_seqno(const std::string& topic, uint64_t count) {
  if (gossip_.router().id_fn(topic) != pubsub::MessageIdFn::stock) return count;
  Result<uint32_t> number =
      hooks_.topic_number ? hooks_.topic_number(topic)
                          : topic_numbers_.try_emplace(topic, topic_numbers_.size()).first->second;
  if (!number) return tl::unexpected(number.error());
  return pubsub::stock_seqno(*number, count);
}

api::AgentMessage AgentBackend::to_agent_message(const pubsub::DeliverMessage& d, bool synced) {
  api::AgentMessage m;
  m.id = d.id;
  m.topic = d.message.topic;
  m.data = d.message.data;
  if (d.message.from) {
    auto origin = crypto::PeerId::from_bytes(*d.message.from);
    if (origin) m.origin = origin->to_string();
  }
  m.seqno = pubsub::seqno_value(d.message).value_or(0);
  m.received = std::chrono::system_clock::now();
  m.synced = synced;
  return m;
}

void AgentBackend::deliver_item(const std::string& topic, api::ListenItem item) {
  auto it = listeners_.find(topic);
  if (it == listeners_.end() || it->second.empty()) {
    // Nobody listens: hold it for the next listener if a client subscribed to the topic
    // (Control.Subscribe's promise), within the byte bound.
    if (!gossip_.router().is_subscribed(topic)) return;
    uint64_t dropped = held_.dropped();
    if (held_.hold(topic, item) && held_.dropped() != dropped && dropped % 1000 == 0)
      spdlog::warn("{}: no listener and {} bytes held: dropping the oldest", topic, held_.bytes());
    return;
  }
  const auto shared = std::make_shared<const api::ListenItem>(std::move(item));
  for (auto& [handle, listener] : it->second) listener.sink(shared);
}

void AgentBackend::deliver(const api::AgentMessage& message) {
  deliver_item(message.topic, api::ListenItem(message));
}

void AgentBackend::deliver_gap(const api::GapNotice& gap) {
  deliver_item(gap.topic, api::ListenItem(gap));
}

size_t AgentBackend::ordered_listeners(const std::string& topic) const {
  auto it = listeners_.find(topic);
  if (it == listeners_.end()) return 0;
  size_t n = 0;
  for (const auto& [handle, listener] : it->second) n += listener.ordered;
  return n;
}

void AgentBackend::set_status_extender(std::function<void(api::AgentStatus&)> extender) {
  status_extender_ = std::move(extender);
}

Result<void> AgentBackend::join(const std::string& topic) {
  if (gossip_.router().is_subscribed(topic)) return {};
  if (size_t joined = gossip_.router().topics().size(); joined >= max_topics_)
    return fail(Errc::limit_exceeded,
                fmt::format("the agent has joined {} topics, the limit (grpc.max_topics)", joined));
  gossip_.join(topic);
  if (hooks_.subscription_changed) hooks_.subscription_changed(topic, true);
  return {};
}

void AgentBackend::subscribe(const std::string& topic, std::function<void(Result<void>)> done) {
  asio::post(host_.executor(), [this, topic, done = std::move(done)] {
    if (auto r = join(topic); !r) return done(r);
    held_.request(topic);
    done({});
  });
}

void AgentBackend::hold_for(const std::string& topic) {
  held_.request(topic);
}

void AgentBackend::unsubscribe(const std::string& topic, std::function<void(Result<void>)> done) {
  asio::post(host_.executor(), [this, topic, done = std::move(done)] {
    if (gossip_.router().is_subscribed(topic)) {
      gossip_.leave(topic);
      if (hooks_.subscription_changed) hooks_.subscription_changed(topic, false);
    }
    held_.release(topic);
    done({});
  });
}

void AgentBackend::publish(const std::string& topic, Bytes data,
                           std::function<void(Result<api::PublishResult>)> done) {
  asio::post(host_.executor(),
             [this, topic, data = std::move(data), done = std::move(done)]() mutable {
               // Publishing to an unknown topic joins it (p2pmq spec).
               if (auto r = join(topic); !r) return done(tl::unexpected(r.error()));
               auto seqno = next_seqno(topic);
               if (!seqno) {
                 done(tl::unexpected(seqno.error()));
                 return;
               }
               if (!hooks_.make_durable) {
                 publish_numbered(topic, std::move(data), *seqno, std::move(done));
                 return;
               }
               // The seqno goes out once its counter is on disk (in order: the syncs answer
               // in the order they were asked).
               hooks_.make_durable([this, topic, data = std::move(data), seqno = *seqno,
                                    done = std::move(done)](Result<void> synced) mutable {
                 if (!synced) {
                   give_back_seqno(topic, seqno);
                   done(tl::unexpected(synced.error()));
                   return;
                 }
                 publish_numbered(topic, std::move(data), seqno, std::move(done));
               });
             });
}

void AgentBackend::give_back_seqno(const std::string& topic, uint64_t seqno) {
  // Keeps the numbering contiguous when it is still the last one out.
  if (hooks_.rollback_seqno) hooks_.rollback_seqno(topic, seqno);
  if (seqnos_[topic] == seqno) seqnos_[topic] = seqno - 1;
}

void AgentBackend::publish_numbered(const std::string& topic, Bytes data, uint64_t seqno,
                                    std::function<void(Result<api::PublishResult>)> done) {
  auto wire = wire_seqno(topic, seqno);
  auto id = wire ? gossip_.publish(topic, std::move(data), *wire)
                 : Result<pubsub::MessageId>(tl::unexpected(wire.error()));
  if (!id) {
    give_back_seqno(topic, seqno);
    done(tl::unexpected(id.error()));
    return;
  }
  done(api::PublishResult{*id, *wire});
}

uint64_t AgentBackend::add_listener(const std::string& topic, api::ListenOptions options,
                                    std::function<void(const api::SharedListenItem&)> sink,
                                    std::function<void(const Error&)> refused) {
  uint64_t handle = next_handle_++;
  asio::post(host_.executor(), [this, topic, handle, options, sink = std::move(sink),
                                refused = std::move(refused)]() mutable {
    // Listening on an unknown topic subscribes to it (p2pmq spec).
    if (auto r = join(topic); !r) return refused(r.error());
    auto& listener = listeners_[topic][handle];
    listener = Listener{options.ordered, std::move(sink)};
    listener_topics_[handle] = topic;
    for (auto& item : held_.take(topic))
      listener.sink(std::make_shared<const api::ListenItem>(std::move(item)));
    if (hooks_.listeners_changed) hooks_.listeners_changed(topic, ordered_listeners(topic));
  });
  return handle;
}

void AgentBackend::remove_listener(uint64_t handle) {
  asio::post(host_.executor(), [this, handle] {
    auto it = listener_topics_.find(handle);
    if (it == listener_topics_.end()) return;
    auto topic = it->second;
    listeners_[topic].erase(handle);
    listener_topics_.erase(it);
    if (hooks_.listeners_changed) hooks_.listeners_changed(topic, ordered_listeners(topic));
  });
}

void AgentBackend::status(std::function<void(api::AgentStatus)> done) {
  asio::post(host_.executor(), [this, done = std::move(done)] { done(status_now()); });
}

api::AgentStatus AgentBackend::status_now() const {
  api::AgentStatus s;
  s.peer_id = host_.peer_id().to_string();
  for (const auto& a : host_.listen_addrs())
    s.listen_addrs.push_back(a.with_p2p(host_.peer_id().bytes()).to_string());
  const auto& router = gossip_.router();
  s.topics = router.topics();
  auto now = pubsub::Clock::now();
  for (const auto& conn : host_.connections()) {
    const auto& peer = conn->remote_peer();
    if (std::any_of(s.peers.begin(), s.peers.end(),
                    [&](const api::PeerStatus& p) { return p.peer_id == peer.to_string(); }))
      continue;
    api::PeerStatus p;
    p.peer_id = peer.to_string();
    p.addrs.push_back(conn->info().remote_addr.to_string());
    p.topics = router.peer_topics(peer);
    for (const auto& t : s.topics) {
      auto mesh = router.mesh(t);
      if (std::find(mesh.begin(), mesh.end(), peer) != mesh.end()) p.mesh_topics.push_back(t);
    }
    p.score = router.score(peer, now);
    auto info = host_.peer_store().find(peer);
    if (info != host_.peer_store().end()) p.agent_version = info->second.agent_version;
    s.peers.push_back(std::move(p));
  }
  s.connected_peers = s.peers.size();
  for (const auto& t : s.topics) {
    api::TopicStatus ts;
    ts.topic = t;
    if (auto it = seqnos_.find(t); it != seqnos_.end()) ts.published_seqno = it->second;
    s.topic_status.push_back(std::move(ts));
  }
  if (status_extender_) status_extender_(s);
  return s;
}

}  // namespace p2pmq::cli
