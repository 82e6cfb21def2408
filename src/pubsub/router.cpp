#include "pubsub/router.hpp"

#include "crypto/peer_record.hpp"

#include <algorithm>
#include <stdexcept>

#include "pubsub/rpc.hpp"

namespace p2pmq::pubsub {

namespace {

std::string key_of(const MessageId& id) {
  return std::string(as_string(id));
}

Result<void> bad(const char* key, const char* what) {
  return fail(Errc::invalid_input, std::string("gossip.") + key + ": " + what);
}

template <class T>
void truncate(std::vector<T>& v, size_t n) {  // resize() would need a default constructor
  if (v.size() > n) v.erase(v.begin() + static_cast<std::ptrdiff_t>(n), v.end());
}

bool supports_px(PeerKind kind) {
  return kind == PeerKind::gossipsub_v1_1 || kind == PeerKind::gossipsub_v1_2;
}

}  // namespace

Result<void> validate(const GossipsubConfig& c) {
  // D = 0 is the spec's setting for bootstrappers: no mesh of their own, PRUNE with PX.
  if (c.D_lo > c.D) return bad("D_lo", "must be <= D");
  if (c.D_hi < c.D) return bad("D_hi", "must be >= D");
  if (c.D_score > c.D) return bad("D_score", "must be <= D");
  // go-libp2p-pubsub: Dout < Dlo and Dout <= D/2, so the outbound quota can always be met.
  if (c.D_out >= c.D_lo && c.D_out > 0) return bad("D_out", "must be < D_lo");
  if (c.D_out > c.D / 2) return bad("D_out", "must be <= D/2");
  if (c.gossip_factor < 0 || c.gossip_factor > 1) return bad("gossip_factor", "must be in [0, 1]");
  if (c.heartbeat_interval <= Duration::zero()) return bad("heartbeat_interval", "must be > 0");
  if (c.heartbeat_initial_delay < Duration::zero())
    return bad("heartbeat_initial_delay", "must be >= 0");
  if (c.fanout_ttl <= Duration::zero()) return bad("fanout_ttl", "must be > 0");
  if (c.mcache_len == 0) return bad("mcache_len", "must be >= 1");
  if (c.mcache_gossip > c.mcache_len) return bad("mcache_gossip", "must be <= mcache_len");
  if (c.seen_ttl <= Duration::zero()) return bad("seen_ttl", "must be > 0");
  if (c.seen_max_entries == 0) return bad("seen_max_entries", "must be >= 1");
  if (c.prune_backoff <= Duration::zero()) return bad("prune_backoff", "must be > 0");
  if (c.unsubscribe_backoff <= Duration::zero()) return bad("unsubscribe_backoff", "must be > 0");
  if (c.max_backoff < c.prune_backoff) return bad("max_backoff", "must be >= prune_backoff");
  if (c.opportunistic_graft_ticks == 0) return bad("opportunistic_graft_ticks", "must be >= 1");
  if (c.direct_connect_ticks == 0) return bad("direct_connect_ticks", "must be >= 1");
  if (c.max_ihave_length == 0) return bad("max_ihave_length", "must be >= 1");
  if (c.max_iwant_length == 0) return bad("max_iwant_length", "must be >= 1");
  if (c.iwant_followup_time <= Duration::zero()) return bad("iwant_followup_time", "must be > 0");
  if (c.max_message_size == 0) return bad("max_message_size", "must be > 0");
  for (const auto& [topic, size] : c.max_message_size_per_topic) {
    if (size == 0) return bad("max_message_size_per_topic", "sizes must be > 0");
  }
  if (c.max_subscriptions_per_peer == 0) return bad("max_subscriptions_per_peer", "must be >= 1");
  if (c.max_pending_validations_per_topic == 0)
    return bad("max_pending_validations_per_topic", "must be >= 1");
  if (c.validation_timeout <= Duration::zero()) return bad("validation_timeout", "must be > 0");
  return {};
}

Router::Router(PeerId self, crypto::PrivateKey key, GossipsubConfig config,
               PeerScoreParams score_params, PeerScoreThresholds thresholds, Time now)
    : self_(std::move(self)),
      key_(std::move(key)),
      config_(std::move(config)),
      thresholds_(thresholds),
      score_(std::move(score_params), now),
      rng_(config_.seed),
      seen_(config_.seen_ttl, config_.seen_max_entries),
      mcache_(config_.mcache_len, config_.mcache_gossip, config_.mcache_max_messages),
      aliases_(config_.mcache_max_messages),
      next_heartbeat_(now + config_.heartbeat_initial_delay) {
  if (auto ok = validate(config_); !ok) throw std::invalid_argument(ok.error().message);
  direct_.insert(config_.direct_peers.begin(), config_.direct_peers.end());
}

// ---- Peers -----------------------------------------------------------------------------------

void Router::add_peer(const PeerId& peer, PeerKind kind, bool outbound, const std::string& ip,
                      Time now) {
  if (peer == self_ || peers_.contains(peer)) return;
  PeerState state;
  state.kind = kind;
  state.outbound = outbound;
  state.ip = ip;
  peers_.emplace(peer, std::move(state));
  score_.add_peer(peer, now);
  if (!ip.empty()) score_.add_ip(peer, ip);
  // Hello: our subscriptions, so the peer can graft us and forward to us.
  Rpc hello;
  for (const auto& [topic, mesh] : mesh_) hello.subscriptions.push_back(SubOpts{true, topic});
  if (!hello.empty()) send(peer, std::move(hello));
}

void Router::remove_peer(const PeerId& peer, Time now) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  // The score decides first whether to retain the peer: it still sees the mesh membership
  // (P1, and P3b for a mesh deficit) and keeps the IPs of a retained peer (P6), as go does.
  score_.remove_peer(peer, now);
  for (auto& [topic, peers] : mesh_) peers.erase(peer);
  for (auto& [topic, peers] : fanout_) peers.erase(peer);
  for (const auto& topic : it->second.topics) {
    auto tp = topic_peers_.find(topic);
    if (tp == topic_peers_.end()) continue;
    tp->second.erase(peer);
    if (tp->second.empty()) topic_peers_.erase(tp);
  }
  for (auto& [id, peers] : promises_) peers.erase(peer);
  outgoing_.erase(peer);
  peers_.erase(it);
  // Backoff entries stay: reconnecting must not bypass a backoff.
}

// ---- Local application -------------------------------------------------------------------------

void Router::join(const TopicId& topic, Time now) {
  if (mesh_.contains(topic)) return;
  trace(TraceType::join, topic);
  topic_counters_.try_emplace(topic);
  PeerSet peers;
  auto accept = [&](const PeerId& p) {
    return !peers.contains(p) && !is_direct(p) && !backing_off(p, topic) &&
           score_.score(p, now) >= 0;
  };
  // Fanout peers first: they already receive our messages (they may be below zero though,
  // fanout only asks for publish_threshold).
  if (auto f = fanout_.find(topic); f != fanout_.end()) {
    for (const auto& p : f->second) {
      if (accept(p)) peers.insert(p);
    }
    fanout_.erase(f);
    fanout_last_pub_.erase(topic);
  }
  if (peers.size() < config_.D) {
    for (const auto& p : select_peers(topic, config_.D - peers.size(), accept)) peers.insert(p);
  }
  auto& mesh = mesh_[topic];
  for (const auto& p : peers) {
    mesh.insert(p);
    score_.graft(p, topic, now);
    trace(TraceType::graft, topic, nullptr, &p);
  }
  // Announce the subscription to everyone; mesh peers get the GRAFT in the same RPC.
  for (const auto& [peer, state] : peers_) {
    Rpc rpc;
    rpc.subscriptions.push_back(SubOpts{true, topic});
    if (mesh.contains(peer)) rpc.control.graft.push_back(ControlGraft{topic});
    send(peer, std::move(rpc));
  }
}

void Router::leave(const TopicId& topic, Time now) {
  auto it = mesh_.find(topic);
  if (it == mesh_.end()) return;
  PeerSet mesh = std::move(it->second);
  mesh_.erase(it);
  trace(TraceType::leave, topic);
  topic_counters_.erase(topic);
  for (const auto& p : mesh) {
    score_.prune(p, topic, now);
    trace(TraceType::prune, topic, nullptr, &p);
    add_backoff(p, topic, config_.unsubscribe_backoff, now);
  }
  for (const auto& [peer, state] : peers_) {
    Rpc rpc;
    rpc.subscriptions.push_back(SubOpts{false, topic});
    // With PX, as go does: the peers we leave behind help the pruned one stay connected.
    if (mesh.contains(peer))
      rpc.control.prune.push_back(make_prune(peer, topic, config_.do_px, true, now));
    send(peer, std::move(rpc));
  }
}

Result<MessageId> Router::publish(const TopicId& topic, Bytes data, uint64_t seqno, Time now) {
  Message message = make_message(key_, topic, std::move(data), seqno, config_.signature_policy);
  if (encoded_size(message) > max_message_size(topic)) {
    return fail(Errc::limit_exceeded, "message larger than gossip.max_message_size");
  }
  MessageId id = message_id(message, id_fn(topic));
  if (!seen_.add(id, now)) return fail(Errc::invalid_input, "message already seen (seqno reuse?)");
  cache_message(id, message);
  ++counters_.published;
  trace(TraceType::publish, topic, &id);
  TopicCounters* tc = joined_counters(topic);
  if (tc) ++tc->published;

  PeerSet targets;
  if (config_.flood_publish) {
    // v1.1 flood publishing: every subscribed peer above the publish threshold, so our own
    // messages escape an eclipse of our mesh.
    if (auto tp = topic_peers_.find(topic); tp != topic_peers_.end()) {
      for (const auto& p : tp->second) {
        if (is_direct(p) || score_.score(p, now) >= thresholds_.publish_threshold)
          targets.insert(p);
      }
    }
  } else if (auto tp = topic_peers_.find(topic); tp != topic_peers_.end()) {
    for (const auto& p : tp->second) {
      bool flood = peers_.at(p).kind == PeerKind::floodsub &&
                   score_.score(p, now) >= thresholds_.publish_threshold;
      if (is_direct(p) || flood) targets.insert(p);
    }
    if (auto m = mesh_.find(topic); m != mesh_.end()) {
      targets.insert(m->second.begin(), m->second.end());
    } else {
      if (!fanout_.contains(topic) && fanout_.size() >= config_.max_fanout_topics) {
        auto oldest = std::min_element(fanout_last_pub_.begin(), fanout_last_pub_.end(),
                                       [](auto& a, auto& b) { return a.second < b.second; });
        if (oldest != fanout_last_pub_.end()) {
          fanout_.erase(oldest->first);
          fanout_last_pub_.erase(oldest);
        }
      }
      auto& fan = fanout_[topic];
      if (fan.empty()) {
        auto picked = select_peers(topic, config_.D, [&](const PeerId& p) {
          return !is_direct(p) && score_.score(p, now) >= thresholds_.publish_threshold;
        });
        fan.insert(picked.begin(), picked.end());
      }
      targets.insert(fan.begin(), fan.end());
    }
  }
  if (!mesh_.contains(topic)) fanout_last_pub_[topic] = now;
  for (const auto& p : targets) {
    send(p, Rpc{{}, {message}, {}});
    ++counters_.forwarded;
  }
  if (mesh_.contains(topic)) {
    trace(TraceType::deliver, topic, &id, &self_);
    actions_.push_back(DeliverMessage{id, std::move(message), self_});
    ++counters_.delivered;
    if (tc) ++tc->delivered;
  }
  return id;
}

TopicCounters* Router::joined_counters(const TopicId& topic) {
  auto it = topic_counters_.find(topic);
  return it == topic_counters_.end() ? nullptr : &it->second;
}

const TopicCounters* Router::topic_counters(const TopicId& topic) const {
  auto it = topic_counters_.find(topic);
  return it == topic_counters_.end() ? nullptr : &it->second;
}

size_t Router::pending_validations(const TopicId& topic) const {
  auto it = pending_per_topic_.find(topic);
  return it == pending_per_topic_.end() ? 0 : it->second;
}

// ---- Inbound RPCs ------------------------------------------------------------------------------

void Router::handle_rpc(const PeerId& from, Rpc rpc, Time now) {
  auto it = peers_.find(from);
  if (it == peers_.end()) return;  // the adapter calls add_peer first
  if (!is_direct(from) && score_.score(from, now) < thresholds_.graylist_threshold) {
    ++counters_.graylisted_rpcs;  // v1.1: ignore graylisted peers entirely
    return;
  }
  for (const auto& sub : rpc.subscriptions) handle_subscription(from, it->second, sub, now);
  for (auto& message : rpc.publish) handle_message(from, std::move(message), now);
  if (rpc.control.empty() || it->second.kind == PeerKind::floodsub) return;

  Rpc reply;
  std::vector<MessageId> iwant = handle_ihave(from, it->second, rpc.control.ihave, now);
  if (!iwant.empty()) {
    add_iwant_promise(from, iwant, now);
    reply.control.iwant.push_back(ControlIWant{std::move(iwant)});
  }
  reply.publish = handle_iwant(from, rpc.control.iwant, now);
  reply.control.prune = handle_graft(from, it->second, rpc.control.graft, now);
  handle_prune(from, rpc.control.prune, now);
  handle_idontwant(it->second, rpc.control.idontwant);
  if (!reply.empty()) send(from, std::move(reply));
}

bool Router::accept_subscription(const PeerState& state, const SubOpts& sub) const {
  if (sub.topic.empty() || sub.topic.size() > config_.max_topic_length) return false;
  if (config_.allowed_topics && !config_.allowed_topics->contains(sub.topic)) return false;
  // Topics we joined are always taken (there are as many as we chose): a peer subscribed to
  // thousands of topics still gets our messages on the ones we share. The limit bounds the
  // others, which we only keep for fanout and for topics we may join later.
  if (state.topics.contains(sub.topic) || mesh_.contains(sub.topic)) return true;
  size_t others = 0;
  for (const auto& t : state.topics) others += mesh_.contains(t) ? 0 : 1;
  return others < config_.max_subscriptions_per_peer;
}

void Router::handle_subscription(const PeerId& from, PeerState& state, const SubOpts& sub,
                                 Time now) {
  if (sub.subscribe) {
    if (!accept_subscription(state, sub)) {
      ++counters_.subscriptions_refused;
      return;
    }
    state.topics.insert(sub.topic);
    topic_peers_[sub.topic].insert(from);
    return;
  }
  if (state.topics.erase(sub.topic) == 0) return;
  if (auto tp = topic_peers_.find(sub.topic); tp != topic_peers_.end()) {
    tp->second.erase(from);
    if (tp->second.empty()) topic_peers_.erase(tp);
  }
  // An unsubscribed peer can no longer be a mesh or fanout member of the topic.
  if (auto m = mesh_.find(sub.topic); m != mesh_.end() && m->second.erase(from) > 0) {
    score_.prune(from, sub.topic, now);
    trace(TraceType::prune, sub.topic, nullptr, &from);
  }
  if (auto f = fanout_.find(sub.topic); f != fanout_.end()) f->second.erase(from);
}

void Router::handle_message(const PeerId& from, Message message, Time now) {
  const TopicId topic = message.topic;
  if (!mesh_.contains(topic)) {
    ++counters_.not_subscribed;  // we only relay topics we joined
    return;
  }
  MessageId id = message_id(message, id_fn(topic));
  TopicCounters* tc = joined_counters(topic);  // joined: mesh_ has the topic
  if (seen_.contains(id)) {
    ++counters_.duplicates;
    trace(TraceType::duplicate, topic, &id, &from);
    if (tc) ++tc->duplicates;
    fulfil_promises(id, message);  // a copy is a kept promise too (go's DuplicateMessage)
    score_.duplicate_message(from, id, topic, now);
    auto p = pending_.find(key_of(id));
    if (p != pending_.end() && p->second.also_from.size() < config_.D_hi) {
      p->second.also_from.insert(from);  // it has the message: do not forward it there
    }
    return;
  }
  if (encoded_size(message) > max_message_size(topic)) {
    ++counters_.too_large;
    ++counters_.rejected;
    trace(TraceType::reject, topic, &id, &from, RejectReason::too_large);
    if (tc) ++tc->rejected;
    score_.reject_message(from, id, topic, RejectReason::too_large, now);
    return;
  }
  if (auto ok = check_message(message, config_.signature_policy); !ok) {
    ++counters_.rejected;
    trace(TraceType::reject, topic, &id, &from, ok.error().reason);
    if (tc) ++tc->rejected;
    score_.reject_message(from, id, topic, ok.error().reason, now);
    return;
  }
  if (message.from && *message.from == self_.bytes()) {
    // Claims to be ours but we never published it (ours are in the seen cache).
    ++counters_.rejected;
    trace(TraceType::reject, topic, &id, &from, RejectReason::self_origin);
    if (tc) ++tc->rejected;
    score_.reject_message(from, id, topic, RejectReason::self_origin, now);
    return;
  }
  size_t& queued = pending_per_topic_[topic];
  if (queued >= config_.max_pending_validations_per_topic) {
    // Refused before validation: no delivery record either, so a later copy that is
    // validated and rejected still costs its senders P4 (go's RejectValidationQueueFull).
    ++counters_.throttled;
    trace(TraceType::reject, topic, &id, &from, RejectReason::validation_throttled);
    if (tc) ++tc->throttled;
    return;  // not marked seen: a later copy may get through
  }
  ++queued;
  seen_.add(id, now);
  fulfil_promises(id, message);  // whoever promised it, it arrived
  score_.validate_message(from, id, topic, now);
  send_idontwant(id, message, from);
  Time deadline = now + config_.validation_timeout;
  pending_order_.emplace_back(deadline, key_of(id));
  actions_.push_back(ValidateMessage{id, message, from});
  pending_.emplace(key_of(id), Pending{id, std::move(message), from, deadline, now, {}});
}

void Router::send_idontwant(const MessageId& id, const Message& message, const PeerId& from) {
  // v1.2: tell mesh peers not to send us a large message we already have.
  if (message.data.size() < config_.idontwant_message_size_threshold) return;
  auto m = mesh_.find(message.topic);
  if (m == mesh_.end()) return;
  for (const auto& p : m->second) {
    if (p == from || (message.from && *message.from == p.bytes())) continue;
    if (peers_.at(p).kind != PeerKind::gossipsub_v1_2) continue;
    Rpc rpc;
    rpc.control.idontwant.push_back(ControlIDontWant{ids_for_peer(p, message.topic, {id})});
    send(p, std::move(rpc));
    ++counters_.idontwant_sent;
  }
}

void Router::report_validation(const MessageId& id, Verdict verdict, Time now) {
  auto it = pending_.find(key_of(id));
  if (it == pending_.end()) return;
  Pending pending = std::move(it->second);
  pending_.erase(it);
  if (auto q = pending_per_topic_.find(pending.message.topic); q != pending_per_topic_.end()) {
    if (--q->second == 0) pending_per_topic_.erase(q);
  }
  const TopicId& topic = pending.message.topic;
  TopicCounters* tc = joined_counters(topic);  // null when left while validating
  if (tc)
    tc->validation_seconds.observe(std::chrono::duration<double>(now - pending.received).count());
  switch (verdict) {
    case Verdict::accept:
      deliver_and_forward(std::move(pending), now);
      break;
    case Verdict::reject:
      ++counters_.rejected;
      trace(TraceType::reject, topic, &id, &pending.from, RejectReason::validation_failed);
      if (tc) ++tc->rejected;
      score_.reject_message(pending.from, id, topic, RejectReason::validation_failed, now);
      break;
    case Verdict::ignore:
      ++counters_.ignored;
      trace(TraceType::reject, topic, &id, &pending.from, RejectReason::validation_ignored);
      if (tc) ++tc->ignored;
      score_.reject_message(pending.from, id, topic, RejectReason::validation_ignored, now);
      break;
  }
}

void Router::deliver_and_forward(Pending pending, Time now) {
  score_.deliver_message(pending.from, pending.id, pending.message.topic, now);
  if (!mesh_.contains(pending.message.topic)) return;  // left the topic while validating
  cache_message(pending.id, pending.message);
  PeerSet exclude = std::move(pending.also_from);
  exclude.insert(pending.from);
  forward(pending.id, pending.message, exclude, now);
  trace(TraceType::deliver, pending.message.topic, &pending.id, &pending.from);
  if (TopicCounters* tc = joined_counters(pending.message.topic)) ++tc->delivered;
  actions_.push_back(
      DeliverMessage{std::move(pending.id), std::move(pending.message), pending.from});
  ++counters_.delivered;
}

void Router::forward(const MessageId& id, const Message& message, const PeerSet& exclude,
                     Time now) {
  const TopicId& topic = message.topic;
  PeerSet targets;
  if (auto tp = topic_peers_.find(topic); tp != topic_peers_.end()) {
    for (const auto& p : tp->second) {
      bool flood = peers_.at(p).kind == PeerKind::floodsub &&
                   score_.score(p, now) >= thresholds_.publish_threshold;
      if (is_direct(p) || flood) targets.insert(p);
    }
  }
  if (auto m = mesh_.find(topic); m != mesh_.end()) {
    targets.insert(m->second.begin(), m->second.end());
  }
  for (const auto& p : targets) {
    if (exclude.contains(p)) continue;
    if (message.from && *message.from == p.bytes()) continue;  // never echo to the origin
    if (dont_want(p, id)) {
      ++counters_.idontwant_suppressed;
      continue;
    }
    send(p, Rpc{{}, {message}, {}});
    ++counters_.forwarded;
  }
}

void Router::expire_validations(Time now) {
  while (!pending_order_.empty() && pending_order_.front().first <= now) {
    auto [deadline, key] = std::move(pending_order_.front());
    pending_order_.pop_front();
    auto it = pending_.find(key);
    if (it == pending_.end() || it->second.deadline != deadline) continue;  // answered
    ++counters_.validation_timeouts;
    MessageId id = it->second.id;
    report_validation(id, Verdict::ignore, now);  // a timeout is an IGNORE: no penalty
  }
}

// ---- Control -----------------------------------------------------------------------------------

std::vector<MessageId> Router::handle_ihave(const PeerId& from, PeerState& state,
                                            const std::vector<ControlIHave>& ihaves, Time now) {
  if (ihaves.empty()) return {};
  for (const auto& ihave : ihaves) counters_.ihave_received += ihave.message_ids.size();
  if (score_.score(from, now) < thresholds_.gossip_threshold) return {};
  // Flood protection: bounded IHAVE RPCs and asked ids per peer per heartbeat.
  if (++state.ihave_rpcs > config_.max_ihave_messages) return {};
  const size_t max_asked = std::min(config_.max_ihave_length, config_.max_iwant_length);
  if (state.ihave_asked >= max_asked) return {};
  std::vector<MessageId> wanted;
  std::set<std::string> unique;
  size_t checked = 0;
  for (const auto& ihave : ihaves) {
    if (!mesh_.contains(ihave.topic)) continue;
    for (const auto& id : ihave.message_ids) {
      if (++checked > config_.max_ihave_length) break;
      if (seen_.contains(id) || !unique.insert(key_of(id)).second) continue;
      if (auto known = aliases_.resolve(id)) {  // ours, named the way another function does
        state.id_form = known->form;
        continue;
      }
      wanted.push_back(id);
    }
  }
  size_t room = max_asked - state.ihave_asked;
  if (wanted.size() > room) {
    shuffle(wanted);
    wanted.resize(room);
  }
  state.ihave_asked += wanted.size();
  counters_.iwant_asked += wanted.size();
  return wanted;
}

std::vector<Message> Router::handle_iwant(const PeerId& from,
                                          const std::vector<ControlIWant>& iwants, Time now) {
  std::vector<Message> out;
  if (iwants.empty() || score_.score(from, now) < thresholds_.gossip_threshold) return out;
  std::set<std::string> unique;
  size_t checked = 0;
  for (const auto& iwant : iwants) {
    for (const auto& id : iwant.message_ids) {
      if (++checked > config_.max_ihave_length) return out;
      if (!unique.insert(key_of(id)).second) continue;
      MessageId ours = id;
      if (auto known = aliases_.resolve(id)) {
        peers_.at(from).id_form = known->form;
        ours = std::move(known->id);
      }
      if (dont_want(from, ours)) continue;  // it told us it has it
      auto [message, count] = mcache_.get_for_peer(ours, from);
      if (!message || count > config_.gossip_retransmission) continue;
      out.push_back(*message);
      ++counters_.iwant_served;
    }
  }
  return out;
}

std::vector<ControlPrune> Router::handle_graft(const PeerId& from, const PeerState& state,
                                               const std::vector<ControlGraft>& grafts, Time now) {
  std::vector<TopicId> refused;
  bool do_px = config_.do_px;
  for (const auto& graft : grafts) {
    auto m = mesh_.find(graft.topic);
    if (m == mesh_.end()) {
      do_px = false;  // do not leak peers of topics we are not in
      continue;
    }
    PeerSet& mesh = m->second;
    if (mesh.contains(from)) continue;
    if (is_direct(from)) {  // direct peers are never in the mesh, and know their peers
      do_px = false;
      refused.push_back(graft.topic);
      continue;
    }
    auto b = backoff_.find(graft.topic);
    if (b != backoff_.end()) {
      auto e = b->second.find(from);
      if (e != b->second.end() && now < e->second) {
        // GRAFT during backoff: P7 penalty, twice if it came within graft_flood_threshold
        // of the PRUNE (the backoff was set prune_backoff ago at most).
        score_.add_penalty(from, 1);
        if (now < e->second - config_.prune_backoff + config_.graft_flood_threshold) {
          score_.add_penalty(from, 1);
        }
        do_px = false;
        add_backoff(from, graft.topic, config_.prune_backoff, now);
        refused.push_back(graft.topic);
        continue;
      }
    }
    if (score_.score(from, now) < 0) {
      do_px = false;
      add_backoff(from, graft.topic, config_.prune_backoff, now);
      refused.push_back(graft.topic);
      continue;
    }
    // A full mesh only takes outbound peers: an attacker cannot fill it with inbound ones.
    if (mesh.size() >= config_.D_hi && !state.outbound) {
      add_backoff(from, graft.topic, config_.prune_backoff, now);
      refused.push_back(graft.topic);
      continue;
    }
    // Accepted: into the mesh without a GRAFT back (the peer knows; an echo arriving after a
    // PRUNE of its own would land in its backoff and cost us P7).
    mesh.insert(from);
    score_.graft(from, graft.topic, now);
    trace(TraceType::graft, graft.topic, nullptr, &from);
  }
  std::vector<ControlPrune> prunes;
  for (const auto& topic : refused) prunes.push_back(make_prune(from, topic, do_px, false, now));
  return prunes;
}

void Router::handle_prune(const PeerId& from, const std::vector<ControlPrune>& prunes, Time now) {
  if (prunes.empty()) return;
  double score = score_.score(from, now);
  for (const auto& prune : prunes) {
    auto m = mesh_.find(prune.topic);
    if (m == mesh_.end()) continue;
    if (m->second.erase(from) > 0) {
      score_.prune(from, prune.topic, now);
      trace(TraceType::prune, prune.topic, nullptr, &from);
    }
    // Obey the peer's backoff (capped); else our default.
    Duration backoff = config_.prune_backoff;
    if (prune.backoff_seconds && *prune.backoff_seconds > 0) {
      auto max_s = std::chrono::duration_cast<std::chrono::seconds>(config_.max_backoff).count();
      uint64_t s = std::min<uint64_t>(*prune.backoff_seconds, static_cast<uint64_t>(max_s));
      backoff = std::chrono::seconds(s);
    }
    add_backoff(from, prune.topic, backoff, now);
    if (!prune.peers.empty() && score >= thresholds_.accept_px_threshold) px_connect(prune.peers);
  }
}

void Router::handle_idontwant(PeerState& state, const std::vector<ControlIDontWant>& idontwants) {
  if (idontwants.empty()) return;
  if (state.idontwant_rpcs >= config_.max_idontwant_messages) return;
  ++state.idontwant_rpcs;
  size_t taken = 0;
  for (const auto& idw : idontwants) {
    for (const auto& id : idw.message_ids) {
      if (taken++ >= config_.max_idontwant_length) return;
      std::string key = key_of(id);
      if (auto known = aliases_.resolve(id)) {
        state.id_form = known->form;
        key = key_of(known->id);
      }
      state.dont_want[key] = ticks_ + config_.idontwant_ttl_ticks;
    }
  }
}

ControlPrune Router::make_prune(const PeerId& peer, const TopicId& topic, bool do_px,
                                bool unsubscribe, Time now) {
  ControlPrune prune;
  prune.topic = topic;
  auto it = peers_.find(peer);
  if (it == peers_.end() || !supports_px(it->second.kind)) return prune;  // v1.0: bare PRUNE
  Duration backoff = unsubscribe ? config_.unsubscribe_backoff : config_.prune_backoff;
  prune.backoff_seconds =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(backoff).count());
  if (!do_px) return prune;
  // Peer exchange: other well-scored gossipsub peers of the topic, each with its signed peer
  // record when we hold one (the receiver dials only what a record or its own store names).
  std::vector<PeerId> candidates;
  if (auto tp = topic_peers_.find(topic); tp != topic_peers_.end()) {
    for (const auto& p : tp->second) {
      if (p != peer && is_gossipsub(p) && score_.score(p, now) >= 0) candidates.push_back(p);
    }
  }
  shuffle(candidates);
  if (candidates.size() > config_.prune_peers) truncate(candidates, config_.prune_peers);
  for (const auto& p : candidates) {
    const Bytes* record = peer_records_ ? peer_records_(p) : nullptr;
    prune.peers.push_back(PeerRecord{
        p.bytes(), record && !record->empty() ? std::optional<Bytes>(*record) : std::nullopt});
  }
  return prune;
}

void Router::px_connect(std::vector<PeerRecord> records) {
  // At most prune_peers, chosen before any signature is checked (as go): a PRUNE cannot make
  // us verify more than that.
  if (records.size() > config_.prune_peers) {
    shuffle(records);
    records.resize(config_.prune_peers);
  }
  std::vector<PeerRecord> out;
  for (auto& r : records) {
    auto id = PeerId::from_bytes(r.peer_id);
    if (!id || *id == self_ || peers_.contains(*id)) continue;
    if (r.signed_peer_record) {
      // A record must be valid and the named peer's own, else the entry goes (go does the same).
      auto opened = crypto::open_signed_peer_record(*r.signed_peer_record);
      if (!opened || opened->peer != *id) {
        ++counters_.px_invalid_records;
        continue;
      }
    }
    out.push_back(std::move(r));
  }
  if (!out.empty()) actions_.push_back(ConnectPeers{std::move(out)});
}

// ---- Heartbeat ---------------------------------------------------------------------------------

void Router::heartbeat(Time now) {
  ++ticks_;
  // Expired backoffs go (with a heartbeat of slack, as go does, so a regraft is not early).
  for (auto t = backoff_.begin(); t != backoff_.end();) {
    std::erase_if(t->second,
                  [&](const auto& e) { return e.second + config_.heartbeat_interval <= now; });
    t = t->second.empty() ? backoff_.erase(t) : std::next(t);
  }
  apply_broken_promises(now);
  std::map<PeerId, double> scores;
  for (auto& [topic, peers] : mesh_) maintain_mesh(topic, peers, scores, now);
  maintain_fanout(scores, now);
  // Direct peers are (re)connected at the first heartbeat and then every direct_connect_ticks.
  if (ticks_ == 1 || ticks_ % config_.direct_connect_ticks == 0) connect_direct_peers();
  flush_outgoing();
  clear_heartbeat_state();
  mcache_.shift();
  aliases_.shift(config_.mcache_len);
  seen_.expire(now);
}

void Router::maintain_mesh(const TopicId& topic, PeerSet& peers, std::map<PeerId, double>& scores,
                           Time now) {
  // Negative-score peers leave without PX.
  std::vector<PeerId> negative;
  for (const auto& p : peers) {
    if (cached_score(scores, p, now) < 0) negative.push_back(p);
  }
  for (const auto& p : negative) prune_peer(topic, peers, p, now, true);

  auto candidate = [&](const PeerId& p) {
    return !peers.contains(p) && !is_direct(p) && !backing_off(p, topic) &&
           cached_score(scores, p, now) >= 0;
  };
  if (peers.size() < config_.D_lo) {
    for (const auto& p : select_peers(topic, config_.D - peers.size(), candidate)) {
      graft_peer(topic, peers, p, now);
    }
  }
  if (peers.size() > config_.D_hi) prune_oversized(topic, peers, scores, now);
  if (peers.size() >= config_.D_lo) {
    size_t outbound = 0;
    for (const auto& p : peers) outbound += peers_.at(p).outbound ? 1 : 0;
    if (outbound < config_.D_out) {
      auto more = select_peers(topic, config_.D_out - outbound, [&](const PeerId& p) {
        return candidate(p) && peers_.at(p).outbound;
      });
      for (const auto& p : more) graft_peer(topic, peers, p, now);
    }
  }
  if (ticks_ % config_.opportunistic_graft_ticks == 0 && peers.size() > 1) {
    opportunistic_graft(topic, peers, scores, now);
  }
  emit_gossip(topic, peers, scores, now);  // mesh peers get full messages already
}

void Router::prune_oversized(const TopicId& topic, PeerSet& peers, std::map<PeerId, double>& scores,
                             Time now) {
  // Keep the D_score best by score, fill up to D at random, then make sure D_out of the kept
  // ones are outbound by bubbling outbound peers to the front.
  std::vector<PeerId> list(peers.begin(), peers.end());
  shuffle(list);  // random order among equal scores
  std::stable_sort(list.begin(), list.end(), [&](const PeerId& a, const PeerId& b) {
    return cached_score(scores, a, now) > cached_score(scores, b, now);
  });
  std::shuffle(list.begin() + static_cast<std::ptrdiff_t>(config_.D_score), list.end(), rng_);
  auto is_out = [&](const PeerId& p) { return peers_.at(p).outbound; };
  auto rotate_to_front = [&](size_t i) {
    std::rotate(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(i),
                list.begin() + static_cast<std::ptrdiff_t>(i) + 1);
  };
  size_t outbound = static_cast<size_t>(
      std::count_if(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(config_.D), is_out));
  if (outbound < config_.D_out) {
    // First the outbound peers already kept, then enough from the excess.
    size_t have = outbound;
    for (size_t i = 1; i < config_.D && have > 0; ++i) {
      if (is_out(list[i])) {
        rotate_to_front(i);
        --have;
      }
    }
    size_t need = config_.D_out - outbound;
    for (size_t i = config_.D; i < list.size() && need > 0; ++i) {
      if (is_out(list[i])) {
        rotate_to_front(i);
        --need;
      }
    }
  }
  for (size_t i = config_.D; i < list.size(); ++i) prune_peer(topic, peers, list[i], now, false);
}

void Router::opportunistic_graft(const TopicId& topic, PeerSet& peers,
                                 std::map<PeerId, double>& scores, Time now) {
  // If the median mesh score is low, graft a few peers scoring above it (v1.1).
  std::vector<double> values;
  for (const auto& p : peers) values.push_back(cached_score(scores, p, now));
  std::sort(values.begin(), values.end());
  double median = values[values.size() / 2];
  if (median >= thresholds_.opportunistic_graft_threshold) return;
  auto better = select_peers(topic, config_.opportunistic_graft_peers, [&](const PeerId& p) {
    return !peers.contains(p) && !is_direct(p) && !backing_off(p, topic) &&
           cached_score(scores, p, now) > median;
  });
  for (const auto& p : better) graft_peer(topic, peers, p, now);
}

void Router::maintain_fanout(std::map<PeerId, double>& scores, Time now) {
  for (auto it = fanout_last_pub_.begin(); it != fanout_last_pub_.end();) {
    if (it->second + config_.fanout_ttl <= now) {
      fanout_.erase(it->first);
      it = fanout_last_pub_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& entry : fanout_) {  // not a structured binding: clang 14 cannot capture those
    const TopicId& topic = entry.first;
    PeerSet& peers = entry.second;
    auto tp = topic_peers_.find(topic);
    std::erase_if(peers, [&](const PeerId& p) {
      return tp == topic_peers_.end() || !tp->second.contains(p) ||
             cached_score(scores, p, now) < thresholds_.publish_threshold;
    });
    if (peers.size() < config_.D) {
      auto more = select_peers(topic, config_.D - peers.size(), [&](const PeerId& p) {
        return !peers.contains(p) && !is_direct(p) &&
               cached_score(scores, p, now) >= thresholds_.publish_threshold;
      });
      peers.insert(more.begin(), more.end());
    }
    emit_gossip(topic, peers, scores, now);
  }
}

void Router::emit_gossip(const TopicId& topic, const PeerSet& exclude,
                         std::map<PeerId, double>& scores, Time now) {
  std::vector<MessageId> ids = mcache_.gossip_ids(topic);
  if (ids.empty()) return;
  auto tp = topic_peers_.find(topic);
  if (tp == topic_peers_.end()) return;
  std::vector<PeerId> targets;
  for (const auto& p : tp->second) {
    if (exclude.contains(p) || is_direct(p) || !is_gossipsub(p)) continue;
    if (cached_score(scores, p, now) >= thresholds_.gossip_threshold) targets.push_back(p);
  }
  // At least D_lazy peers, more in proportion to the topic's size (gossip_factor).
  size_t target =
      std::max(config_.D_lazy,
               static_cast<size_t>(config_.gossip_factor * static_cast<double>(targets.size())));
  shuffle(targets);
  truncate(targets, target);
  shuffle(ids);
  for (const auto& p : targets) {
    std::vector<MessageId> peer_ids = ids;
    if (peer_ids.size() > config_.max_ihave_length) {
      shuffle(ids);  // a different subset per peer covers more messages
      peer_ids.assign(ids.begin(),
                      ids.begin() + static_cast<std::ptrdiff_t>(config_.max_ihave_length));
    }
    outgoing(p).control.ihave.push_back(
        ControlIHave{topic, ids_for_peer(p, topic, std::move(peer_ids))});
    ++counters_.ihave_sent;
  }
}

void Router::apply_broken_promises(Time now) {
  // An IWANT we sent after an IHAVE that was not answered in time: P7 for the promiser.
  std::map<PeerId, int> broken;
  for (auto it = promises_.begin(); it != promises_.end();) {
    std::erase_if(it->second, [&](const auto& e) {
      if (e.second > now) return false;
      ++broken[e.first];
      return true;
    });
    it = it->second.empty() ? promises_.erase(it) : std::next(it);
  }
  for (const auto& [peer, count] : broken) {
    score_.add_penalty(peer, count);
    counters_.broken_promises += static_cast<uint64_t>(count);
  }
}

void Router::connect_direct_peers() {
  std::vector<PeerRecord> missing;
  for (const auto& p : direct_) {
    if (!peers_.contains(p)) missing.push_back(PeerRecord{p.bytes(), std::nullopt});
  }
  if (!missing.empty()) actions_.push_back(ConnectPeers{std::move(missing)});
}

void Router::clear_heartbeat_state() {
  for (auto& [peer, state] : peers_) {
    state.ihave_rpcs = 0;
    state.ihave_asked = 0;
    state.idontwant_rpcs = 0;
    std::erase_if(state.dont_want, [&](const auto& e) { return e.second < ticks_; });
  }
}

Time Router::next_deadline() const {
  Time t = std::min(next_heartbeat_, score_.next_refresh());
  if (!pending_order_.empty()) t = std::min(t, pending_order_.front().first);
  return t;
}

void Router::on_timer(Time now) {
  expire_validations(now);
  if (score_.next_refresh() <= now) score_.refresh(now);
  if (next_heartbeat_ <= now) {
    heartbeat(now);
    next_heartbeat_ += config_.heartbeat_interval;
    if (next_heartbeat_ <= now) next_heartbeat_ = now + config_.heartbeat_interval;  // fell behind
  }
}

// ---- Mesh membership ---------------------------------------------------------------------------

void Router::graft_peer(const TopicId& topic, PeerSet& peers, const PeerId& peer, Time now) {
  peers.insert(peer);
  score_.graft(peer, topic, now);
  trace(TraceType::graft, topic, nullptr, &peer);
  outgoing(peer).control.graft.push_back(ControlGraft{topic});
}

void Router::prune_peer(const TopicId& topic, PeerSet& peers, const PeerId& peer, Time now,
                        bool no_px) {
  peers.erase(peer);
  score_.prune(peer, topic, now);
  trace(TraceType::prune, topic, nullptr, &peer);
  add_backoff(peer, topic, config_.prune_backoff, now);
  outgoing(peer).control.prune.push_back(
      make_prune(peer, topic, config_.do_px && !no_px, false, now));
}

void Router::add_backoff(const PeerId& peer, const TopicId& topic, Duration interval, Time now) {
  Time& expire = backoff_[topic][peer];
  expire = std::max(expire, now + interval);
}

bool Router::backing_off(const PeerId& peer, const TopicId& topic) const {
  // Entries are dropped by the heartbeat once expired, so presence means backing off.
  auto t = backoff_.find(topic);
  return t != backoff_.end() && t->second.contains(peer);
}

bool Router::in_backoff(const PeerId& peer, const TopicId& topic, Time now) const {
  auto t = backoff_.find(topic);
  if (t == backoff_.end()) return false;
  auto e = t->second.find(peer);
  return e != t->second.end() && now < e->second;
}

// ---- Helpers -----------------------------------------------------------------------------------

std::vector<PeerId> Router::select_peers(const TopicId& topic, size_t count,
                                         const std::function<bool(const PeerId&)>& filter) {
  std::vector<PeerId> out;
  auto tp = topic_peers_.find(topic);
  if (tp == topic_peers_.end() || count == 0) return out;
  for (const auto& p : tp->second) {
    if (is_gossipsub(p) && filter(p)) out.push_back(p);
  }
  shuffle(out);
  truncate(out, count);
  return out;
}

bool Router::is_gossipsub(const PeerId& peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second.kind != PeerKind::floodsub;
}

bool Router::dont_want(const PeerId& peer, const MessageId& id) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second.dont_want.contains(key_of(id));
}

double Router::cached_score(std::map<PeerId, double>& scores, const PeerId& peer, Time now) const {
  auto [it, inserted] = scores.try_emplace(peer, 0.0);
  if (inserted) it->second = score_.score(peer, now);
  return it->second;
}

size_t Router::max_message_size(const TopicId& topic) const {
  auto it = config_.max_message_size_per_topic.find(topic);
  return it == config_.max_message_size_per_topic.end() ? config_.max_message_size : it->second;
}

MessageIdFn Router::id_fn(const TopicId& topic) const {
  auto it = config_.message_id_fn_per_topic.find(topic);
  return it == config_.message_id_fn_per_topic.end() ? config_.message_id_fn : it->second;
}

void Router::add_iwant_promise(const PeerId& peer, const std::vector<MessageId>& ids, Time now) {
  // One promise per IWANT, on a random id (as go's gossip tracer): enough to catch a peer that
  // advertises what it will not deliver, and bounded.
  if (ids.empty() || promises_.size() >= config_.max_iwant_promises) return;
  const MessageId& id = ids[std::uniform_int_distribution<size_t>(0, ids.size() - 1)(rng_)];
  promises_[key_of(id)].try_emplace(peer, now + config_.iwant_followup_time);
}

Rpc& Router::outgoing(const PeerId& peer) {
  return outgoing_[peer];
}

void Router::flush_outgoing() {
  for (auto& entry : outgoing_) {  // not a structured binding: clang 14 cannot capture those
    const PeerId& peer = entry.first;
    Rpc& rpc = entry.second;
    // Membership changed since these were queued: a GRAFT for a mesh the peer has left (it
    // PRUNEd us) or a PRUNE for one it rejoined would contradict the current state.
    std::erase_if(rpc.control.graft,
                  [&](const ControlGraft& g) { return !in_mesh(peer, g.topic); });
    std::erase_if(rpc.control.prune, [&](const ControlPrune& p) { return in_mesh(peer, p.topic); });
    if (!rpc.empty() && peers_.contains(peer)) send(peer, std::move(rpc));
  }
  outgoing_.clear();
}

bool Router::in_mesh(const PeerId& peer, const TopicId& topic) const {
  auto m = mesh_.find(topic);
  return m != mesh_.end() && m->second.contains(peer);
}

void Router::cache_message(const MessageId& id, const Message& message) {
  mcache_.put(id, message);
  aliases_.add(id, message, id_fn(message.topic));
}

void Router::fulfil_promises(const MessageId& id, const Message& message) {
  if (promises_.empty()) return;
  promises_.erase(key_of(id));
  // A peer on another id function promised it under that function's id. A copy of a message
  // we cached has its foreign ids recorded already.
  if (const auto* recorded = aliases_.recorded(id)) {
    for (const auto& [fn, foreign] : *recorded) promises_.erase(key_of(foreign));
    return;
  }
  for (const auto& [fn, foreign] : aliases_.foreign_ids(message, id_fn(message.topic)))
    promises_.erase(key_of(foreign));
}

std::vector<MessageId> Router::ids_for_peer(const PeerId& peer, const TopicId& topic,
                                            std::vector<MessageId> ids) const {
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.id_form || *it->second.id_form == id_fn(topic)) return ids;
  for (auto& id : ids) id = aliases_.as_form(id, *it->second.id_form);
  return ids;
}

void Router::send(const PeerId& peer, Rpc rpc) {
  actions_.push_back(SendRpc{peer, std::move(rpc)});
}

std::optional<Action> Router::poll_action() {
  if (actions_.empty()) return std::nullopt;
  Action out = std::move(actions_.front());
  actions_.pop_front();
  return out;
}

// ---- Introspection -----------------------------------------------------------------------------

namespace {
std::vector<PeerId> members(const std::map<TopicId, std::set<PeerId>>& m, const TopicId& topic) {
  auto it = m.find(topic);
  return it == m.end() ? std::vector<PeerId>{}
                       : std::vector<PeerId>(it->second.begin(), it->second.end());
}
}  // namespace

std::vector<PeerId> Router::mesh(const TopicId& topic) const {
  return members(mesh_, topic);
}
std::vector<PeerId> Router::fanout(const TopicId& topic) const {
  return members(fanout_, topic);
}
std::vector<PeerId> Router::topic_peers(const TopicId& topic) const {
  return members(topic_peers_, topic);
}

std::vector<TopicId> Router::peer_topics(const PeerId& peer) const {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return {};
  return {it->second.topics.begin(), it->second.topics.end()};
}

std::vector<TopicId> Router::topics() const {
  std::vector<TopicId> out;
  for (const auto& [topic, peers] : mesh_) out.push_back(topic);
  return out;
}

std::vector<PeerId> Router::peers() const {
  std::vector<PeerId> out;
  for (const auto& [peer, state] : peers_) out.push_back(peer);
  return out;
}

}  // namespace p2pmq::pubsub
