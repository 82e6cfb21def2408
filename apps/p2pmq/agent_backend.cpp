#include "agent_backend.hpp"

#include <spdlog/spdlog.h>

namespace p2pmq::cli {

namespace asio = host::asio;

AgentBackend::AgentBackend(host::Host& host, pubsub::GossipsubService& gossip)
    : host_(host), gossip_(gossip) {
  gossip_.on_message([this](const pubsub::DeliverMessage& d) { deliver(d); });
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

void AgentBackend::deliver(const pubsub::DeliverMessage& d) {
  auto it = listeners_.find(d.message.topic);
  if (it == listeners_.end() || it->second.empty()) return;
  auto message = to_agent_message(d, false);
  for (auto& [handle, sink] : it->second) sink(message);
}

void AgentBackend::subscribe(const std::string& topic, std::function<void(Result<void>)> done) {
  asio::post(host_.executor(), [this, topic, done = std::move(done)] {
    if (!gossip_.router().is_subscribed(topic)) gossip_.join(topic);
    done({});
  });
}

void AgentBackend::unsubscribe(const std::string& topic, std::function<void(Result<void>)> done) {
  asio::post(host_.executor(), [this, topic, done = std::move(done)] {
    if (gossip_.router().is_subscribed(topic)) gossip_.leave(topic);
    done({});
  });
}

void AgentBackend::publish(const std::string& topic, Bytes data,
                           std::function<void(Result<api::PublishResult>)> done) {
  asio::post(host_.executor(),
             [this, topic, data = std::move(data), done = std::move(done)]() mutable {
               // Publishing to an unknown topic joins it (p2pmq spec).
               if (!gossip_.router().is_subscribed(topic)) gossip_.join(topic);
               uint64_t seqno = next_seqno(topic);
               auto id = gossip_.publish(topic, std::move(data), seqno);
               if (!id) {
                 --seqnos_[topic];  // keep the numbering contiguous
                 done(tl::unexpected(id.error()));
                 return;
               }
               done(api::PublishResult{*id, seqno});
             });
}

uint64_t AgentBackend::add_listener(const std::string& topic,
                                    std::function<void(const api::AgentMessage&)> sink) {
  uint64_t handle = next_handle_++;
  asio::post(host_.executor(), [this, topic, handle, sink = std::move(sink)]() mutable {
    // Listening on an unknown topic subscribes to it (p2pmq spec).
    if (!gossip_.router().is_subscribed(topic)) gossip_.join(topic);
    listeners_[topic][handle] = std::move(sink);
    listener_topics_[handle] = topic;
  });
  return handle;
}

void AgentBackend::remove_listener(uint64_t handle) {
  asio::post(host_.executor(), [this, handle] {
    auto it = listener_topics_.find(handle);
    if (it == listener_topics_.end()) return;
    listeners_[it->second].erase(handle);
    listener_topics_.erase(it);
  });
}

void AgentBackend::status(std::function<void(api::AgentStatus)> done) {
  asio::post(host_.executor(), [this, done = std::move(done)] {
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
    done(std::move(s));
  });
}

}  // namespace p2pmq::cli
