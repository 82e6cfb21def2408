#include "dht/store.hpp"

#include <algorithm>
#include <utility>

#include "crypto/keys.hpp"

namespace p2pmq::dht {

// ---- Providers -----------------------------------------------------------------------------

void ProviderStore::erase_at(std::vector<ProviderRecord>& records, size_t i) {
  auto it = per_peer_.find(records[i].provider);
  if (it != per_peer_.end() && --it->second == 0) per_peer_.erase(it);
  records.erase(records.begin() + static_cast<std::ptrdiff_t>(i));
  --total_;
}

Result<void> ProviderStore::add(const Bytes& key, const PeerId& provider,
                                std::vector<Multiaddr> addrs, Time now) {
  auto entry = by_key_.find(key);
  if (entry != by_key_.end()) {
    for (auto& r : entry->second) {
      if (r.provider != provider) continue;
      // A republish: fresh expiry and addresses, nothing new to count.
      r.published = now;
      r.expires = now + config_.provider_ttl;
      r.addrs = std::move(addrs);
      return {};
    }
  }
  if (count_for(provider) >= config_.max_records_per_peer)
    return fail(Errc::limit_exceeded, "provider store: peer over max_records_per_peer (" +
                                          std::to_string(config_.max_records_per_peer) + ")");
  if (entry == by_key_.end() && by_key_.size() >= config_.max_keys)
    return fail(Errc::limit_exceeded,
                "provider store: over max_keys (" + std::to_string(config_.max_keys) + ")");
  if (entry != by_key_.end() && entry->second.size() >= config_.max_providers_per_key) {
    // Replace the record closest to expiry: sybils filling a key cannot lock out providers
    // that keep republishing.
    auto& rs = entry->second;
    size_t oldest = 0;
    for (size_t i = 1; i < rs.size(); ++i)
      if (rs[i].expires < rs[oldest].expires) oldest = i;
    erase_at(rs, oldest);
  }
  if (total_ >= config_.max_total)
    return fail(Errc::limit_exceeded,
                "provider store: over max_total (" + std::to_string(config_.max_total) + ")");
  if (entry == by_key_.end()) entry = by_key_.emplace(key, std::vector<ProviderRecord>{}).first;
  entry->second.push_back(
      ProviderRecord{provider, std::move(addrs), now, now + config_.provider_ttl});
  ++per_peer_[provider];
  ++total_;
  return {};
}

std::vector<KadPeer> ProviderStore::get(const Bytes& key, Time now, size_t max) const {
  std::vector<KadPeer> out;
  auto entry = by_key_.find(key);
  if (entry == by_key_.end()) return out;
  std::vector<const ProviderRecord*> live;
  for (const auto& r : entry->second)
    if (r.expires > now) live.push_back(&r);
  std::stable_sort(live.begin(), live.end(),
                   [](const auto* a, const auto* b) { return a->published > b->published; });
  for (const auto* r : live) {
    if (out.size() >= max) break;
    KadPeer p{r->provider, {}, ConnectionType::not_connected};
    if (now < r->published + config_.addr_ttl) p.addrs = r->addrs;
    out.push_back(std::move(p));
  }
  return out;
}

size_t ProviderStore::expire(Time now) {
  size_t removed = 0;
  for (auto it = by_key_.begin(); it != by_key_.end();) {
    auto& rs = it->second;
    for (size_t i = rs.size(); i-- > 0;)
      if (rs[i].expires <= now) erase_at(rs, i), ++removed;
    it = rs.empty() ? by_key_.erase(it) : std::next(it);
  }
  return removed;
}

size_t ProviderStore::count_for(const PeerId& provider) const {
  auto it = per_peer_.find(provider);
  return it == per_peer_.end() ? 0 : it->second;
}

// ---- Value records -------------------------------------------------------------------------

std::optional<std::string> record_namespace(BytesView key) {
  std::string_view k = as_string(key);
  if (k.size() < 2 || k[0] != '/') return std::nullopt;
  size_t end = k.find('/', 1);
  if (end == std::string_view::npos || end == 1) return std::nullopt;
  return std::string(k.substr(1, end - 1));
}

RecordValidator public_key_validator() {
  RecordValidator v;
  v.validate = [](BytesView key, BytesView value) -> Result<void> {
    constexpr std::string_view prefix = "/pk/";
    if (key.size() <= prefix.size() || as_string(key).substr(0, prefix.size()) != prefix)
      return fail(Errc::invalid_input, "/pk record: key is not /pk/<peer id>");
    auto id = crypto::PeerId::from_bytes(key.subspan(prefix.size()));
    if (!id) return fail(Errc::invalid_input, "/pk record: " + id.error().message);
    auto pk = crypto::PublicKey::decode(value);
    if (!pk) return fail(Errc::invalid_input, "/pk record: " + pk.error().message);
    if (!id->matches(*pk)) return fail(Errc::peer_id_mismatch, "/pk record: key of another peer");
    return {};
  };
  v.select = [](BytesView, const std::vector<Bytes>&) -> size_t { return 0; };
  return v;
}

void RecordStore::register_namespace(std::string ns, RecordValidator validator) {
  validators_[std::move(ns)] = std::move(validator);
}

const RecordValidator* RecordStore::validator_for(BytesView key) const {
  auto ns = record_namespace(key);
  if (!ns) return nullptr;
  auto it = validators_.find(*ns);
  return it == validators_.end() ? nullptr : &it->second;
}

Result<void> RecordStore::validate(BytesView key, BytesView value) const {
  const RecordValidator* v = validator_for(key);
  if (!v || !v->validate) return fail(Errc::unsupported, "record store: unknown namespace");
  if (value.size() > config_.max_value_size)
    return fail(Errc::limit_exceeded, "record store: value over max_value_size (" +
                                          std::to_string(config_.max_value_size) + ")");
  return v->validate(key, value);
}

void RecordStore::uncount(const PeerId& peer) {
  auto it = per_peer_.find(peer);
  if (it != per_peer_.end() && --it->second == 0) per_peer_.erase(it);
}

Result<void> RecordStore::put(const PeerId& from, const KadRecord& record, Time now) {
  if (auto ok = validate(record.key, record.value); !ok) return ok;
  auto existing = records_.find(record.key);
  if (existing != records_.end() && now >= existing->second.stored + config_.record_ttl) {
    // Expired but not swept yet: it must not win select() against a live value.
    uncount(existing->second.from);
    records_.erase(existing);
    existing = records_.end();
  }
  if (existing != records_.end()) {
    const RecordValidator* v = validator_for(record.key);
    if (v->select) {
      size_t best = v->select(record.key, {existing->second.record.value, record.value});
      if (best == 0) return {};  // ours is at least as good: keep it
    }
  }
  bool replaces_own = existing != records_.end() && existing->second.from == from;
  if (!replaces_own && count_for(from) >= config_.max_records_per_peer)
    return fail(Errc::limit_exceeded, "record store: peer over max_records_per_peer (" +
                                          std::to_string(config_.max_records_per_peer) + ")");
  if (existing == records_.end() && records_.size() >= config_.max_records)
    return fail(Errc::limit_exceeded,
                "record store: over max_records (" + std::to_string(config_.max_records) + ")");
  if (existing != records_.end()) {
    uncount(existing->second.from);
    records_.erase(existing);
  }
  // timeReceived is the receiver's (spec): the IO adapter stamps an inbound PUT_VALUE with its
  // wall clock (format_time_received) before it gets here; the store keeps it as given.
  KadRecord stored{record.key, record.value, record.time_received};
  records_.emplace(record.key, StoredRecord{std::move(stored), from, now});
  ++per_peer_[from];
  return {};
}

std::optional<KadRecord> RecordStore::get(BytesView key, Time now) const {
  auto it = records_.find(Bytes(key.begin(), key.end()));
  if (it == records_.end() || now >= it->second.stored + config_.record_ttl) return std::nullopt;
  return it->second.record;
}

size_t RecordStore::expire(Time now) {
  size_t removed = 0;
  for (auto it = records_.begin(); it != records_.end();) {
    if (now >= it->second.stored + config_.record_ttl) {
      uncount(it->second.from);
      it = records_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

size_t RecordStore::count_for(const PeerId& peer) const {
  auto it = per_peer_.find(peer);
  return it == per_peer_.end() ? 0 : it->second;
}

}  // namespace p2pmq::dht
