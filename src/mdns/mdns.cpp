#include "mdns/mdns.hpp"

#include <algorithm>
#include <set>

namespace p2pmq::mdns {

namespace {

constexpr std::string_view kPeerNameAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";

std::vector<Multiaddr> normalize(std::vector<Multiaddr> addrs) {
  std::vector<Multiaddr> out;
  for (auto& a : addrs) {
    auto bare = a.without_p2p();
    if (bare.empty()) continue;
    if (std::find(out.begin(), out.end(), bare) == out.end()) out.push_back(std::move(bare));
  }
  return out;
}

uint32_t seconds_of(Duration d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  return static_cast<uint32_t>(std::clamp<int64_t>(s, 1, 0x7fffffff));
}

}  // namespace

Mdns::Mdns(PeerId self, std::vector<Multiaddr> addrs, Config config, uint64_t seed)
    : self_(std::move(self)),
      config_(std::move(config)),
      rng_(seed),
      service_(name_from_string(config_.service_name)),
      addrs_(normalize(std::move(addrs))),
      query_interval_(std::min(config_.initial_query_interval, config_.query_interval)),
      response_due_(Time::min()) {  // announce ourselves at the first poll
  // Spec: a random lower-case alphanumeric label of at least 32 characters (and under 64).
  const size_t length = 32 + rng_() % 32;
  for (size_t i = 0; i < length; ++i)
    peer_name_.push_back(kPeerNameAlphabet[rng_() % kPeerNameAlphabet.size()]);
  instance_.push_back(peer_name_);
  instance_.insert(instance_.end(), service_.begin(), service_.end());
}

void Mdns::set_addrs(std::vector<Multiaddr> addrs) {
  auto next = normalize(std::move(addrs));
  if (next == addrs_) return;
  addrs_ = std::move(next);
  responses_valid_ = false;
  if (addrs_.empty()) return;
  Time at = last_response_ ? *last_response_ + config_.min_response_interval : Time::min();
  if (!response_due_ || at < *response_due_) response_due_ = at;
}

Bytes Mdns::query_packet() const {
  Message m;
  m.questions.push_back(Question{service_, RrType::ptr, kClassIn, false});
  return encode(m).value();  // our own well-formed names
}

std::vector<Bytes> Mdns::response_packets(uint32_t ttl) {
  std::vector<std::string> strings;
  for (const auto& a : addrs_) {
    if (strings.size() >= config_.max_advertised_addrs) break;
    auto s = std::string(kDnsaddrPrefix) + a.with_p2p(self_.bytes()).to_string();
    if (s.size() > kMaxTxtStringSize) {
      ++stats_.addrs_skipped;
      continue;
    }
    strings.push_back(std::move(s));
  }
  if (strings.empty()) return {};

  Message m;
  m.flags = kFlagResponse | kFlagAuthoritative;
  m.answers.push_back(
      ResourceRecord{service_, RrType::ptr, kClassIn, false, ttl, PtrData{instance_}});
  // The TXT record is unique to us: cache-flush set (RFC 6762 §10.2).
  m.additionals.push_back(ResourceRecord{instance_, RrType::txt, kClassIn, true, ttl, TxtData{}});
  const size_t base = encode(m).value().size();
  const size_t budget = config_.max_packet_size > base ? config_.max_packet_size - base : 0;

  // Each datagram repeats the PTR answer and carries as many dnsaddr strings as fit (at least
  // one), so each stands alone.
  std::vector<Bytes> out;
  auto& txt = std::get<TxtData>(m.additionals.front().data).strings;
  size_t used = 0;
  for (auto& s : strings) {
    if (!txt.empty() && used + 1 + s.size() > budget) {
      out.push_back(encode(m).value());
      txt.clear();
      used = 0;
    }
    used += 1 + s.size();
    txt.push_back(std::move(s));
  }
  out.push_back(encode(m).value());
  return out;
}

void Mdns::schedule_response(Time now) {
  const auto spread =
      std::max<Duration::rep>(0, (config_.response_delay_max - config_.response_delay_min).count());
  Duration delay = config_.response_delay_min +
                   Duration(spread == 0 ? 0 : static_cast<Duration::rep>(rng_() % (spread + 1)));
  Time at = now + delay;
  if (last_response_) at = std::max(at, *last_response_ + config_.min_response_interval);
  if (!response_due_ || at < *response_due_) response_due_ = at;
}

std::vector<Bytes> Mdns::poll_send(Time now) {
  expire(now);
  std::vector<Bytes> out;
  if (now >= next_query_) {
    out.push_back(query_packet());
    ++stats_.queries_sent;
    next_query_ = now + query_interval_;
    query_interval_ = std::min(query_interval_ * 2, config_.query_interval);
  }
  if (response_due_ && now >= *response_due_) {
    response_due_.reset();
    if (!responses_valid_) {
      responses_ = response_packets(seconds_of(config_.ttl));
      responses_valid_ = true;
    }
    if (!responses_.empty()) {
      last_response_ = now;
      stats_.responses_sent += responses_.size();
      out.insert(out.end(), responses_.begin(), responses_.end());
    }
  }
  return out;
}

Time Mdns::next_deadline() const {
  return response_due_ ? std::min(next_query_, *response_due_) : next_query_;
}

std::vector<Bytes> Mdns::goodbye() {
  auto out = response_packets(0);
  stats_.responses_sent += out.size();
  response_due_.reset();
  return out;
}

std::vector<DiscoveredPeer> Mdns::on_datagram(BytesView datagram, Time now) {
  ++stats_.datagrams;
  auto m = decode(datagram, config_.limits);
  if (!m) {
    ++stats_.malformed;
    return {};
  }
  if (opcode_of(m->flags) != 0 || rcode_of(m->flags) != 0) {
    ++stats_.ignored;
    return {};
  }
  expire(now);
  if (!m->is_response()) {
    handle_query(*m, now);
    return {};
  }
  return handle_response(*m, now);
}

void Mdns::handle_query(const Message& m, Time now) {
  bool asked = false;
  for (const auto& q : m.questions) {
    if (q.qclass != kClassIn && q.qclass != kClassAny) continue;
    const bool any = q.type == RrType::any;
    if (names_equal(q.name, service_) && (any || q.type == RrType::ptr)) asked = true;
    // Spec "Gotchas": tools that ignore additional records ask for the TXT record directly.
    if (names_equal(q.name, instance_) && (any || q.type == RrType::txt)) asked = true;
  }
  if (!asked) return;
  ++stats_.queries_received;
  // Known-answer suppression (RFC 6762 §7.1): the asker holds our PTR with over half its TTL.
  const uint32_t half_ttl = seconds_of(config_.ttl) / 2;
  for (const auto& a : m.answers) {
    auto* ptr = std::get_if<PtrData>(&a.data);
    if (ptr && a.type == RrType::ptr && names_equal(a.name, service_) &&
        names_equal(ptr->target, instance_) && a.ttl >= half_ttl) {
      ++stats_.queries_suppressed;
      return;
    }
  }
  schedule_response(now);
}

std::vector<DiscoveredPeer> Mdns::handle_response(const Message& m, Time now) {
  struct Found {
    std::vector<Multiaddr> addrs;
    uint32_t ttl = 0;
  };
  std::map<PeerId, Found> found;
  std::set<PeerId> gone;
  for (const auto* section : {&m.answers, &m.additionals}) {
    for (const auto& rr : *section) {
      auto* txt = std::get_if<TxtData>(&rr.data);
      // `<peer-name>.<service-name>`, whether or not a PTR answer names it.
      if (!txt || rr.rclass != kClassIn || !name_has_suffix(rr.name, service_, 1)) continue;
      for (const auto& s : txt->strings) {
        std::string_view text(s);
        // Other attributes are allowed (DNS-SD); the key is case-insensitive (RFC 6763 §6.4).
        if (text.size() < kDnsaddrPrefix.size() ||
            !labels_equal(text.substr(0, kDnsaddrPrefix.size()), kDnsaddrPrefix))
          continue;
        auto addr = Multiaddr::parse(text.substr(kDnsaddrPrefix.size()));
        std::optional<PeerId> id;
        if (addr)
          if (auto p2p = addr->p2p())
            if (auto parsed = PeerId::from_bytes(*p2p)) id = std::move(*parsed);
        if (!id) {
          ++stats_.bad_txt;
          continue;
        }
        if (rr.ttl == 0) {
          gone.insert(*id);
          continue;
        }
        auto& f = found[*id];
        f.ttl = std::max(f.ttl, rr.ttl);
        auto bare = addr->without_p2p();
        if (bare.empty() || f.addrs.size() >= config_.max_addrs_per_peer ||
            std::find(f.addrs.begin(), f.addrs.end(), bare) != f.addrs.end())
          continue;
        f.addrs.push_back(std::move(bare));
      }
    }
  }
  for (const auto& id : gone)
    if (id != self_ && !found.contains(id) && peers_.erase(id) > 0) ++stats_.goodbyes;

  std::vector<DiscoveredPeer> out;
  for (auto& [id, f] : found) {
    if (id == self_) {
      ++stats_.self;
      continue;
    }
    if (f.addrs.empty()) continue;
    const Time expires =
        now + std::min<Duration>(std::chrono::seconds(f.ttl), config_.max_record_ttl);
    auto it = peers_.find(id);
    const bool is_new = it == peers_.end();
    if (is_new) {
      // A full table still reports the peer; it is just not remembered.
      if (peers_.size() < config_.max_peers) peers_.emplace(id, Entry{f.addrs, expires});
    } else {
      auto& known = it->second.addrs;
      for (const auto& a : f.addrs)
        if (known.size() < config_.max_addrs_per_peer &&
            std::find(known.begin(), known.end(), a) == known.end())
          known.push_back(a);
      it->second.expires = std::max(it->second.expires, expires);
    }
    out.push_back(DiscoveredPeer{id, std::move(f.addrs), is_new});
  }
  if (!out.empty()) ++stats_.responses_received;
  return out;
}

void Mdns::expire(Time now) {
  std::erase_if(peers_, [&](const auto& kv) { return kv.second.expires <= now; });
}

}  // namespace p2pmq::mdns
