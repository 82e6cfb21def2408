#include "dht/store.hpp"

#include <algorithm>
#include <utility>

#include "crypto/keys.hpp"

namespace p2pmq::dht {

// ---- Providers -----------------------------------------------------------------------------

namespace {

bool from(const ProviderRecord& r, const std::string& source) {
  return r.source_ip == source || r.source_subnet == source;
}

size_t count_from(const std::vector<ProviderRecord>& records, const std::string& source) {
  return static_cast<size_t>(std::count_if(records.begin(), records.end(),
                                           [&](const auto& r) { return from(r, source); }));
}

// Usable addresses the source may announce (go-libp2p identify's rule), at most `max`.
std::vector<Multiaddr> announceable(std::vector<Multiaddr> addrs, AddrScope source, size_t max) {
  std::vector<Multiaddr> kept;
  for (auto& a : addrs) {
    if (kept.size() >= max) break;
    if (may_announce(source, addr_scope(a))) kept.push_back(std::move(a));
  }
  return kept;
}

}  // namespace

// Called with the record still in `records` (removal) or already in it (addition).
void ProviderStore::count_source(const std::vector<ProviderRecord>& records,
                                 const std::string& source, bool add) {
  if (source.empty()) return;
  bool only_one = count_from(records, source) == 1;  // the key is new / gone for the source
  SourceUse& use = per_source_[source];
  if (add) {
    ++use.records;
    if (only_one) ++use.keys;
    return;
  }
  --use.records;
  if (only_one) --use.keys;
  if (use.records == 0) per_source_.erase(source);
}

void ProviderStore::erase_at(std::vector<ProviderRecord>& records, size_t i) {
  auto it = per_peer_.find(records[i].provider);
  if (it != per_peer_.end() && --it->second == 0) per_peer_.erase(it);
  count_source(records, records[i].source_ip, false);
  count_source(records, records[i].source_subnet, false);
  records.erase(records.begin() + static_cast<std::ptrdiff_t>(i));
  --total_;
}

Result<void> ProviderStore::check_source(const std::vector<ProviderRecord>* records,
                                         const RequestSource& source) const {
  if (!source.known()) return {};
  struct Limit {
    const std::string& key;
    const char* what;
    size_t per_key, records, keys;
    const char *per_key_name, *records_name, *keys_name;
  };
  const Limit limits[] = {
      {source.ip, "IP", config_.max_providers_per_key_per_ip, config_.max_records_per_ip,
       config_.max_keys_per_ip, "max_providers_per_key_per_ip", "max_records_per_ip",
       "max_keys_per_ip"},
      {source.subnet, "subnet", config_.max_providers_per_key_per_subnet,
       config_.max_records_per_subnet, config_.max_keys_per_subnet,
       "max_providers_per_key_per_subnet", "max_records_per_subnet", "max_keys_per_subnet"},
  };
  for (const auto& l : limits) {
    auto over = [&](const char* name, size_t limit) {
      return fail(Errc::limit_exceeded, std::string("provider store: source ") + l.what + " over " +
                                            name + " (" + std::to_string(limit) + ")");
    };
    size_t in_key = records ? count_from(*records, l.key) : 0;
    if (in_key >= l.per_key) return over(l.per_key_name, l.per_key);
    if (records_from(l.key) >= l.records) return over(l.records_name, l.records);
    if (in_key == 0 && keys_from(l.key) >= l.keys) return over(l.keys_name, l.keys);
  }
  return {};
}

Result<void> ProviderStore::add(const Bytes& key, const PeerId& provider,
                                std::vector<Multiaddr> addrs, Time now,
                                const RequestSource& source) {
  addrs = announceable(std::move(addrs), source.scope, config_.max_addrs_per_record);
  auto entry = by_key_.find(key);
  if (entry != by_key_.end()) {
    auto& rs = entry->second;
    for (size_t i = 0; i < rs.size(); ++i) {
      auto& r = rs[i];
      if (r.provider != provider) continue;
      if (r.source_ip == source.ip) {
        // A republish: fresh expiry and addresses, nothing new to count.
        r.published = now;
        r.expires = now + config_.provider_ttl;
        r.addrs = std::move(addrs);
        return {};
      }
      erase_at(rs, i);  // announced from elsewhere now: counted anew under the new source
      break;
    }
  }
  auto refuse = [&](Error e) -> Result<void> {
    if (entry != by_key_.end() && entry->second.empty()) by_key_.erase(entry);
    return tl::unexpected(std::move(e));
  };
  if (count_for(provider) >= config_.max_records_per_peer)
    return refuse({Errc::limit_exceeded, "provider store: peer over max_records_per_peer (" +
                                             std::to_string(config_.max_records_per_peer) + ")"});
  if (auto ok = check_source(entry == by_key_.end() ? nullptr : &entry->second, source); !ok)
    return refuse(ok.error());
  if (entry == by_key_.end() && by_key_.size() >= config_.max_keys)
    return refuse({Errc::limit_exceeded,
                   "provider store: over max_keys (" + std::to_string(config_.max_keys) + ")"});
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
    return refuse({Errc::limit_exceeded,
                   "provider store: over max_total (" + std::to_string(config_.max_total) + ")"});
  if (entry == by_key_.end()) entry = by_key_.emplace(key, std::vector<ProviderRecord>{}).first;
  auto& rs = entry->second;
  rs.push_back(ProviderRecord{provider, std::move(addrs), now, now + config_.provider_ttl,
                              source.ip, source.subnet});
  count_source(rs, source.ip, true);
  count_source(rs, source.subnet, true);
  ++per_peer_[provider];
  ++total_;
  return {};
}

std::vector<KadPeer> ProviderStore::get(const Bytes& key, Time now, size_t max,
                                        std::mt19937_64& rng) const {
  std::vector<KadPeer> out;
  auto entry = by_key_.find(key);
  if (entry == by_key_.end()) return out;
  std::vector<const ProviderRecord*> live;
  for (const auto& r : entry->second)
    if (r.expires > now) live.push_back(&r);
  // A partial Fisher-Yates shuffle: the first `n` are a uniform random sample.
  size_t n = std::min(max, live.size());
  for (size_t i = 0; i < n; ++i) {
    std::uniform_int_distribution<size_t> pick(i, live.size() - 1);
    std::swap(live[i], live[pick(rng)]);
  }
  for (size_t i = 0; i < n; ++i) {
    const ProviderRecord* r = live[i];
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

size_t ProviderStore::records_from(const std::string& source) const {
  auto it = per_source_.find(source);
  return it == per_source_.end() ? 0 : it->second.records;
}

size_t ProviderStore::keys_from(const std::string& source) const {
  auto it = per_source_.find(source);
  return it == per_source_.end() ? 0 : it->second.keys;
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
