#include "sim/dht_sim.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/multihash.hpp"
#include "crypto/hash.hpp"

namespace p2pmq::sim {

using dht::Duration;
using dht::KadMessage;
using dht::PeerId;
using dht::Time;
using namespace std::chrono_literals;

namespace {

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

// A sha2-256 multihash peer id: the shape of an RSA/secp256k1 id, cheap by the ten thousand.
PeerId derived_peer_id(uint64_t seed, size_t index) {
  auto d = crypto::sha256(
      as_bytes("p2pmq/dht-sim/" + std::to_string(seed) + "/" + std::to_string(index)));
  return PeerId::from_bytes(Multihash{multihash::kSha2_256, Bytes(d.begin(), d.end())}.encode())
      .value();
}

// The adapter's maintenance loop never runs two rounds closer than this.
constexpr Duration kMaintenanceFloor = 100ms;

}  // namespace

DhtNetwork::DhtNetwork(DhtSimConfig config)
    : config_(std::move(config)), rng_(mix(config_.seed ^ 0xd47d47)), now_(config_.start) {
  if (config_.max_latency < config_.min_latency || config_.min_latency < Duration::zero())
    throw std::invalid_argument("dht sim: need 0 <= min_latency <= max_latency");
  if (config_.loss < 0 || config_.loss > 1) throw std::invalid_argument("dht sim: loss in [0, 1]");
  if (auto ok = dht::validate(config_.dht); !ok) throw std::invalid_argument(ok.error().message);
}

DhtNetwork::~DhtNetwork() = default;

// ---- Nodes -------------------------------------------------------------------------------------

DhtNodeId DhtNetwork::add_node(dht::Mode mode, std::optional<PeerId> id) {
  const DhtNodeId n = nodes_.size();
  if (n >= (size_t{1} << 32)) throw std::length_error("dht sim: too many nodes");
  PeerId pid = id ? std::move(*id) : derived_peer_id(config_.seed, n);
  if (!by_peer_.emplace(pid, n).second) throw std::invalid_argument("dht sim: duplicate peer id");
  dht::DhtConfig dc = config_.dht;
  dc.mode = mode;
  dc.seed = mix(config_.seed + 0xd4700 + n);
  Node node{pid, dht::kad_key(pid), std::make_unique<dht::Dht>(pid, std::move(dc))};
  nodes_.push_back(std::move(node));
  if (mode == dht::Mode::bootstrapper) bootstrappers_.push_back(n);
  return n;
}

std::optional<DhtNodeId> DhtNetwork::node_of(const PeerId& peer) const {
  auto it = by_peer_.find(peer);
  if (it == by_peer_.end()) return std::nullopt;
  return it->second;
}

void DhtNetwork::start(DhtNodeId node) {
  Node& n = nodes_.at(node);
  if (n.started || !n.online) return;
  n.started = true;
  bootstrap(node);
}

void DhtNetwork::go_offline(DhtNodeId node) {
  Node& n = nodes_.at(node);
  if (!n.online) return;
  n.online = false;
  ++n.epoch;  // every connection of the node closes
  n.timer_at = Time::max();
  std::erase_if(queries_, [&](const auto& kv) { return kv.second.origin == node; });
  std::erase_if(probes_, [&](const auto& kv) { return kv.second.node == node; });
}

std::vector<DhtNodeId> DhtNetwork::closest_nodes(BytesView key, size_t count) const {
  const dht::KadKey target = dht::kad_key(key);
  std::vector<std::pair<dht::Distance, DhtNodeId>> all;
  all.reserve(nodes_.size());
  for (DhtNodeId i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    if (!n.started || !n.online || n.dht->mode() == dht::Mode::client) continue;
    all.emplace_back(dht::xor_distance(target, n.key), i);
  }
  count = std::min(count, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(count), all.end());
  std::vector<DhtNodeId> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) out.push_back(all[i].second);
  return out;
}

// ---- Links and connections ---------------------------------------------------------------------

uint64_t DhtNetwork::pair_key(DhtNodeId a, DhtNodeId b) {
  if (a > b) std::swap(a, b);
  return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b);
}

Duration DhtNetwork::latency(DhtNodeId a, DhtNodeId b) const {
  if (a == b) return Duration::zero();
  const auto range = (config_.max_latency - config_.min_latency).count();
  if (range <= 0) return config_.min_latency;
  uint64_t h = mix(config_.seed ^ mix(pair_key(a, b)));
  return config_.min_latency +
         Duration(static_cast<Duration::rep>(h % (static_cast<uint64_t>(range) + 1)));
}

bool DhtNetwork::connected(DhtNodeId a, DhtNodeId b) const {
  auto it = conns_.find(pair_key(a, b));
  if (it == conns_.end()) return false;
  DhtNodeId lo = std::min(a, b), hi = std::max(a, b);
  return it->second.epoch_lo == nodes_[lo].epoch && it->second.epoch_hi == nodes_[hi].epoch &&
         nodes_[a].online && nodes_[b].online && it->second.ready <= now_;
}

std::optional<Time> DhtNetwork::connection(DhtNodeId a, DhtNodeId b) {
  const Node& target = nodes_[b];
  if (!target.online || !target.started) return std::nullopt;
  const DhtNodeId lo = std::min(a, b), hi = std::max(a, b);
  const uint64_t key = pair_key(a, b);
  if (auto it = conns_.find(key); it != conns_.end() && it->second.epoch_lo == nodes_[lo].epoch &&
                                  it->second.epoch_hi == nodes_[hi].epoch)
    return std::max(it->second.ready, now_);
  const Duration rtt = 2 * latency(a, b);
  const Time ready = now_ + static_cast<Duration::rep>(config_.connect_rtts) * rtt;
  conns_[key] = Conn{ready, nodes_[lo].epoch, nodes_[hi].epoch};
  ++counters_.connections;
  // Identify runs both ways as soon as the connection is up; each side has the other's answer
  // one round trip later.
  push(ready + rtt, Identified{a, b, nodes_[a].epoch, nodes_[b].epoch});
  push(ready + rtt, Identified{b, a, nodes_[b].epoch, nodes_[a].epoch});
  return ready;
}

bool DhtNetwork::lost() {
  return config_.loss > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < config_.loss;
}

KadMessage DhtNetwork::wire(KadMessage msg) {
  if (!config_.through_codec) return msg;
  Bytes encoded = dht::encode(msg);
  counters_.bytes += encoded.size();
  auto decoded = dht::decode(encoded, config_.dht.limits);
  if (!decoded)
    throw std::logic_error("dht sim: a message does not survive the codec: " +
                           decoded.error().to_string());
  return std::move(*decoded);
}

// ---- Requests ----------------------------------------------------------------------------------

void DhtNetwork::send_request(DhtNodeId from, DhtNodeId to, Ctx ctx, uint64_t id, KadMessage msg,
                              uint64_t serial) {
  ++counters_.requests;
  if (ctx == Ctx::add_provider) ++counters_.add_providers;
  const bool answered = ctx != Ctx::add_provider;
  auto ready = connection(from, to);
  if (!ready) {
    ++counters_.dial_failures;
    if (answered)
      push(now_ + config_.dial_timeout, AnswerArrival{to, from, ctx, id, serial, std::nullopt});
    return;
  }
  // The adapter's stream deadline starts once the connection is up.
  if (answered)
    push(*ready + config_.dht.query.request_timeout, RequestTimeout{from, to, ctx, id, serial});
  if (lost()) {
    ++counters_.lost;
    return;
  }
  push(*ready + latency(from, to), RequestArrival{from, to, ctx, id, serial, wire(std::move(msg))});
}

void DhtNetwork::on_request(RequestArrival& r) {
  Node& server = nodes_[r.to];
  if (!server.online || !server.started) {
    ++counters_.unanswered;
    return;
  }
  if (!nodes_[r.from].online) return;  // the connection closed on the way
  auto answer = server.dht->handle_request(nodes_[r.from].id, r.msg, now_);
  const Duration back = latency(r.to, r.from);
  if (!answer) {
    ++counters_.refused;  // the adapter resets the stream: the requester sees a failure
    if (r.ctx != Ctx::add_provider)
      push(now_ + back, AnswerArrival{r.to, r.from, r.ctx, r.id, r.serial, std::nullopt});
    return;
  }
  if (!*answer || r.ctx == Ctx::add_provider) return;
  if (lost()) {
    ++counters_.lost;
    return;
  }
  push(now_ + back, AnswerArrival{r.to, r.from, r.ctx, r.id, r.serial, wire(std::move(**answer))});
}

void DhtNetwork::on_answer(AnswerArrival& a) {
  if (!nodes_[a.to].online) return;
  if (a.msg) ++counters_.answers;
  if (a.ctx == Ctx::probe) {
    auto it = probes_.find(a.id);
    if (it == probes_.end()) return;
    probes_.erase(it);
    if (a.msg)
      peer_alive(a.to, a.from);
    else
      peer_failed(a.to, a.from);
    return;
  }
  if (a.ctx != Ctx::query) return;
  auto it = queries_.find(a.id);
  if (it == queries_.end()) return;  // finished: late answers are dropped
  ActiveQuery& aq = it->second;
  const PeerId& peer = nodes_[a.from].id;
  auto o = aq.outstanding.find(a.from);
  if (o == aq.outstanding.end() || o->second != a.serial) return;  // timed out already
  aq.outstanding.erase(o);
  if (a.msg) {
    if (aq.record) {
      LookupRecord& rec = records_[*aq.record];
      uint32_t d = aq.depth.emplace(peer, 0).first->second;
      for (const auto& p : a.msg->closer_peers) aq.depth.emplace(p.id, d + 1);
      if (!rec.found_at) {
        bool found = false;
        if (rec.kind == dht::QueryKind::find_node && rec.target) {
          found = std::any_of(a.msg->closer_peers.begin(), a.msg->closer_peers.end(),
                              [&](const dht::KadPeer& p) { return p.id == *rec.target; });
        } else if (rec.kind == dht::QueryKind::get_providers) {
          const PeerId& self = nodes_[aq.origin].id;
          found = std::any_of(a.msg->provider_peers.begin(), a.msg->provider_peers.end(),
                              [&](const dht::KadPeer& p) { return p.id != self; });
        }
        if (found) {
          rec.found_at = now_;
          rec.found_hops = d + 1;
        }
      }
    }
    aq.query.on_response(peer, *a.msg, now_);
    peer_alive(a.to, a.from);
  } else {
    aq.query.on_failure(peer, now_);
    peer_failed(a.to, a.from);
  }
  aq.query.on_timer(now_);  // the adapter's loop checks the deadlines on every wake
  drive(a.id);
}

void DhtNetwork::on_request_timeout(const RequestTimeout& t) {
  if (!nodes_[t.from].online) return;
  if (t.ctx == Ctx::probe) {
    auto it = probes_.find(t.id);
    if (it == probes_.end()) return;
    probes_.erase(it);
    ++counters_.timeouts;
    peer_failed(t.from, t.to);
    return;
  }
  auto it = queries_.find(t.id);
  if (it == queries_.end()) return;
  ActiveQuery& aq = it->second;
  const PeerId& peer = nodes_[t.to].id;
  auto o = aq.outstanding.find(t.to);
  if (o == aq.outstanding.end() || o->second != t.serial) return;
  aq.outstanding.erase(o);
  ++counters_.timeouts;
  aq.query.on_failure(peer, now_);
  peer_failed(t.from, t.to);
  aq.query.on_timer(now_);
  drive(t.id);
}

void DhtNetwork::peer_alive(DhtNodeId node, DhtNodeId peer) {
  auto outcome = nodes_[node].dht->on_peer_alive(nodes_[peer].id, {}, now_);
  if (outcome.probe && config_.probe_full_buckets) start_probe(node, *outcome.probe);
}

void DhtNetwork::peer_failed(DhtNodeId node, DhtNodeId peer) {
  nodes_[node].dht->on_peer_failed(nodes_[peer].id);
}

void DhtNetwork::start_probe(DhtNodeId node, const PeerId& peer) {
  auto target = node_of(peer);
  if (!target) return;
  const uint64_t id = next_id_++;
  probes_.emplace(id, Probe{node, *target});
  ++counters_.probes;
  KadMessage ping;
  ping.type = dht::MessageType::find_node;
  ping.key = nodes_[node].id.bytes();
  send_request(node, *target, Ctx::probe, id, std::move(ping), next_serial_++);
}

// ---- Bootstrap and maintenance -----------------------------------------------------------------

void DhtNetwork::bootstrap(DhtNodeId node) {
  Node& n = nodes_[node];
  if (n.bootstrapping) return;
  n.bootstrapping = true;
  n.pending_dials = 0;
  for (DhtNodeId b : bootstrappers_) {
    if (b == node) continue;
    ++n.pending_dials;
    const bool fresh = !conns_.contains(pair_key(node, b)) || !connected(node, b);
    auto ready = connection(node, b);
    if (!ready) {
      ++counters_.dial_failures;
      push(now_ + config_.dial_timeout, BootstrapDialDone{node});
      continue;
    }
    const Time identified = *ready + 2 * latency(node, b);
    // A new connection identifies by itself; on an open one the adapter asks again.
    if (!fresh) push(identified, Identified{node, b, nodes_[node].epoch, nodes_[b].epoch});
    push(identified, BootstrapDialDone{node});
  }
  if (n.pending_dials == 0) bootstrap_done(node);
}

void DhtNetwork::bootstrap_done(DhtNodeId node) {
  Node& n = nodes_[node];
  n.bootstrapping = false;
  if (!n.bootstrapped) {
    n.bootstrapped = true;
    arm_timer(node, now_);  // the maintenance loop starts
    return;
  }
  if (n.self_lookup_after_bootstrap) {
    n.self_lookup_after_bootstrap = false;
    if (n.dht->table().size() > 0) {
      ++counters_.maintenance_lookups;
      start_query(node, n.dht->find_node(n.id.bytes(), now_), std::nullopt, std::nullopt);
    }
  }
}

void DhtNetwork::arm_timer(DhtNodeId node, Time due) {
  Node& n = nodes_[node];
  due = std::max(due, now_);
  if (due >= n.timer_at) return;
  n.timer_at = due;
  push(due, TimerFire{node});
}

void DhtNetwork::on_timer(DhtNodeId node) {
  Node& n = nodes_[node];
  if (now_ != n.timer_at) return;  // superseded by an earlier one
  n.timer_at = Time::max();
  if (!n.online) return;
  auto next = n.dht->next_deadline();
  if (!next || now_ >= *next) {
    run_maintenance(node);
    next = nodes_[node].dht->next_deadline();
    const Time floor = now_ + kMaintenanceFloor;
    if (!next || *next < floor) next = floor;
  }
  arm_timer(node, *next);
}

void DhtNetwork::run_maintenance(DhtNodeId node) {
  dht::Dht& d = *nodes_[node].dht;
  dht::Maintenance m = d.on_timer(now_);
  ++counters_.maintenance_rounds;
  if (m.dial_bootstrappers && !bootstrappers_.empty()) {
    nodes_[node].self_lookup_after_bootstrap = true;
    bootstrap(node);
  }
  for (auto& key : m.lookups) {
    ++counters_.maintenance_lookups;
    start_query(node, d.find_node(key, now_), std::nullopt, std::nullopt);
  }
  for (auto& key : m.provides) {
    ++counters_.provides;
    LookupId rid = record_lookup(node, dht::QueryKind::find_node, key, LookupPurpose::provide);
    dht::Query q = d.find_node(key, now_);
    start_query(node, std::move(q), rid, std::move(key));
  }
}

Result<void> DhtNetwork::provide(DhtNodeId node, BytesView key) {
  Node& n = nodes_.at(node);
  auto ok = n.dht->start_providing(key, now_);
  if (ok && n.online && n.bootstrapped) arm_timer(node, now_);  // wakes the loop
  return ok;
}

// ---- Lookups -----------------------------------------------------------------------------------

LookupId DhtNetwork::record_lookup(DhtNodeId from, dht::QueryKind kind, BytesView key,
                                   LookupPurpose purpose) {
  LookupRecord rec;
  rec.origin = from;
  rec.kind = kind;
  rec.purpose = purpose;
  rec.key = Bytes(key.begin(), key.end());
  rec.started = now_;
  if (kind == dht::QueryKind::find_node) {
    if (auto pid = PeerId::from_bytes(key); pid && by_peer_.contains(*pid)) {
      rec.target = *pid;
      if (nodes_[from].dht->table().contains(*pid)) rec.found_at = now_;  // zero hops
    }
  }
  records_.push_back(std::move(rec));
  return records_.size() - 1;
}

LookupId DhtNetwork::provide_once(DhtNodeId node, BytesView key) {
  LookupId rid = record_lookup(node, dht::QueryKind::find_node, key, LookupPurpose::provide);
  Node& n = nodes_.at(node);
  if (!n.online || !n.started) {
    records_[rid].finished = now_;
    records_[rid].state = dht::QueryState::starved;
    return rid;
  }
  ++counters_.provides;
  Bytes k(key.begin(), key.end());
  if (n.dht->mode() != dht::Mode::client) (void)n.dht->providers().add(k, n.id, {}, now_);
  dht::Query q = n.dht->find_node(key, now_);
  start_query(node, std::move(q), rid, std::move(k));
  return rid;
}

dht::Query DhtNetwork::make_query(DhtNodeId node, dht::QueryKind kind, BytesView key,
                                  dht::QueryConfig config) {
  // As Dht::find_node / get_providers, with other parameters.
  dht::Dht& d = *nodes_[node].dht;
  const dht::KadKey target = dht::kad_key(key);
  d.table().mark_lookup(target, now_);
  std::vector<dht::KadPeer> seeds;
  for (auto& e : d.table().nearest(target, config.k))
    seeds.push_back(dht::KadPeer{e.id, std::move(e.addrs), dht::ConnectionType::not_connected});
  return dht::Query(kind, Bytes(key.begin(), key.end()), d.self(), seeds, config, now_);
}

LookupId DhtNetwork::find_node(DhtNodeId from, BytesView key,
                               const std::optional<dht::QueryConfig>& query) {
  LookupId rid = record_lookup(from, dht::QueryKind::find_node, key, LookupPurpose::user);
  Node& n = nodes_.at(from);
  if (!n.online || !n.started) {
    records_[rid].finished = now_;
    records_[rid].state = dht::QueryState::starved;
    return rid;
  }
  dht::Query q = query ? make_query(from, dht::QueryKind::find_node, key, *query)
                       : n.dht->find_node(key, now_);
  start_query(from, std::move(q), rid, std::nullopt);
  return rid;
}

LookupId DhtNetwork::get_providers(DhtNodeId from, BytesView key, size_t wanted,
                                   const std::optional<dht::QueryConfig>& query) {
  LookupId rid = record_lookup(from, dht::QueryKind::get_providers, key, LookupPurpose::user);
  Node& n = nodes_.at(from);
  if (!n.online || !n.started) {
    records_[rid].finished = now_;
    records_[rid].state = dht::QueryState::starved;
    return rid;
  }
  auto with_wanted = [wanted](dht::QueryConfig qc) {
    qc.wanted_providers = wanted;
    return qc;
  };
  dht::Query q = query ? make_query(from, dht::QueryKind::get_providers, key, with_wanted(*query))
                       : n.dht->get_providers(key, now_, wanted);
  start_query(from, std::move(q), rid, std::nullopt);
  return rid;
}

uint64_t DhtNetwork::start_query(DhtNodeId origin, dht::Query query, std::optional<LookupId> record,
                                 std::optional<Bytes> provide_key) {
  const uint64_t id = next_id_++;
  ++counters_.lookups;
  auto [it, inserted] = queries_.emplace(id, ActiveQuery(std::move(query), origin));
  it->second.record = record;
  it->second.provide_key = std::move(provide_key);
  drive(id);
  return id;
}

void DhtNetwork::drive(uint64_t qid) {
  auto it = queries_.find(qid);
  if (it == queries_.end()) return;
  ActiveQuery& aq = it->second;
  for (;;) {
    auto peers = aq.query.poll(now_);
    if (peers.empty()) break;
    bool failed_any = false;
    for (const auto& p : peers) {
      if (aq.record) aq.depth.emplace(p.id, 0);  // seeds; learned peers have theirs
      auto target = node_of(p.id);
      if (!target) {  // not a simulated node: nothing to dial
        aq.query.on_failure(p.id, now_);
        failed_any = true;
        continue;
      }
      const uint64_t serial = next_serial_++;
      aq.outstanding[*target] = serial;
      send_request(aq.origin, *target, Ctx::query, qid, aq.query.request(), serial);
    }
    if (!failed_any) break;
  }
  if (aq.query.done()) {
    finish(qid);
    return;
  }
  if (auto next = aq.query.next_deadline(); next && *next < aq.timer_at) {
    aq.timer_at = *next;
    push(*next, QueryDeadline{qid});
  }
}

void DhtNetwork::finish(uint64_t qid) {
  auto it = queries_.find(qid);
  if (it == queries_.end()) return;
  ActiveQuery aq = std::move(it->second);
  queries_.erase(it);
  const auto closest = aq.query.closest();
  size_t sent = 0;
  if (aq.provide_key && nodes_[aq.origin].online) {
    KadMessage msg = nodes_[aq.origin].dht->add_provider_message(*aq.provide_key, {});
    for (const auto& p : closest) {
      auto target = node_of(p.id);
      if (!target) continue;
      send_request(aq.origin, *target, Ctx::add_provider, 0, msg, next_serial_++);
      ++sent;
    }
  }
  if (!aq.record) return;
  LookupRecord& rec = records_[*aq.record];
  rec.finished = now_;
  rec.state = aq.query.state();
  rec.stats = aq.query.stats();
  rec.add_providers = sent;
  for (const auto& p : closest) rec.closest.push_back(p.id);
  for (const auto& p : aq.query.providers()) rec.providers.push_back(p.id);
  if (!closest.empty()) {
    auto d = aq.depth.find(closest.front().id);
    if (d != aq.depth.end()) rec.closest_hops = d->second + 1;
  }
}

// ---- Scheduler ---------------------------------------------------------------------------------

void DhtNetwork::push(Time at, Payload payload) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[slot] = std::move(payload);
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(std::move(payload));
  }
  heap_.push_back(Event{std::max(at, now_), seq_++, slot});
  std::push_heap(heap_.begin(), heap_.end(),
                 [](const Event& a, const Event& b) { return later(a, b); });
}

void DhtNetwork::at(Time at, std::function<void()> fn) {
  push(at, Callback{std::move(fn)});
}

void DhtNetwork::run_until(Time end) {
  auto cmp = [](const Event& a, const Event& b) { return later(a, b); };
  while (!heap_.empty() && heap_.front().at <= end) {
    std::pop_heap(heap_.begin(), heap_.end(), cmp);
    Event event = heap_.back();
    heap_.pop_back();
    now_ = event.at;
    ++counters_.events;
    Payload payload = std::move(slots_[event.slot]);
    free_slots_.push_back(event.slot);
    dispatch(payload);
  }
  if (end > now_) now_ = end;
}

void DhtNetwork::dispatch(Payload& payload) {
  if (auto* r = std::get_if<RequestArrival>(&payload)) {
    on_request(*r);
  } else if (auto* a = std::get_if<AnswerArrival>(&payload)) {
    on_answer(*a);
  } else if (auto* t = std::get_if<RequestTimeout>(&payload)) {
    on_request_timeout(*t);
  } else if (auto* q = std::get_if<QueryDeadline>(&payload)) {
    auto it = queries_.find(q->id);
    if (it == queries_.end() || it->second.timer_at != now_) return;
    it->second.timer_at = Time::max();
    if (auto next = it->second.query.next_deadline(); next && now_ >= *next)
      it->second.query.on_timer(now_);
    drive(q->id);
  } else if (auto* f = std::get_if<TimerFire>(&payload)) {
    on_timer(f->node);
  } else if (auto* i = std::get_if<Identified>(&payload)) {
    const Node& n = nodes_[i->node];
    const Node& p = nodes_[i->peer];
    if (!n.online || !p.online || n.epoch != i->epoch_node || p.epoch != i->epoch_peer) return;
    if (p.dht->mode() == dht::Mode::client) return;  // identify does not list the protocol
    ++counters_.identify_adds;
    peer_alive(i->node, i->peer);
  } else if (auto* b = std::get_if<BootstrapDialDone>(&payload)) {
    Node& n = nodes_[b->node];
    if (!n.online || n.pending_dials == 0) return;
    if (--n.pending_dials == 0) bootstrap_done(b->node);
  } else if (auto* c = std::get_if<Callback>(&payload)) {
    c->fn();
  }
}

}  // namespace p2pmq::sim
