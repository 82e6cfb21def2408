#include "pubsub/score.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string_view>

namespace p2pmq::pubsub {
namespace {

// ---- validation helpers ----

bool nonneg(double v) {
  return std::isfinite(v) && v >= 0;
}
bool nonpos(double v) {
  return std::isfinite(v) && v <= 0;
}
bool positive(double v) {
  return std::isfinite(v) && v > 0;
}
bool unit(double v) {
  return std::isfinite(v) && v > 0 && v < 1;
}

std::string secs(Duration d) {
  return fmt::format("{}s", std::chrono::duration<double>(d).count());
}

tl::unexpected<Error> bad(const std::string& key, std::string_view rule, const std::string& got) {
  return fail(Errc::invalid_input, fmt::format("{}: {}, got {}", key, rule, got));
}
tl::unexpected<Error> bad(const std::string& key, std::string_view rule, double got) {
  return bad(key, rule, fmt::format("{}", got));
}

// ---- IP addresses and CIDRs (P6 whitelist) ----

struct Ip {
  std::array<uint8_t, 16> bytes{};
  bool v4 = false;
};

std::optional<Ip> parse_ip(std::string_view text) {
  std::string s(text);  // inet_pton needs a terminated string
  Ip ip;
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) {
    std::memcpy(ip.bytes.data(), &a4, 4);
    ip.v4 = true;
    return ip;
  }
  if (inet_pton(AF_INET6, s.c_str(), &a6) != 1) return std::nullopt;
  std::memcpy(ip.bytes.data(), &a6, 16);
  // An IPv4-mapped address (::ffff:a.b.c.d) is the IPv4 peer it stands for.
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(ip.bytes.data(), kMapped, 12) == 0) {
    std::memmove(ip.bytes.data(), ip.bytes.data() + 12, 4);
    std::fill(ip.bytes.begin() + 4, ip.bytes.end(), 0);
    ip.v4 = true;
  }
  return ip;
}

struct Net {
  Ip ip;
  int prefix = 0;
};

std::optional<Net> parse_cidr(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto ip = parse_ip(text.substr(0, slash));
  if (!ip) return std::nullopt;
  auto len = text.substr(slash + 1);
  int prefix = -1;
  auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
  if (ec != std::errc() || end != len.data() + len.size() || len.empty()) return std::nullopt;
  if (prefix < 0 || prefix > (ip->v4 ? 32 : 128)) return std::nullopt;
  return Net{*ip, prefix};
}

bool contains(const Net& net, const Ip& ip) {
  if (net.ip.v4 != ip.v4) return false;
  int full = net.prefix / 8, rest = net.prefix % 8;
  if (std::memcmp(net.ip.bytes.data(), ip.bytes.data(), full) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (net.ip.bytes[full] & mask) == (ip.bytes[full] & mask);
}

Result<void> validate_topic(const std::string& k, const TopicScoreParams& p) {
  if (!nonneg(p.topic_weight)) return bad(k + "topic_weight", "must be >= 0", p.topic_weight);

  // P1
  if (!nonneg(p.time_in_mesh_weight))
    return bad(k + "time_in_mesh_weight", "must be >= 0", p.time_in_mesh_weight);
  if (p.time_in_mesh_quantum <= Duration::zero())
    return bad(k + "time_in_mesh_quantum", "must be > 0", secs(p.time_in_mesh_quantum));
  if (p.time_in_mesh_weight != 0 && !positive(p.time_in_mesh_cap))
    return bad(k + "time_in_mesh_cap", "must be > 0", p.time_in_mesh_cap);

  // P2
  if (!nonneg(p.first_message_deliveries_weight))
    return bad(k + "first_message_deliveries_weight", "must be >= 0",
               p.first_message_deliveries_weight);
  if (p.first_message_deliveries_weight != 0) {
    if (!unit(p.first_message_deliveries_decay))
      return bad(k + "first_message_deliveries_decay", "must be in (0, 1)",
                 p.first_message_deliveries_decay);
    if (!positive(p.first_message_deliveries_cap))
      return bad(k + "first_message_deliveries_cap", "must be > 0", p.first_message_deliveries_cap);
  }

  // P3
  if (!nonpos(p.mesh_message_deliveries_weight))
    return bad(k + "mesh_message_deliveries_weight", "must be <= 0",
               p.mesh_message_deliveries_weight);
  if (p.mesh_message_deliveries_weight != 0) {
    if (!unit(p.mesh_message_deliveries_decay))
      return bad(k + "mesh_message_deliveries_decay", "must be in (0, 1)",
                 p.mesh_message_deliveries_decay);
    if (!positive(p.mesh_message_deliveries_cap))
      return bad(k + "mesh_message_deliveries_cap", "must be > 0", p.mesh_message_deliveries_cap);
    if (!positive(p.mesh_message_deliveries_threshold))
      return bad(k + "mesh_message_deliveries_threshold", "must be > 0",
                 p.mesh_message_deliveries_threshold);
  }
  if (p.mesh_message_deliveries_window < Duration::zero())
    return bad(k + "mesh_message_deliveries_window", "must be >= 0",
               secs(p.mesh_message_deliveries_window));
  // Activation gives a freshly grafted peer time to start delivering.
  if (p.mesh_message_deliveries_weight != 0 &&
      p.mesh_message_deliveries_activation < std::chrono::seconds(1))
    return bad(k + "mesh_message_deliveries_activation", "must be at least 1s",
               secs(p.mesh_message_deliveries_activation));

  // P3b
  if (!nonpos(p.mesh_failure_penalty_weight))
    return bad(k + "mesh_failure_penalty_weight", "must be <= 0", p.mesh_failure_penalty_weight);
  if (p.mesh_failure_penalty_weight != 0 && !unit(p.mesh_failure_penalty_decay))
    return bad(k + "mesh_failure_penalty_decay", "must be in (0, 1)", p.mesh_failure_penalty_decay);

  // P4: the decay is always checked, as in go.
  if (!nonpos(p.invalid_message_deliveries_weight))
    return bad(k + "invalid_message_deliveries_weight", "must be <= 0",
               p.invalid_message_deliveries_weight);
  if (!unit(p.invalid_message_deliveries_decay))
    return bad(k + "invalid_message_deliveries_decay", "must be in (0, 1)",
               p.invalid_message_deliveries_decay);
  return {};
}

}  // namespace

Result<void> validate(const PeerScoreParams& p) {
  for (const auto& [topic, tp] : p.topics) {
    if (auto r = validate_topic("score.topics." + topic + ".", tp); !r) return r;
  }
  if (p.default_topic) {
    if (auto r = validate_topic("score.default_topic.", *p.default_topic); !r) return r;
  }
  const std::string k = "score.";
  if (!nonneg(p.topic_score_cap))
    return bad(k + "topic_score_cap", "must be >= 0 (0 = no cap)", p.topic_score_cap);
  if (!std::isfinite(p.app_specific_weight))
    return bad(k + "app_specific_weight", "must be a finite number", p.app_specific_weight);

  // P6
  if (!nonpos(p.ip_colocation_factor_weight))
    return bad(k + "ip_colocation_factor_weight", "must be <= 0", p.ip_colocation_factor_weight);
  if (p.ip_colocation_factor_weight != 0 &&
      !(std::isfinite(p.ip_colocation_factor_threshold) && p.ip_colocation_factor_threshold >= 1))
    return bad(k + "ip_colocation_factor_threshold", "must be >= 1",
               p.ip_colocation_factor_threshold);
  for (size_t i = 0; i < p.ip_colocation_factor_whitelist.size(); ++i) {
    const auto& cidr = p.ip_colocation_factor_whitelist[i];
    if (!parse_cidr(cidr))
      return bad(fmt::format("{}ip_colocation_factor_whitelist[{}]", k, i),
                 "must be a CIDR like 10.0.0.0/8 or fd00::/8", "\"" + cidr + "\"");
  }

  // P7
  if (!nonpos(p.behaviour_penalty_weight))
    return bad(k + "behaviour_penalty_weight", "must be <= 0", p.behaviour_penalty_weight);
  if (p.behaviour_penalty_weight != 0 && !unit(p.behaviour_penalty_decay))
    return bad(k + "behaviour_penalty_decay", "must be in (0, 1)", p.behaviour_penalty_decay);
  if (!nonneg(p.behaviour_penalty_threshold))
    return bad(k + "behaviour_penalty_threshold", "must be >= 0", p.behaviour_penalty_threshold);

  if (p.decay_interval < std::chrono::seconds(1))
    return bad(k + "decay_interval", "must be at least 1s", secs(p.decay_interval));
  if (!unit(p.decay_to_zero)) return bad(k + "decay_to_zero", "must be in (0, 1)", p.decay_to_zero);
  if (p.retain_score < Duration::zero())
    return bad(k + "retain_score", "must be >= 0", secs(p.retain_score));
  if (p.delivery_record_ttl <= Duration::zero())
    return bad(k + "delivery_record_ttl", "must be > 0", secs(p.delivery_record_ttl));
  if (p.max_delivery_records == 0) return bad(k + "max_delivery_records", "must be >= 1", "0");
  return {};
}

Result<void> validate(const PeerScoreThresholds& t) {
  const std::string k = "thresholds.";
  if (!nonpos(t.gossip_threshold))
    return bad(k + "gossip_threshold", "must be <= 0", t.gossip_threshold);
  if (!nonpos(t.publish_threshold))
    return bad(k + "publish_threshold", "must be <= 0", t.publish_threshold);
  if (t.publish_threshold > t.gossip_threshold)
    return bad(k + "publish_threshold", "must be <= gossip_threshold", t.publish_threshold);
  if (!nonpos(t.graylist_threshold))
    return bad(k + "graylist_threshold", "must be <= 0", t.graylist_threshold);
  if (t.graylist_threshold > t.publish_threshold)
    return bad(k + "graylist_threshold", "must be <= publish_threshold", t.graylist_threshold);
  if (!nonneg(t.accept_px_threshold))
    return bad(k + "accept_px_threshold", "must be >= 0", t.accept_px_threshold);
  if (!nonneg(t.opportunistic_graft_threshold))
    return bad(k + "opportunistic_graft_threshold", "must be >= 0",
               t.opportunistic_graft_threshold);
  return {};
}

double score_parameter_decay(Duration decay, Duration decay_interval, double decay_to_zero) {
  // After n intervals a counter is factor^n, so factor = decay_to_zero^(1/n). Whole intervals,
  // as in go; at least one, so a decay shorter than the interval still yields a factor.
  auto ticks = decay_interval > Duration::zero() ? decay / decay_interval : 1;
  return std::pow(decay_to_zero, 1.0 / static_cast<double>(std::max<decltype(ticks)>(ticks, 1)));
}

// ---- PeerScore ----

PeerScore::PeerScore(PeerScoreParams params, Time now)
    : params_(std::move(params)), now_(now), next_refresh_(now + params_.decay_interval) {
  for (const auto& cidr : params_.ip_colocation_factor_whitelist) {
    if (auto net = parse_cidr(cidr))
      whitelist_.push_back(Cidr{net->ip.bytes, net->ip.v4, net->prefix});
  }
}

void PeerScore::set_app_specific_score(std::function<double(const PeerId&)> fn) {
  app_score_ = std::move(fn);
}

void PeerScore::advance(Time now) {
  now_ = std::max(now_, now);
}

void PeerScore::add_peer(const PeerId& peer, Time now) {
  advance(now);
  auto [it, inserted] = peers_.try_emplace(peer);
  if (inserted) {
    it->second.serial = next_serial_++;
    by_serial_.emplace(it->second.serial, peer);
  }
  if (!inserted && !it->second.connected) {
    it->second.connected = true;  // a retained peer is back with its counters
    --retained_;
  }
}

void PeerScore::remove_peer(const PeerId& peer, Time now) {
  advance(now);
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.connected) return;
  // Only non-positive scores are kept: that is what stops a peer from shedding a penalty by
  // reconnecting, while nobody gains by keeping a stranger's good standing.
  if (score(peer, now) > 0 || params_.max_retained_peers == 0) {
    erase_peer(peer);
    return;
  }
  auto& stats = it->second;
  for (auto& [topic, tc] : stats.topics) {
    tc.first_message_deliveries = 0;
    if (tc.in_mesh) apply_mesh_failure(tc, *topic_params(topic), now);
    tc.in_mesh = false;
  }
  if (retained_ >= params_.max_retained_peers) evict_one_retained();
  stats.connected = false;
  stats.expire = now + params_.retain_score;
  ++retained_;
}

void PeerScore::erase_peer(const PeerId& peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  for (const auto& pip : it->second.ips) {
    auto by = peers_by_ip_.find(pip.ip);
    if (by == peers_by_ip_.end()) continue;
    std::erase(by->second, peer);
    if (by->second.empty()) peers_by_ip_.erase(by);
  }
  if (!it->second.connected) --retained_;
  // Records may still name the serial; it resolves to nobody from now on. A peer that comes
  // back gets a new serial, so a copy it sends of a message recorded before counts as its
  // first (go keys records by peer id and would not count it; the window is one record TTL).
  by_serial_.erase(it->second.serial);
  peers_.erase(it);
}

void PeerScore::evict_one_retained() {
  // Linear, but only runs at the cap.
  const PeerId* oldest = nullptr;
  Time expire = Time::max();
  for (const auto& [id, stats] : peers_) {
    if (!stats.connected && stats.expire <= expire) {
      oldest = &id;
      expire = stats.expire;
    }
  }
  if (oldest) erase_peer(PeerId(*oldest));
}

bool PeerScore::whitelisted(const std::string& ip) const {
  auto parsed = parse_ip(ip);
  if (!parsed) return false;
  return std::any_of(whitelist_.begin(), whitelist_.end(), [&](const Cidr& c) {
    return contains(Net{Ip{c.addr, c.v4}, c.prefix}, *parsed);
  });
}

void PeerScore::add_ip(const PeerId& peer, const std::string& ip) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  auto& ips = it->second.ips;
  if (std::any_of(ips.begin(), ips.end(), [&](const PeerIp& p) { return p.ip == ip; })) return;
  ips.push_back(PeerIp{ip, whitelisted(ip)});  // decided once, not on every score()
  peers_by_ip_[ip].push_back(peer);
}

void PeerScore::remove_ip(const PeerId& peer, const std::string& ip) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  auto& ips = it->second.ips;
  auto n = std::erase_if(ips, [&](const PeerIp& p) { return p.ip == ip; });
  if (n == 0) return;
  auto by = peers_by_ip_.find(ip);
  if (by == peers_by_ip_.end()) return;
  std::erase(by->second, peer);
  if (by->second.empty()) peers_by_ip_.erase(by);
}

const TopicScoreParams* PeerScore::topic_params(const TopicId& topic) const {
  auto it = params_.topics.find(topic);
  if (it != params_.topics.end()) return &it->second;
  return params_.default_topic ? &*params_.default_topic : nullptr;
}

PeerScore::TopicCounters* PeerScore::counters(const PeerId& peer, const TopicId& topic) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || !topic_params(topic)) return nullptr;
  return &it->second.topics[topic];  // created on first use, for scored topics only
}

bool PeerScore::mesh_active(const TopicCounters& tc, const TopicScoreParams& tp, Time now) const {
  return tc.in_mesh && now - tc.graft_time > tp.mesh_message_deliveries_activation;
}

void PeerScore::apply_mesh_failure(TopicCounters& tc, const TopicScoreParams& tp, Time now) {
  const double threshold = tp.mesh_message_deliveries_threshold;
  if (mesh_active(tc, tp, now) && tc.mesh_message_deliveries < threshold) {
    const double deficit = threshold - tc.mesh_message_deliveries;
    tc.mesh_failure_penalty += deficit * deficit;
  }
}

void PeerScore::graft(const PeerId& peer, const TopicId& topic, Time now) {
  advance(now);
  auto* tc = counters(peer, topic);
  if (!tc) return;
  tc->in_mesh = true;
  tc->graft_time = now;  // restarts P1 and the P3 activation period
}

void PeerScore::prune(const PeerId& peer, const TopicId& topic, Time now) {
  advance(now);
  auto* tc = counters(peer, topic);
  if (!tc || !tc->in_mesh) return;
  apply_mesh_failure(*tc, *topic_params(topic), now);
  tc->in_mesh = false;
}

// The reference is valid until the next call that creates a record.
PeerScore::DeliveryRecord& PeerScore::record(const MessageId& id, Time now) {
  const MessageKey key = MessageKey::of(id);
  if (auto it = records_.find(key); it != records_.end()) return it->second;
  while (records_.size() >= params_.max_delivery_records && record_head_ < record_order_.size())
    pop_oldest_record();
  record_order_.emplace_back(key, now + params_.delivery_record_ttl);
  auto& rec = records_[key];
  rec.first_seen = now;
  return rec;
}

void PeerScore::pop_oldest_record() {
  records_.erase(record_order_[record_head_].first);
  ++record_head_;
  // Drop the expired prefix once it is the larger part: amortised O(1) per record.
  if (record_head_ == record_order_.size()) {
    record_order_.clear();
    record_head_ = 0;
  } else if (record_head_ > 1024 && record_head_ * 2 > record_order_.size()) {
    record_order_.erase(record_order_.begin(),
                        record_order_.begin() + static_cast<std::ptrdiff_t>(record_head_));
    record_head_ = 0;
  }
}

uint64_t PeerScore::serial_of(const PeerId& peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? 0 : it->second.serial;
}

void PeerScore::mark_invalid(const PeerId& peer, const TopicId& topic) {
  if (auto* tc = counters(peer, topic)) tc->invalid_message_deliveries += 1;
}

void PeerScore::mark_first(const PeerId& peer, const TopicId& topic) {
  auto* tc = counters(peer, topic);
  if (!tc) return;
  const auto& tp = *topic_params(topic);
  tc->first_message_deliveries =
      std::min(tc->first_message_deliveries + 1, tp.first_message_deliveries_cap);
  if (tc->in_mesh)
    tc->mesh_message_deliveries =
        std::min(tc->mesh_message_deliveries + 1, tp.mesh_message_deliveries_cap);
}

void PeerScore::mark_duplicate(const PeerId& peer, const TopicId& topic,
                               std::optional<Time> validated, Time now) {
  auto* tc = counters(peer, topic);
  if (!tc || !tc->in_mesh) return;
  const auto& tp = *topic_params(topic);
  // Copies that arrive while the message is still being validated always count; later ones
  // only within the window, as a peer could otherwise echo back what we just forwarded.
  if (validated && now - *validated > tp.mesh_message_deliveries_window) return;
  tc->mesh_message_deliveries =
      std::min(tc->mesh_message_deliveries + 1, tp.mesh_message_deliveries_cap);
}

void PeerScore::validate_message(const PeerId&, const MessageId& id, const TopicId&, Time now) {
  advance(now);
  record(id, now);  // starts the record, so copies during validation are tracked
}

void PeerScore::deliver_message(const PeerId& from, const MessageId& id, const TopicId& topic,
                                Time now) {
  advance(now);
  mark_first(from, topic);
  auto& rec = record(id, now);
  if (rec.status != Status::unknown) return;
  rec.status = Status::valid;
  rec.validated = now;
  const uint64_t sender = serial_of(from);
  for (uint64_t p : rec.peers) {
    if (p == sender) continue;
    if (auto it = by_serial_.find(p); it != by_serial_.end())
      mark_duplicate(it->second, topic, std::nullopt, now);
  }
  // Unlike go, remember the first sender too, so its own repeat earns no P3 credit.
  if (sender != 0 && std::find(rec.peers.begin(), rec.peers.end(), sender) == rec.peers.end())
    rec.peers.push_back(sender);
}

void PeerScore::reject_message(const PeerId& from, const MessageId& id, const TopicId& topic,
                               RejectReason reason, Time now) {
  advance(now);
  switch (reason) {
    // Clearly the sender's fault, and the id may not be trustworthy: penalise, don't track.
    case RejectReason::missing_signature:
    case RejectReason::invalid_signature:
    case RejectReason::unexpected_signature:
    case RejectReason::unexpected_author:
    case RejectReason::self_origin:
    case RejectReason::too_large:
      mark_invalid(from, topic);
      return;
    // Not a verdict on the message: the router reports copies with duplicate_message.
    case RejectReason::blacklisted:
    case RejectReason::duplicate:
      return;
    case RejectReason::validation_failed:
    case RejectReason::validation_ignored:
    case RejectReason::validation_throttled:
      break;
  }
  auto& rec = record(id, now);
  if (rec.status != Status::unknown) return;
  if (reason == RejectReason::validation_throttled || reason == RejectReason::validation_ignored) {
    // Nobody's fault (we could not validate, or the validator said don't penalise).
    rec.status = reason == RejectReason::validation_ignored ? Status::ignored : Status::throttled;
    rec.peers.clear();
    return;
  }
  rec.status = Status::invalid;
  mark_invalid(from, topic);
  for (uint64_t p : rec.peers) {
    if (auto it = by_serial_.find(p); it != by_serial_.end()) mark_invalid(it->second, topic);
  }
  rec.peers.clear();
}

void PeerScore::duplicate_message(const PeerId& from, const MessageId& id, const TopicId& topic,
                                  Time now) {
  advance(now);
  auto& rec = record(id, now);
  // Only tracked peers are remembered: nobody else can be credited, and it bounds the list.
  const uint64_t sender = serial_of(from);
  const bool tracked = sender != 0;
  if (tracked && std::find(rec.peers.begin(), rec.peers.end(), sender) != rec.peers.end()) return;
  switch (rec.status) {
    case Status::unknown:  // credit or blame once validation ends
      if (tracked) rec.peers.push_back(sender);
      break;
    case Status::valid:
      if (tracked) rec.peers.push_back(sender);
      mark_duplicate(from, topic, rec.validated, now);
      break;
    case Status::invalid:
      mark_invalid(from, topic);
      break;
    case Status::ignored:
    case Status::throttled:
      break;
  }
}

void PeerScore::add_penalty(const PeerId& peer, int count) {
  if (count <= 0) return;
  if (auto it = peers_.find(peer); it != peers_.end()) it->second.behaviour_penalty += count;
}

double PeerScore::score(const PeerId& peer, Time now) const {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return 0;
  const auto& stats = it->second;

  double score = 0;
  for (const auto& [topic, tc] : stats.topics) {
    const auto& tp = *topic_params(topic);
    double ts = 0;
    // P1: whole quanta in the mesh, capped.
    if (tc.in_mesh && tp.time_in_mesh_quantum > Duration::zero()) {
      auto in_mesh = std::max(now - tc.graft_time, Duration::zero());
      double p1 = static_cast<double>(in_mesh / tp.time_in_mesh_quantum);
      ts += std::min(p1, tp.time_in_mesh_cap) * tp.time_in_mesh_weight;
    }
    // P2
    ts += tc.first_message_deliveries * tp.first_message_deliveries_weight;
    // P3: squared deficit, only for current mesh members past activation (go keeps applying
    // it after a prune; the spec and rust-libp2p do not, P3b covers that case).
    if (mesh_active(tc, tp, now) &&
        tc.mesh_message_deliveries < tp.mesh_message_deliveries_threshold) {
      double deficit = tp.mesh_message_deliveries_threshold - tc.mesh_message_deliveries;
      ts += deficit * deficit * tp.mesh_message_deliveries_weight;
    }
    // P3b
    ts += tc.mesh_failure_penalty * tp.mesh_failure_penalty_weight;
    // P4: squared, so repeated invalid messages hurt quickly.
    ts += tc.invalid_message_deliveries * tc.invalid_message_deliveries *
          tp.invalid_message_deliveries_weight;
    score += ts * tp.topic_weight;
  }
  if (params_.topic_score_cap > 0) score = std::min(score, params_.topic_score_cap);

  // P5
  if (app_score_) score += app_score_(peer) * params_.app_specific_weight;

  // P6: quadratic surplus of peers sharing an address, beyond the threshold.
  for (const auto& pip : stats.ips) {
    if (pip.whitelisted) continue;
    auto by = peers_by_ip_.find(pip.ip);
    if (by == peers_by_ip_.end()) continue;
    double n = static_cast<double>(by->second.size());
    if (n > params_.ip_colocation_factor_threshold) {
      double surplus = n - params_.ip_colocation_factor_threshold;
      score += surplus * surplus * params_.ip_colocation_factor_weight;
    }
  }

  // P7
  if (stats.behaviour_penalty > params_.behaviour_penalty_threshold) {
    double excess = stats.behaviour_penalty - params_.behaviour_penalty_threshold;
    score += excess * excess * params_.behaviour_penalty_weight;
  }
  return score;
}

void PeerScore::refresh(Time now) {
  advance(now);
  const double zero = params_.decay_to_zero;
  auto decay = [zero](double& v, double factor) {
    v *= factor;
    if (v < zero) v = 0;
  };
  std::vector<PeerId> expired;
  for (auto& [id, stats] : peers_) {
    if (!stats.connected) {
      // Retained scores do not decay, or waiting offline would clear a penalty.
      if (now > stats.expire) expired.push_back(id);
      continue;
    }
    for (auto& [topic, tc] : stats.topics) {
      const auto& tp = *topic_params(topic);
      decay(tc.first_message_deliveries, tp.first_message_deliveries_decay);
      decay(tc.mesh_message_deliveries, tp.mesh_message_deliveries_decay);
      decay(tc.mesh_failure_penalty, tp.mesh_failure_penalty_decay);
      decay(tc.invalid_message_deliveries, tp.invalid_message_deliveries_decay);
    }
    decay(stats.behaviour_penalty, params_.behaviour_penalty_decay);
  }
  for (const auto& id : expired) erase_peer(id);

  while (record_head_ < record_order_.size() && now > record_order_[record_head_].second)
    pop_oldest_record();
  next_refresh_ = now + params_.decay_interval;
}

std::optional<PeerScore::TopicStats> PeerScore::topic_stats(const PeerId& peer,
                                                            const TopicId& topic) const {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return std::nullopt;
  auto t = it->second.topics.find(topic);
  if (t == it->second.topics.end()) return std::nullopt;
  const auto& tc = t->second;
  TopicStats out;
  out.in_mesh = tc.in_mesh;
  if (tc.in_mesh) out.mesh_time = std::max(now_ - tc.graft_time, Duration::zero());
  out.first_message_deliveries = tc.first_message_deliveries;
  out.mesh_message_deliveries = tc.mesh_message_deliveries;
  out.mesh_failure_penalty = tc.mesh_failure_penalty;
  out.invalid_message_deliveries = tc.invalid_message_deliveries;
  return out;
}

double PeerScore::behaviour_penalty(const PeerId& peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? 0 : it->second.behaviour_penalty;
}

}  // namespace p2pmq::pubsub
