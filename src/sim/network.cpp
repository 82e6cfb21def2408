#include "sim/network.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "pubsub/rpc.hpp"

namespace p2pmq::sim {

namespace {

std::string key_of(const MessageId& id) {
  return std::string(as_string(id));
}

// splitmix64: independent-looking streams from (seed, index).
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

bool later(const auto& a, const auto& b) {  // heap order: earliest (at, seq) on top
  return a.at != b.at ? a.at > b.at : a.seq > b.seq;
}

size_t control_entries(const pubsub::ControlMessage& c) {
  return c.ihave.size() + c.iwant.size() + c.graft.size() + c.prune.size() + c.idontwant.size();
}

}  // namespace

Duration DeliveryStats::percentile(double p) const {
  if (latencies.empty()) return Duration::zero();
  double rank = std::ceil(p / 100.0 * static_cast<double>(latencies.size()));
  size_t i = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return latencies[std::min(i, latencies.size() - 1)];
}

Network::Network(NetworkConfig config)
    : config_(std::move(config)), rng_(mix(config_.seed)), now_(config_.start) {}

Network::~Network() = default;

// ---- Nodes and topology ------------------------------------------------------------------------

NodeId Network::add_node(const NodeConfig& config) {
  if (auto ok = pubsub::validate(config.score); !ok)
    throw std::invalid_argument(ok.error().message);
  if (auto ok = pubsub::validate(config.thresholds); !ok)
    throw std::invalid_argument(ok.error().message);
  const NodeId n = nodes_.size();
  Rng key_rng(mix(config_.seed ^ mix(n)));
  crypto::PrivateKey::Seed seed{};
  for (auto& b : seed) b = static_cast<uint8_t>(key_rng());
  auto key = crypto::PrivateKey::from_seed(seed);
  PeerId id = PeerId::from_public_key(key.public_key());

  pubsub::GossipsubConfig gossip = config.gossip;
  gossip.seed = mix(config_.seed + 0x5151 + n);
  std::string ip = config.ip;
  if (ip.empty()) {
    const size_t i = n + 1;
    ip = "10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) + "." +
         std::to_string(i & 255);
  }
  auto router = std::make_unique<pubsub::Router>(id, key, std::move(gossip), config.score,
                                                 config.thresholds, now_);
  by_peer_.emplace(id, n);
  Node node{std::move(id)};
  node.ip = std::move(ip);
  node.router = std::move(router);
  nodes_.push_back(std::move(node));
  schedule_timer(n);
  return n;
}

std::vector<NodeId> Network::add_nodes(size_t count, const NodeConfig& config) {
  std::vector<NodeId> out;
  for (size_t i = 0; i < count; ++i) out.push_back(add_node(config));
  return out;
}

void Network::connect(NodeId dialer, NodeId listener) {
  if (dialer == listener || connected(dialer, listener)) return;
  Node& a = nodes_.at(dialer);
  Node& b = nodes_.at(listener);
  Link l;
  if (config_.latency) {
    l.latency = config_.latency(dialer, listener, rng_);
  } else {
    std::uniform_int_distribution<Duration::rep> d(config_.min_latency.count(),
                                                   config_.max_latency.count());
    l.latency = Duration(d(rng_));
  }
  l.loss = config_.loss;
  a.links[listener] = l;
  b.links[dialer] = l;
  a.router->add_peer(b.id, pubsub::PeerKind::gossipsub_v1_2, true, b.ip, now_);
  b.router->add_peer(a.id, pubsub::PeerKind::gossipsub_v1_2, false, a.ip, now_);
  drain(dialer);
  drain(listener);
}

void Network::disconnect(NodeId a, NodeId b) {
  if (!connected(a, b)) return;
  nodes_[a].links.erase(b);
  nodes_[b].links.erase(a);
  nodes_[a].router->remove_peer(nodes_[b].id, now_);
  nodes_[b].router->remove_peer(nodes_[a].id, now_);
  drain(a);
  drain(b);
}

bool Network::connected(NodeId a, NodeId b) const {
  return nodes_.at(a).links.contains(b);
}

std::vector<NodeId> Network::neighbours(NodeId node) const {
  std::vector<NodeId> out;
  for (const auto& [peer, l] : nodes_.at(node).links) out.push_back(peer);
  return out;
}

void Network::connect_random(const std::vector<NodeId>& dialers, const std::vector<NodeId>& targets,
                             size_t k) {
  for (NodeId d : dialers) {
    std::vector<NodeId> candidates;
    for (NodeId t : targets) {
      if (t != d && !connected(d, t)) candidates.push_back(t);
    }
    // Partial Fisher-Yates: the first k are a uniform sample.
    size_t take = std::min(k, candidates.size());
    for (size_t i = 0; i < take; ++i) {
      std::uniform_int_distribution<size_t> pick(i, candidates.size() - 1);
      std::swap(candidates[i], candidates[pick(rng_)]);
      connect(d, candidates[i]);
    }
  }
}

void Network::connect_random(size_t k) {
  std::vector<NodeId> all(nodes_.size());
  for (NodeId i = 0; i < all.size(); ++i) all[i] = i;
  connect_random(all, all, k);
}

void Network::set_loss(NodeId a, NodeId b, double loss) {
  if (Link* l = link(a, b)) l->loss = loss;
  if (Link* l = link(b, a)) l->loss = loss;
}

void Network::set_latency(NodeId a, NodeId b, Duration latency) {
  if (Link* l = link(a, b)) l->latency = latency;
  if (Link* l = link(b, a)) l->latency = latency;
}

Network::Link* Network::link(NodeId a, NodeId b) {
  auto& links = nodes_.at(a).links;
  auto it = links.find(b);
  return it == links.end() ? nullptr : &it->second;
}

// ---- Hooks and application ---------------------------------------------------------------------

void Network::set_validator(NodeId node, Validator validator) {
  nodes_.at(node).validator = std::move(validator);
}

void Network::set_send_filter(NodeId node, SendFilter filter) {
  nodes_.at(node).filter = std::move(filter);
}

void Network::join(NodeId node, const TopicId& topic) {
  subscribers_[topic].insert(node);
  nodes_.at(node).router->join(topic, now_);
  drain(node);
}

void Network::leave(NodeId node, const TopicId& topic) {
  subscribers_[topic].erase(node);
  nodes_.at(node).router->leave(topic, now_);
  drain(node);
}

Result<MessageId> Network::publish(NodeId node, const TopicId& topic, Bytes data) {
  Node& n = nodes_.at(node);
  uint64_t seqno = ++n.seqno[topic];
  auto id = n.router->publish(topic, std::move(data), seqno, now_);
  if (id) {
    MessageRecord& rec = messages_[key_of(*id)];
    rec.id = *id;
    rec.topic = topic;
    rec.origin = node;
    rec.published = now_;
    published_.push_back(*id);
  }
  drain(node);
  return id;
}

// ---- Scheduler ---------------------------------------------------------------------------------

void Network::push(Time at, decltype(Event::what) what) {
  queue_.push_back(Event{at, seq_++, std::move(what)});
  std::push_heap(queue_.begin(), queue_.end(),
                 [](const Event& a, const Event& b) { return later(a, b); });
}

void Network::at(Time at, std::function<void()> fn) {
  push(std::max(at, now_), Callback{std::move(fn)});
}

void Network::run_until(Time end) {
  auto cmp = [](const Event& a, const Event& b) { return later(a, b); };
  while (!queue_.empty() && queue_.front().at <= end) {
    std::pop_heap(queue_.begin(), queue_.end(), cmp);
    Event event = std::move(queue_.back());
    queue_.pop_back();
    now_ = event.at;
    ++counters_.events;
    dispatch(event);
  }
  if (end > now_) now_ = end;
}

void Network::dispatch(Event& event) {
  if (auto* r = std::get_if<RpcArrival>(&event.what)) {
    // The link may have gone away while the RPC was in flight.
    if (!connected(r->to, r->from)) {
      ++counters_.rpcs_unroutable;
      return;
    }
    ++counters_.rpcs_delivered;
    nodes_[r->to].router->handle_rpc(nodes_[r->from].id, std::move(r->rpc), now_);
    drain(r->to);
  } else if (auto* v = std::get_if<ValidationDone>(&event.what)) {
    nodes_[v->node].router->report_validation(v->id, v->verdict, now_);
    drain(v->node);
  } else if (auto* t = std::get_if<TimerFire>(&event.what)) {
    Node& n = nodes_[t->node];
    if (event.at != n.timer_at) return;  // superseded by an earlier timer
    n.timer_at = Time::max();
    if (n.router->next_deadline() <= now_) {
      n.router->on_timer(now_);
      n.last_timer = now_;
      ++counters_.timers;
      if (n.router->next_deadline() <= now_) ++counters_.timer_stalls;
    }
    drain(t->node);
  } else if (auto* c = std::get_if<Callback>(&event.what)) {
    c->fn();
  }
}

void Network::schedule_timer(NodeId node) {
  Node& n = nodes_[node];
  Time due = std::max(n.router->next_deadline(), now_);
  // A router whose deadline did not move past now in on_timer would spin at one instant.
  if (due == now_ && n.last_timer == now_) due = now_ + 1ms;
  if (due >= n.timer_at) return;
  n.timer_at = due;
  push(due, TimerFire{node});
}

void Network::drain(NodeId node) {
  Node& n = nodes_[node];
  while (auto action = n.router->poll_action()) {
    if (auto* s = std::get_if<pubsub::SendRpc>(&*action)) {
      transmit(node, s->peer, std::move(s->rpc));
    } else if (auto* v = std::get_if<pubsub::ValidateMessage>(&*action)) {
      ++counters_.validations;
      std::optional<Validation> answer = Validation{};
      if (n.validator) answer = n.validator(node, *v);
      if (!answer) continue;  // left to the router's validation timeout
      if (answer->delay <= Duration::zero()) {
        n.router->report_validation(v->id, answer->verdict, now_);  // its actions follow here
      } else {
        push(now_ + answer->delay, ValidationDone{node, v->id, answer->verdict});
      }
    } else if (auto* d = std::get_if<pubsub::DeliverMessage>(&*action)) {
      record_delivery(node, *d);
    } else if (auto* x = std::get_if<pubsub::DisconnectPeer>(&*action)) {
      if (auto other = node_of(x->peer); other && connected(node, *other)) {
        ++counters_.disconnects;
        disconnect(node, *other);
      }
    } else if (auto* c = std::get_if<pubsub::ConnectPeers>(&*action)) {
      for (const auto& record : c->peers) {
        auto peer = PeerId::from_bytes(record.peer_id);
        if (!peer) continue;
        auto other = node_of(*peer);
        if (!other || connected(node, *other)) continue;
        ++counters_.px_connects;
        connect(node, *other);
      }
    }
  }
  schedule_timer(node);
}

void Network::transmit(NodeId from, const PeerId& to_peer, pubsub::Rpc rpc) {
  auto to = node_of(to_peer);
  Link* l = to ? link(from, *to) : nullptr;
  if (!l) {
    ++counters_.rpcs_unroutable;
    return;
  }
  if (const Node& n = nodes_[from]; n.filter && !n.filter(from, *to, rpc)) {
    ++counters_.rpcs_filtered;
    return;
  }
  ++counters_.rpcs_sent;
  counters_.messages_sent += rpc.publish.size();
  counters_.control_sent += control_entries(rpc.control);
  if (config_.count_bytes) counters_.bytes_sent += pubsub::encode_rpc(rpc).size();
  if (l->loss > 0 && (config_.loss_includes_control || !rpc.publish.empty())) {
    if (std::uniform_real_distribution<double>(0, 1)(rng_) < l->loss) {
      ++counters_.rpcs_lost;
      return;
    }
  }
  push(now_ + l->latency, RpcArrival{from, *to, std::move(rpc)});
}

void Network::record_delivery(NodeId node, const pubsub::DeliverMessage& d) {
  ++counters_.deliveries;
  MessageRecord& rec = messages_[key_of(d.id)];
  if (rec.id.empty()) {  // not published through publish()
    rec.id = d.id;
    rec.topic = d.message.topic;
    rec.published = now_;
  }
  if (!rec.delivered.emplace(node, now_).second) ++counters_.duplicate_deliveries;
}

// ---- Access and metrics ------------------------------------------------------------------------

std::optional<NodeId> Network::node_of(const PeerId& peer) const {
  auto it = by_peer_.find(peer);
  if (it == by_peer_.end()) return std::nullopt;
  return it->second;
}

pubsub::RouterCounters Network::router_counters() const {
  pubsub::RouterCounters sum;
  for (const auto& n : nodes_) {
    const auto& c = n.router->counters();
    sum.published += c.published;
    sum.delivered += c.delivered;
    sum.forwarded += c.forwarded;
    sum.duplicates += c.duplicates;
    sum.rejected += c.rejected;
    sum.ignored += c.ignored;
    sum.validation_timeouts += c.validation_timeouts;
    sum.throttled += c.throttled;
    sum.too_large += c.too_large;
    sum.not_subscribed += c.not_subscribed;
    sum.graylisted_rpcs += c.graylisted_rpcs;
    sum.subscriptions_refused += c.subscriptions_refused;
    sum.iwant_served += c.iwant_served;
    sum.ihave_sent += c.ihave_sent;
    sum.broken_promises += c.broken_promises;
    sum.idontwant_sent += c.idontwant_sent;
    sum.idontwant_suppressed += c.idontwant_suppressed;
  }
  return sum;
}

std::vector<NodeId> Network::subscribers(const TopicId& topic) const {
  auto it = subscribers_.find(topic);
  if (it == subscribers_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

const MessageRecord* Network::message(const MessageId& id) const {
  auto it = messages_.find(key_of(id));
  return it == messages_.end() ? nullptr : &it->second;
}

DeliveryStats Network::delivery(const std::vector<MessageId>& ids,
                                const std::optional<std::vector<NodeId>>& subscribers) const {
  DeliveryStats stats;
  for (const auto& id : ids) {
    const MessageRecord* rec = message(id);
    if (!rec) continue;
    ++stats.messages;
    std::vector<NodeId> subs = subscribers ? *subscribers : this->subscribers(rec->topic);
    size_t expected = 0, delivered = 0;
    for (NodeId s : subs) {
      if (rec->origin && *rec->origin == s) continue;
      ++expected;
      auto d = rec->delivered.find(s);
      if (d == rec->delivered.end()) continue;
      ++delivered;
      stats.latencies.push_back(d->second - rec->published);
    }
    stats.expected += expected;
    stats.delivered += delivered;
    if (expected > 0) {
      stats.worst_ratio = std::min(stats.worst_ratio,
                                   static_cast<double>(delivered) / static_cast<double>(expected));
    }
  }
  std::sort(stats.latencies.begin(), stats.latencies.end());
  return stats;
}

std::map<size_t, size_t> Network::mesh_degrees(
    const TopicId& topic, const std::optional<std::vector<NodeId>>& nodes) const {
  std::map<size_t, size_t> out;
  for (NodeId n : nodes ? *nodes : subscribers(topic))
    ++out[nodes_.at(n).router->mesh(topic).size()];
  return out;
}

std::optional<double> Network::score(NodeId at, NodeId of) const {
  if (!connected(at, of)) return std::nullopt;
  return nodes_.at(at).router->score(nodes_.at(of).id, now_);
}

}  // namespace p2pmq::sim
