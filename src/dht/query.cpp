#include "dht/query.hpp"

#include <algorithm>

namespace p2pmq::dht {
namespace {

MessageType request_type(QueryKind kind) {
  switch (kind) {
    case QueryKind::find_node:
      return MessageType::find_node;
    case QueryKind::get_providers:
      return MessageType::get_providers;
    case QueryKind::get_value:
      return MessageType::get_value;
  }
  return MessageType::find_node;
}

}  // namespace

const char* query_state_name(QueryState s) {
  switch (s) {
    case QueryState::running:
      return "running";
    case QueryState::completed:
      return "completed";
    case QueryState::starved:
      return "starved";
    case QueryState::stopped:
      return "stopped";
    case QueryState::timed_out:
      return "timed_out";
  }
  return "unknown";
}

Query::Query(QueryKind kind, Bytes key, PeerId self, const std::vector<KadPeer>& seeds,
             QueryConfig config, Time now, RecordFilter filter)
    : kind_(kind),
      key_(std::move(key)),
      target_(kad_key(key_)),
      self_(std::move(self)),
      config_(config),
      filter_(std::move(filter)),
      deadline_(now + config.query_timeout) {
  config_.alpha = std::max<size_t>(config_.alpha, 1);
  config_.k = std::max<size_t>(config_.k, 1);
  config_.beta = std::clamp<size_t>(config_.beta, 1, config_.k);
  for (const auto& s : seeds) add_candidate(s);
  update_state();
}

KadMessage Query::request() const {
  KadMessage m;
  m.type = request_type(kind_);
  m.key = key_;
  return m;
}

std::map<Distance, Query::Candidate>::iterator Query::find(const PeerId& peer) {
  return candidates_.find(xor_distance(target_, kad_key(peer)));
}

void Query::add_candidate(const KadPeer& peer) {
  if (peer.id == self_) return;
  Distance d = xor_distance(target_, kad_key(peer.id));
  if (auto it = candidates_.find(d); it != candidates_.end()) {
    // Known: only learn addresses we lacked.
    if (it->second.peer.addrs.empty()) it->second.peer.addrs = peer.addrs;
    return;
  }
  if (candidates_.size() >= config_.max_candidates) {
    // Make room by dropping the farthest peer not asked yet (or failed), if it is farther.
    auto victim = candidates_.end();
    for (auto it = candidates_.rbegin(); it != candidates_.rend(); ++it) {
      if (it->second.state == PeerState::heard || it->second.state == PeerState::failed) {
        victim = std::prev(it.base());
        break;
      }
    }
    if (victim == candidates_.end() || !(d < victim->first)) return;
    candidates_.erase(victim);
  }
  candidates_.emplace(d, Candidate{peer, PeerState::heard, {}});
}

std::vector<KadPeer> Query::poll(Time now) {
  std::vector<KadPeer> out;
  if (done()) return out;
  size_t live = 0;  // rank among peers not known to have failed
  for (auto& [d, c] : candidates_) {
    if (in_flight_ >= config_.alpha || live >= config_.k) break;
    if (c.state == PeerState::failed) continue;
    ++live;
    if (c.state != PeerState::heard) continue;
    c.state = PeerState::waiting;
    c.sent = now;
    ++in_flight_;
    ++stats_.requests;
    out.push_back(c.peer);
  }
  stats_.max_in_flight = std::max(stats_.max_in_flight, in_flight_);
  return out;
}

bool Query::on_response(const PeerId& from, const KadMessage& response, Time now) {
  (void)now;
  if (done()) return false;
  auto it = find(from);
  if (it == candidates_.end() || it->second.state != PeerState::waiting) return false;
  if (response.type != request_type(kind_)) {
    fail(it->second);
    update_state();
    return true;
  }
  it->second.state = PeerState::answered;
  --in_flight_;
  ++stats_.responses;
  // Bounded by the codec's max_peers per message.
  for (const auto& p : response.closer_peers) add_candidate(p);
  if (kind_ == QueryKind::get_providers) {
    for (const auto& p : response.provider_peers) {
      if (providers_.size() >= config_.max_providers) break;
      auto same = [&](const KadPeer& q) { return q.id == p.id; };
      if (std::find_if(providers_.begin(), providers_.end(), same) == providers_.end())
        providers_.push_back(p);
    }
  }
  if (kind_ == QueryKind::get_value && response.record && response.record->key == key_ &&
      (!filter_ || filter_(*response.record)))
    records_.emplace_back(from, *response.record);
  update_state();
  return true;
}

void Query::fail(Candidate& c) {
  if (c.state == PeerState::waiting) --in_flight_;
  if (c.state != PeerState::failed) ++stats_.failures;
  c.state = PeerState::failed;
}

void Query::on_failure(const PeerId& from, Time now) {
  (void)now;
  if (done()) return;
  auto it = find(from);
  if (it == candidates_.end() || it->second.state == PeerState::answered) return;
  fail(it->second);
  update_state();
}

void Query::on_timer(Time now) {
  if (done()) return;
  if (now >= deadline_) {
    state_ = QueryState::timed_out;
    return;
  }
  for (auto& [d, c] : candidates_)
    if (c.state == PeerState::waiting && now >= c.sent + config_.request_timeout) fail(c);
  update_state();
}

std::optional<Time> Query::next_deadline() const {
  if (done()) return std::nullopt;
  Time next = deadline_;
  for (const auto& [d, c] : candidates_)
    if (c.state == PeerState::waiting) next = std::min(next, c.sent + config_.request_timeout);
  return next;
}

void Query::update_state() {
  if (done()) return;
  if (config_.wanted_providers > 0 && providers_.size() >= config_.wanted_providers) {
    state_ = QueryState::stopped;
    return;
  }
  if (config_.quorum > 0 && records_.size() >= config_.quorum) {
    state_ = QueryState::stopped;
    return;
  }
  // The β closest live peers have all answered: nothing closer is left to find.
  size_t live = 0;
  bool pending = false;
  for (const auto& [d, c] : candidates_) {
    if (c.state == PeerState::failed) continue;
    if (live == config_.beta) break;
    ++live;
    if (c.state != PeerState::answered) pending = true;
  }
  if (live > 0 && !pending) {
    state_ = QueryState::completed;
    return;
  }
  if (live == 0) state_ = QueryState::starved;  // everyone failed (or nobody was known)
}

std::vector<KadPeer> Query::closest() const {
  std::vector<KadPeer> out;
  for (const auto& [d, c] : candidates_) {
    if (out.size() >= config_.k) break;
    if (c.state == PeerState::answered) out.push_back(c.peer);
  }
  return out;
}

}  // namespace p2pmq::dht
