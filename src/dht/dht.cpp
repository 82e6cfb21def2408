#include "dht/dht.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "core/cid.hpp"
#include "core/multihash.hpp"

namespace p2pmq::dht {
namespace {

Result<void> bad(const char* key, const char* why) {
  return fail(Errc::invalid_input, std::string("dht.") + key + ": " + why);
}

std::vector<KadPeer> to_peers(const std::vector<TableEntry>& entries) {
  std::vector<KadPeer> out;
  out.reserve(entries.size());
  for (const auto& e : entries)
    out.push_back(KadPeer{e.id, e.addrs, ConnectionType::not_connected});
  return out;
}

}  // namespace

Result<void> validate(const DhtConfig& c) {
  if (c.protocol_prefix.empty() || c.protocol_prefix.front() != '/' ||
      c.protocol_prefix.back() == '/')
    return bad("protocol_prefix", "must start with '/' and not end with one");
  if (c.table.k == 0) return bad("table.k", "must be > 0");
  if (c.table.max_refresh_cpl > 20) return bad("table.max_refresh_cpl", "must be <= 20");
  if (c.table.max_failures == 0) return bad("table.max_failures", "must be > 0");
  if (c.table.max_peers_per_ip_group != 0 &&
      c.table.max_peers_per_ip_group_per_bucket > c.table.max_peers_per_ip_group)
    return bad("table.max_peers_per_ip_group_per_bucket", "must be <= max_peers_per_ip_group");
  if (c.query.alpha == 0) return bad("query.alpha", "must be > 0");
  if (c.query.k == 0) return bad("query.k", "must be > 0");
  if (c.query.beta == 0 || c.query.beta > c.query.k) return bad("query.beta", "must be 1..k");
  if (c.query.request_timeout <= Duration::zero())
    return bad("query.request_timeout", "must be > 0");
  if (c.query.query_timeout < c.query.request_timeout)
    return bad("query.query_timeout", "must be >= request_timeout");
  if (c.query.max_candidates < c.query.k) return bad("query.max_candidates", "must be >= k");
  if (c.providers.provider_ttl <= c.providers.republish_interval)
    return bad("providers.provider_ttl", "must exceed republish_interval");
  if (c.rate.requests_per_second <= 0) return bad("rate.requests_per_second", "must be > 0");
  if (c.rate.burst < 1) return bad("rate.burst", "must be >= 1");
  if (c.limits.max_message_size == 0) return bad("limits.max_message_size", "must be > 0");
  if (c.bootstrap_interval <= Duration::zero()) return bad("bootstrap_interval", "must be > 0");
  if (c.cleanup_interval <= Duration::zero()) return bad("cleanup_interval", "must be > 0");
  return {};
}

std::optional<Bytes> provider_key(BytesView key) {
  if (Multihash::decode(key)) return Bytes(key.begin(), key.end());
  if (auto cid = Cid::decode(key)) return cid->hash.encode();
  return std::nullopt;
}

Dht::Dht(PeerId self, DhtConfig config)
    : self_(self),
      config_(std::move(config)),
      table_(self_, config_.table),
      providers_(config_.providers),
      records_(config_.records),
      rng_(config_.seed) {
  records_.register_namespace("pk", public_key_validator());
}

// ---- Server side -------------------------------------------------------------------------

bool Dht::allow(const PeerId& from, Time now) {
  auto it = rate_.find(from);
  if (it == rate_.end()) {
    if (rate_.size() >= config_.rate.max_tracked_peers) {
      // Forget peers whose bucket has refilled anyway; if none, the oldest-seen one.
      auto refill =
          std::chrono::duration<double>(config_.rate.burst / config_.rate.requests_per_second);
      std::erase_if(rate_, [&](const auto& kv) { return now - kv.second.last >= refill; });
      if (rate_.size() >= config_.rate.max_tracked_peers) {
        auto oldest = std::min_element(
            rate_.begin(), rate_.end(),
            [](const auto& a, const auto& b) { return a.second.last < b.second.last; });
        rate_.erase(oldest);
      }
    }
    it = rate_.emplace(from, Bucket{config_.rate.burst, now}).first;
  }
  Bucket& b = it->second;
  double elapsed = std::chrono::duration<double>(now - b.last).count();
  if (elapsed > 0) {
    b.tokens = std::min(config_.rate.burst, b.tokens + elapsed * config_.rate.requests_per_second);
    b.last = now;
  }
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

std::vector<KadPeer> Dht::closer_peers(BytesView key, const PeerId& requester) const {
  // The requester knows itself; one extra so it can be dropped and k still returned.
  auto entries = table_.nearest(kad_key(key), config_.table.k + 1);
  std::erase_if(entries, [&](const TableEntry& e) { return e.id == requester; });
  if (entries.size() > config_.table.k)
    entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(config_.table.k), entries.end());
  return to_peers(entries);
}

Result<std::optional<KadMessage>> Dht::handle_request(const PeerId& from, const KadMessage& req,
                                                      Time now, const RequestSource& source) {
  ++counters_.requests;
  if (config_.mode == Mode::client) {
    ++counters_.refused;
    return fail(Errc::unsupported, "kad: client mode serves no requests");
  }
  if (!allow(from, now)) {
    ++counters_.rate_limited;
    return fail(Errc::limit_exceeded, "kad: request rate over rate.requests_per_second");
  }
  auto out = handle(from, req, now, source);
  if (!out) ++counters_.refused;
  return out;
}

Result<std::optional<KadMessage>> Dht::handle(const PeerId& from, const KadMessage& req, Time now,
                                              const RequestSource& source) {
  KadMessage resp;
  resp.type = req.type;
  resp.key = req.key;
  switch (req.type) {
    case MessageType::ping:
      resp.key.clear();
      return resp;

    case MessageType::find_node:
      if (req.key.empty()) return fail(Errc::invalid_input, "kad FIND_NODE: empty key");
      resp.closer_peers = closer_peers(req.key, from);
      return resp;

    case MessageType::get_providers: {
      auto key = provider_key(req.key);
      if (!key || req.key.size() > config_.max_provider_key_size)
        return fail(Errc::invalid_input, "kad GET_PROVIDERS: key is not a multihash or CID");
      resp.provider_peers = providers_.get(*key, now, rng_);
      resp.closer_peers = closer_peers(req.key, from);
      return resp;
    }

    case MessageType::add_provider: {
      auto key = provider_key(req.key);
      if (!key || req.key.size() > config_.max_provider_key_size)
        return fail(Errc::invalid_input, "kad ADD_PROVIDER: key is not a multihash or CID");
      // Only the sender may announce itself (spec); entries naming others are ignored.
      auto self_entry = std::find_if(req.provider_peers.begin(), req.provider_peers.end(),
                                     [&](const KadPeer& p) { return p.id == from; });
      if (self_entry == req.provider_peers.end())
        return fail(Errc::protocol_violation, "kad ADD_PROVIDER: no entry for the sender");
      if (auto ok = providers_.add(*key, from, self_entry->addrs, now, source); !ok)
        return tl::unexpected(ok.error());
      return std::optional<KadMessage>{};  // ADD_PROVIDER has no response (go, js)
    }

    case MessageType::get_value: {
      if (req.key.empty()) return fail(Errc::invalid_input, "kad GET_VALUE: empty key");
      resp.record = records_.get(req.key, now);
      resp.closer_peers = closer_peers(req.key, from);
      return resp;
    }

    case MessageType::put_value: {
      if (!req.record) return fail(Errc::invalid_input, "kad PUT_VALUE: no record");
      if (req.record->key != req.key)
        return fail(Errc::invalid_input, "kad PUT_VALUE: record key differs from message key");
      if (auto ok = records_.put(from, *req.record, now); !ok) return tl::unexpected(ok.error());
      return req;  // the spec's answer echoes the request
    }
  }
  return fail(Errc::invalid_input, "kad: unknown message type");
}

// ---- Peers and lookups -------------------------------------------------------------------

InsertOutcome Dht::on_peer_alive(const PeerId& peer, std::vector<Multiaddr> addrs, Time now,
                                 const RequestSource& source) {
  return table_.add(peer, std::move(addrs), now, source.ip_group);
}

std::vector<KadPeer> Dht::seeds(const KadKey& target) const {
  return to_peers(table_.nearest(target, config_.query.k));
}

Query Dht::find_node(BytesView key, Time now) {
  KadKey target = kad_key(key);
  table_.mark_lookup(target, now);  // any lookup refreshes its bucket
  return Query(QueryKind::find_node, Bytes(key.begin(), key.end()), self_, seeds(target),
               config_.query, now);
}

Query Dht::get_providers(BytesView key, Time now, size_t wanted) {
  QueryConfig qc = config_.query;
  qc.wanted_providers = wanted;
  KadKey target = kad_key(key);
  table_.mark_lookup(target, now);
  return Query(QueryKind::get_providers, Bytes(key.begin(), key.end()), self_, seeds(target), qc,
               now);
}

Query Dht::get_value(BytesView key, Time now, size_t quorum) {
  QueryConfig qc = config_.query;
  qc.quorum = quorum;
  KadKey target = kad_key(key);
  table_.mark_lookup(target, now);
  auto filter = [this](const KadRecord& r) {
    return records_.validate(r.key, r.value).has_value();
  };
  return Query(QueryKind::get_value, Bytes(key.begin(), key.end()), self_, seeds(target), qc, now,
               filter);
}

KadMessage Dht::add_provider_message(BytesView key, std::vector<Multiaddr> self_addrs) const {
  KadMessage m;
  m.type = MessageType::add_provider;
  m.key = Bytes(key.begin(), key.end());
  m.provider_peers.push_back(KadPeer{self_, std::move(self_addrs), ConnectionType::connected});
  return m;
}

KadMessage Dht::put_value_message(const KadRecord& record) const {
  KadMessage m;
  m.type = MessageType::put_value;
  m.key = record.key;
  m.record = record;
  return m;
}

Result<void> Dht::start_providing(BytesView key, Time now) {
  auto pk = provider_key(key);
  if (!pk || key.size() > config_.max_provider_key_size)
    return fail(Errc::invalid_input, "dht provide: key is not a multihash or CID");
  if (!providing_.contains(*pk) && providing_.size() >= config_.max_provided_keys)
    return fail(Errc::limit_exceeded, "dht provide: over max_provided_keys (" +
                                          std::to_string(config_.max_provided_keys) + ")");
  providing_[*pk] = now;  // announce at the next on_timer
  return {};
}

void Dht::stop_providing(BytesView key) {
  if (auto pk = provider_key(key)) providing_.erase(*pk);
}

// ---- Maintenance -------------------------------------------------------------------------

Maintenance Dht::on_timer(Time now) {
  last_timer_ = now;
  Maintenance m;
  if (!next_bootstrap_ || now >= *next_bootstrap_) {
    // Spec "Bootstrap process": a lookup of our own id keeps the peers closest to us known.
    m.dial_bootstrappers = table_.size() == 0;
    m.lookups.push_back(self_.bytes());
    table_.mark_lookup(table_.local_key(), now);
    next_bootstrap_ = now + config_.bootstrap_interval;
  }
  for (size_t cpl : table_.stale_buckets(now)) {
    Bytes key = random_key_with_cpl(table_.local_key(), cpl, rng_);
    table_.mark_lookup(kad_key(key), now);  // scheduled: not reported again until stale
    m.lookups.push_back(std::move(key));
  }
  for (auto& [key, due] : providing_) {
    if (now < due) continue;
    m.provides.push_back(key);
    due = now + config_.providers.republish_interval;
    // We answer GET_PROVIDERS for our own keys too.
    if (config_.mode != Mode::client) (void)providers_.add(key, self_, {}, now);
  }
  if (!next_cleanup_) {
    next_cleanup_ = now + config_.cleanup_interval;
  } else if (now >= *next_cleanup_) {
    providers_.expire(now);
    records_.expire(now);
    next_cleanup_ = now + config_.cleanup_interval;
  }
  return m;
}

std::optional<Time> Dht::next_deadline() const {
  if (!next_bootstrap_) return last_timer_;  // never ran: due now
  Time next = *next_bootstrap_;
  if (next_cleanup_) next = std::min(next, *next_cleanup_);
  if (auto r = table_.next_refresh(last_timer_)) next = std::min(next, *r);
  for (const auto& [key, due] : providing_) next = std::min(next, due);
  return next;
}

}  // namespace p2pmq::dht
