#pragma once
// What a server-mode node keeps for others: provider records (ADD_PROVIDER / GET_PROVIDERS)
// and value records (PUT_VALUE / GET_VALUE). Sans-IO: calls carry `now`. Both are bounded in
// total and per storing peer, so a record flood costs the flooder, not us.
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/bytes.hpp"
#include "core/multiaddr.hpp"
#include "core/result.hpp"
#include "dht/codec.hpp"
#include "dht/source.hpp"
#include "dht/types.hpp"

namespace p2pmq::dht {

// ---- Providers -----------------------------------------------------------------------------

struct ProviderStoreConfig {
  Duration provider_ttl = 48h;        // spec: expiration interval (IPFS: 48 h)
  Duration republish_interval = 22h;  // spec: how often a provider re-announces (IPFS: 22 h)
  // Addresses are served this long after each (re)publish, then the id only: addresses go
  // stale sooner than the record (spec; kubo uses the 30 min table refresh interval).
  Duration addr_ttl = 30min;
  size_t max_keys = 10'000;
  size_t max_total = 100'000;           // provider records over all keys
  size_t max_providers_per_key = 200;   // beyond it the record closest to expiry is replaced
  size_t max_records_per_peer = 1'000;  // records one provider may hold here
  size_t max_returned = 20;             // providers per GET_PROVIDERS answer (k), drawn at random
  // Per source of ADD_PROVIDER (the IP it arrives from, and that IP's /24 or /64): Sybils on one
  // host or subnet can neither fill a key's provider set nor the store (hostile-peers 11).
  size_t max_providers_per_key_per_ip = 4;      // providers of one key announced from one IP
  size_t max_providers_per_key_per_subnet = 8;  // ... from one subnet
  size_t max_records_per_ip = 1'000;            // records over all keys from one IP
  size_t max_records_per_subnet = 2'000;        // ... from one subnet
  size_t max_keys_per_ip = 500;                 // keys holding a record from one IP
  size_t max_keys_per_subnet = 1'000;           // ... from one subnet
  size_t max_addrs_per_record = 8;              // further announced addresses are dropped
};

struct ProviderRecord {
  PeerId provider;
  std::vector<Multiaddr> addrs;
  Time published;  // last (re)publish
  Time expires;
  std::string source_ip;  // where the announcement came from; empty: not from the network
  std::string source_subnet;
};

class ProviderStore {
 public:
  explicit ProviderStore(ProviderStoreConfig config = {}) : config_(config) {}

  // Adds or refreshes (provider, key) announced from `source`. The addresses are filtered
  // (usable, and allowed from the source's scope: see may_announce) and cut to
  // max_addrs_per_record. limit_exceeded when the provider, the source's IP or subnet is over
  // its limit, or the store is at max_keys / max_total.
  Result<void> add(const Bytes& key, const PeerId& provider, std::vector<Multiaddr> addrs, Time now,
                   const RequestSource& source = {});
  // At most `max` unexpired providers of `key`, a uniformly random subset in random order: the
  // newest announcers (Sybils republishing) get no better place in answers than anyone else.
  std::vector<KadPeer> get(const Bytes& key, Time now, size_t max, std::mt19937_64& rng) const;
  std::vector<KadPeer> get(const Bytes& key, Time now, std::mt19937_64& rng) const {
    return get(key, now, config_.max_returned, rng);
  }
  size_t expire(Time now);  // drops expired records; returns how many

  size_t size() const { return total_; }
  size_t keys() const { return by_key_.size(); }
  size_t count_for(const PeerId& provider) const;
  // Records and keys held by announcements from an IP or a subnet (RequestSource's keys).
  size_t records_from(const std::string& source) const;
  size_t keys_from(const std::string& source) const;
  const ProviderStoreConfig& config() const { return config_; }

 private:
  struct SourceUse {
    size_t records = 0;
    size_t keys = 0;
  };
  void erase_at(std::vector<ProviderRecord>& records, size_t i);
  Result<void> check_source(const std::vector<ProviderRecord>* records,
                            const RequestSource& source) const;
  void count_source(const std::vector<ProviderRecord>& records, const std::string& source,
                    bool add);

  ProviderStoreConfig config_;
  std::map<Bytes, std::vector<ProviderRecord>> by_key_;
  std::unordered_map<PeerId, size_t, PeerIdHash> per_peer_;
  std::unordered_map<std::string, SourceUse> per_source_;  // by IP and by subnet
  size_t total_ = 0;
};

// ---- Value records -------------------------------------------------------------------------

// Record keys are "/<namespace>/<rest>"; only registered namespaces are stored (no open
// storage: p2pmq's design keeps data out of the DHT, which only points to agents).
struct RecordValidator {
  // ok, or why the record is invalid. Pure.
  std::function<Result<void>(BytesView key, BytesView value)> validate;
  // Index of the best of several valid values for one key; stable. Unset: the newest wins.
  std::function<size_t(BytesView key, const std::vector<Bytes>& values)> select;
};

// "/pk/<peer id multihash>" holding that peer's PublicKey protobuf: valid when the key hashes
// to the peer id (spec, "Value storage and retrieval"). All valid values are equal.
RecordValidator public_key_validator();

struct RecordStoreConfig {
  size_t max_records = 10'000;
  size_t max_records_per_peer = 100;  // records one peer has put here
  size_t max_value_size = 16 << 10;
  Duration record_ttl = 36h;  // go-libp2p-kad-dht's MaxRecordAge
};

struct StoredRecord {
  KadRecord record;
  PeerId from;  // who put it (counted against their limit)
  Time stored;
};

class RecordStore {
 public:
  explicit RecordStore(RecordStoreConfig config = {}) : config_(config) {}

  // `ns` without slashes, e.g. "pk".
  void register_namespace(std::string ns, RecordValidator validator);
  // Registered namespace and its validator accepts. unsupported for an unknown namespace.
  Result<void> validate(BytesView key, BytesView value) const;
  // Validates, keeps the better of the stored and the new value (the validator's select), and
  // counts the record against `from`.
  Result<void> put(const PeerId& from, const KadRecord& record, Time now);
  std::optional<KadRecord> get(BytesView key, Time now) const;
  size_t expire(Time now);

  size_t size() const { return records_.size(); }
  size_t count_for(const PeerId& peer) const;

 private:
  const RecordValidator* validator_for(BytesView key) const;
  void uncount(const PeerId& peer);

  RecordStoreConfig config_;
  std::map<std::string, RecordValidator> validators_;
  std::map<Bytes, StoredRecord> records_;
  std::unordered_map<PeerId, size_t, PeerIdHash> per_peer_;
};

// The namespace of a record key ("/pk/..." -> "pk"); nullopt when the key has none.
std::optional<std::string> record_namespace(BytesView key);

}  // namespace p2pmq::dht
