#include "sync/store/archive_store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <unordered_map>
#include <utility>

namespace p2pmq::sync {
namespace {

constexpr char kMetaTag = 't';
constexpr char kMessageTag = 'm';
constexpr char kArrivalTag = 'a';
constexpr size_t kMaxTopicBytes = 0xffff;  // 2-byte length prefix
constexpr size_t kMaxOriginBytes = 0xff;   // 1-byte length prefix

void put_be64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}
uint64_t get_be64(std::string_view in, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[at + i]);
  return v;
}

std::string topic_prefix(char tag, const TopicId& topic) {
  std::string k;
  k.reserve(3 + topic.size() + 48);
  k.push_back(tag);
  k.push_back(static_cast<char>(topic.size() >> 8));
  k.push_back(static_cast<char>(topic.size() & 0xff));
  k += topic;
  return k;
}
std::string origin_prefix(const TopicId& topic, BytesView origin) {
  std::string k = topic_prefix(kMessageTag, topic);
  k.push_back(static_cast<char>(origin.size()));
  k += as_string(origin);
  return k;
}
std::string message_key(const TopicId& topic, BytesView origin, uint64_t seqno) {
  std::string k = origin_prefix(topic, origin);
  put_be64(k, seqno);
  return k;
}
std::string arrival_key(const TopicId& topic, uint64_t arrival) {
  std::string k = topic_prefix(kArrivalTag, topic);
  put_be64(k, arrival);
  return k;
}

uint64_t to_millis(WallTime t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  return ms < 0 ? 0 : static_cast<uint64_t>(ms);
}
WallTime from_millis(uint64_t ms) {
  return WallTime(std::chrono::duration_cast<WallClock::duration>(
      std::chrono::milliseconds(static_cast<int64_t>(ms))));
}

tl::unexpected<Error> db_error(const rocksdb::Status& s) {
  return fail(Errc::io, "archive store: " + s.ToString());
}
tl::unexpected<Error> corrupt(const char* what) {
  return fail(Errc::io, std::string("archive store: corrupt ") + what);
}
tl::unexpected<Error> closed() {
  return fail(Errc::closed, "archive store: closed");
}

// 'm' key tail after the topic prefix: origin length, origin, seqno.
struct MessageKey {
  std::string_view origin;
  uint64_t seqno;
};
std::optional<MessageKey> parse_message_key(std::string_view key, size_t prefix_len) {
  if (key.size() < prefix_len + 1) return std::nullopt;
  size_t olen = static_cast<uint8_t>(key[prefix_len]);
  if (key.size() != prefix_len + 1 + olen + 8) return std::nullopt;
  return MessageKey{key.substr(prefix_len + 1, olen), get_be64(key, prefix_len + 1 + olen)};
}

// 'm' value: received ms, arrival, message.
std::optional<StoredMessage> parse_message_value(std::string_view value, BytesView origin,
                                                 uint64_t seqno) {
  if (value.size() < 16) return std::nullopt;
  StoredMessage m;
  m.origin.assign(origin.begin(), origin.end());
  m.seqno = seqno;
  m.received = from_millis(get_be64(value, 0));
  auto body = as_bytes(value.substr(16));
  m.message.assign(body.begin(), body.end());
  return m;
}

// 'a' value: received ms, origin length, origin, seqno.
struct ArrivalValue {
  uint64_t received_ms;
  std::string origin;
  uint64_t seqno;
};
std::optional<ArrivalValue> parse_arrival_value(std::string_view v) {
  if (v.size() < 9) return std::nullopt;
  size_t olen = static_cast<uint8_t>(v[8]);
  if (v.size() != 9 + olen + 8) return std::nullopt;
  return ArrivalValue{get_be64(v, 0), std::string(v.substr(9, olen)), get_be64(v, 9 + olen)};
}

bool starts_with(const rocksdb::Slice& key, std::string_view prefix) {
  return key.size() >= prefix.size() && std::string_view(key.data(), prefix.size()) == prefix;
}

// Adds m unless the answer already holds something and m would pass max_bytes.
bool take(QueryResult& out, size_t& bytes, StoredMessage m, size_t max_bytes) {
  if (!out.messages.empty() && bytes + m.message.size() > max_bytes) {
    out.complete = false;
    return false;
  }
  bytes += m.message.size();
  out.messages.push_back(std::move(m));
  return true;
}

}  // namespace

ArchiveStore::ArchiveStore(std::unique_ptr<rocksdb::DB> db, ArchiveOptions options)
    : db_(std::move(db)), options_(options) {}

ArchiveStore::~ArchiveStore() {
  (void)close();
}

Result<std::unique_ptr<ArchiveStore>> ArchiveStore::open(const std::string& path,
                                                         ArchiveOptions options) {
  rocksdb::Options opts;
  opts.create_if_missing = true;
  // Every put goes to the WAL (never disableWAL); durability only picks whether it is fsynced.
  opts.manual_wal_flush = false;
  rocksdb::DB* raw = nullptr;
  auto status = rocksdb::DB::Open(opts, path, &raw);
  if (!status.ok()) return db_error(status);
  std::unique_ptr<ArchiveStore> store(new ArchiveStore(std::unique_ptr<rocksdb::DB>(raw), options));
  if (auto ok = store->load_meta(); !ok) return tl::unexpected(ok.error());
  return store;
}

Result<void> ArchiveStore::close() {
  if (!db_) return {};
  auto status = db_->Close();
  db_.reset();
  meta_.clear();
  per_origin_.clear();
  if (!status.ok()) return db_error(status);
  return {};
}

Result<void> ArchiveStore::load_meta() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix(1, kMetaTag);
  for (it->Seek(prefix); it->Valid() && starts_with(it->key(), prefix); it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    std::string_view value(it->value().data(), it->value().size());
    if (key.size() < 3 || value.size() != 16) return corrupt("topic record");
    size_t len = (size_t{static_cast<uint8_t>(key[1])} << 8) | static_cast<uint8_t>(key[2]);
    if (key.size() != 3 + len) return corrupt("topic key");
    meta_[TopicId(key.substr(3))] = Meta{get_be64(value, 0), get_be64(value, 8), 0};
  }
  if (!it->status().ok()) return db_error(it->status());
  // Counts per topic and origin are not persisted: one scan of the message keys rebuilds them.
  const std::string mprefix(1, kMessageTag);
  for (it->Seek(mprefix); it->Valid() && starts_with(it->key(), mprefix); it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    if (key.size() < 3) return corrupt("message key");
    size_t len = (size_t{static_cast<uint8_t>(key[1])} << 8) | static_cast<uint8_t>(key[2]);
    auto parsed = parse_message_key(key, 3 + len);
    if (!parsed) return corrupt("message key");
    TopicId topic(key.substr(3, len));
    ++per_origin_[{topic, std::string(parsed->origin)}];
    ++meta_[topic].count;
  }
  if (!it->status().ok()) return db_error(it->status());
  return {};
}

void ArchiveStore::uncount(const TopicId& topic, const std::vector<std::string>& origins) {
  for (const auto& origin : origins) {
    auto it = per_origin_.find({topic, origin});
    if (it != per_origin_.end() && --it->second == 0) per_origin_.erase(it);
  }
}

Result<uint64_t> ArchiveStore::evict_lowest(const TopicId& topic, BytesView origin,
                                            rocksdb::WriteBatch& batch) {
  const std::string prefix = origin_prefix(topic, origin);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->Seek(prefix);
  if (!it->status().ok()) return db_error(it->status());
  if (!it->Valid() || !starts_with(it->key(), prefix)) return 0;
  if (it->value().size() < 16) return corrupt("message record");
  uint64_t arrival = get_be64(std::string_view(it->value().data(), it->value().size()), 8);
  batch.Delete(it->key());
  batch.Delete(arrival_key(topic, arrival));
  return arrival;
}

void ArchiveStore::set_retention(const TopicId& topic, Retention retention) {
  retention_[topic] = retention;
}

const Retention& ArchiveStore::retention(const TopicId& topic) const {
  auto it = retention_.find(topic);
  return it == retention_.end() ? options_.retention : it->second;
}

uint64_t ArchiveStore::size(const TopicId& topic) const {
  auto it = meta_.find(topic);
  return it == meta_.end() ? 0 : it->second.count;
}

uint64_t ArchiveStore::total_size() const {
  uint64_t n = 0;
  for (const auto& [topic, meta] : meta_) n += meta.count;
  return n;
}

bool ArchiveStore::has_topic(const TopicId& topic) {
  return meta_.contains(topic);
}

Result<size_t> ArchiveStore::prune_topic(const TopicId& topic, Meta& meta, uint64_t end,
                                         WallTime now, size_t max_ops, rocksdb::WriteBatch& batch,
                                         std::vector<std::string>& removed_origins,
                                         uint64_t deleted_arrival) {
  const Retention& r = retention(topic);
  const uint64_t max_messages = std::max<uint64_t>(r.max_messages, 1);
  const uint64_t cutoff_ms = r.max_age.count() > 0 ? to_millis(now - r.max_age) : 0;
  size_t removed = 0;
  while (removed < max_ops && meta.first < end) {
    std::string akey = arrival_key(topic, meta.first);
    std::string value;
    auto status = db_->Get(rocksdb::ReadOptions(), akey, &value);
    if (status.IsNotFound() || meta.first == deleted_arrival) {
      // Nothing there (an interrupted prune, an origin over its quota): step over it.
      ++meta.first;
      continue;
    }
    if (!status.ok()) return db_error(status);
    auto a = parse_arrival_value(value);
    if (!a) return corrupt("arrival record");
    bool too_many = meta.count > max_messages;
    bool too_old = a->received_ms < cutoff_ms;
    if (!too_many && !too_old) break;
    batch.Delete(akey);
    batch.Delete(message_key(topic, as_bytes(a->origin), a->seqno));
    ++meta.first;
    --meta.count;
    ++removed;
    removed_origins.push_back(std::move(a->origin));
  }
  return removed;
}

static std::string meta_value(uint64_t first, uint64_t next) {
  std::string v;
  put_be64(v, first);
  put_be64(v, next);
  return v;
}

Result<bool> ArchiveStore::put(const TopicId& topic, BytesView origin, uint64_t seqno,
                               BytesView message, WallTime received) {
  if (!db_) return closed();
  if (topic.size() > kMaxTopicBytes)
    return fail(Errc::limit_exceeded, "archive store: topic over 65535 bytes");
  if (origin.size() > kMaxOriginBytes)
    return fail(Errc::limit_exceeded, "archive store: origin over 255 bytes");
  std::string mkey = message_key(topic, origin, seqno);
  std::string existing;
  auto status = db_->Get(rocksdb::ReadOptions(), mkey, &existing);
  if (status.ok()) return false;
  if (!status.IsNotFound()) return db_error(status);

  auto found = meta_.find(topic);
  Meta meta = found == meta_.end() ? Meta{} : found->second;
  const uint64_t arrival = meta.next++;
  ++meta.count;
  const uint64_t received_ms = to_millis(received);

  rocksdb::WriteBatch batch;
  std::string mvalue;
  put_be64(mvalue, received_ms);
  put_be64(mvalue, arrival);
  mvalue += as_string(message);
  batch.Put(mkey, mvalue);
  std::string avalue;
  put_be64(avalue, received_ms);
  avalue.push_back(static_cast<char>(origin.size()));
  avalue += as_string(origin);
  put_be64(avalue, seqno);
  batch.Put(arrival_key(topic, arrival), avalue);
  // Per-origin quota first: an origin at its quota replaces its own lowest seqno.
  const OriginKey okey{topic, as_string(origin)};
  std::vector<std::string> removed;
  uint64_t deleted_arrival = 0;
  auto held = per_origin_.find(okey);
  if (held != per_origin_.end() &&
      held->second >= std::max<uint64_t>(retention(topic).max_messages_per_origin, 1)) {
    auto evicted = evict_lowest(topic, origin, batch);
    if (!evicted) return tl::unexpected(evicted.error());
    if (*evicted != 0) {
      --meta.count;
      removed.push_back(okey.second);
      deleted_arrival = *evicted;
    }
  }
  // The new arrival is only in `batch`, so pruning stops before it.
  auto pruned = prune_topic(topic, meta, arrival, received, options_.max_prune_per_put, batch,
                            removed, deleted_arrival);
  if (!pruned) return tl::unexpected(pruned.error());
  batch.Put(topic_prefix(kMetaTag, topic), meta_value(meta.first, meta.next));

  rocksdb::WriteOptions wo;
  wo.sync = options_.durability == Durability::power_loss;
  status = db_->Write(wo, &batch);
  if (!status.ok()) return db_error(status);
  meta_[topic] = meta;
  ++per_origin_[okey];
  uncount(topic, removed);
  return true;
}

Result<size_t> ArchiveStore::prune(WallTime now) {
  if (!db_) return closed();
  size_t total = 0;
  rocksdb::WriteOptions wo;
  wo.sync = options_.durability == Durability::power_loss;
  for (auto& [topic, meta] : meta_) {
    Meta next = meta;
    rocksdb::WriteBatch batch;
    // In slices, so one huge backlog does not become one huge batch.
    for (;;) {
      std::vector<std::string> origins;
      auto removed = prune_topic(topic, next, next.next, now, 1024, batch, origins);
      if (!removed) return tl::unexpected(removed.error());
      if (*removed == 0) break;
      batch.Put(topic_prefix(kMetaTag, topic), meta_value(next.first, next.next));
      auto status = db_->Write(wo, &batch);
      if (!status.ok()) return db_error(status);
      meta = next;
      uncount(topic, origins);
      total += *removed;
      batch.Clear();
    }
  }
  return total;
}

Result<QueryResult> ArchiveStore::latest(const TopicId& topic, uint64_t n, size_t max_bytes) {
  if (!db_) return closed();
  QueryResult out;
  auto found = meta_.find(topic);
  if (found == meta_.end()) return out;
  const Meta& meta = found->second;
  size_t bytes = 0;
  for (uint64_t a = meta.next; a > meta.first && out.messages.size() < n; --a) {
    std::string value;
    auto status = db_->Get(rocksdb::ReadOptions(), arrival_key(topic, a - 1), &value);
    if (status.IsNotFound()) continue;
    if (!status.ok()) return db_error(status);
    auto av = parse_arrival_value(value);
    if (!av) return corrupt("arrival record");
    std::string mvalue;
    status = db_->Get(rocksdb::ReadOptions(), message_key(topic, as_bytes(av->origin), av->seqno),
                      &mvalue);
    if (status.IsNotFound()) continue;
    if (!status.ok()) return db_error(status);
    auto m = parse_message_value(mvalue, as_bytes(av->origin), av->seqno);
    if (!m) return corrupt("message record");
    if (!take(out, bytes, std::move(*m), max_bytes)) break;
  }
  std::reverse(out.messages.begin(), out.messages.end());
  return out;
}

Result<QueryResult> ArchiveStore::range(const TopicId& topic, BytesView origin, uint64_t from,
                                        uint64_t to, size_t max_bytes) {
  if (!db_) return closed();
  QueryResult out;
  if (from > to || origin.size() > kMaxOriginBytes || topic.size() > kMaxTopicBytes) return out;
  const std::string prefix = origin_prefix(topic, origin);
  const size_t topic_len = 3 + topic.size();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  size_t bytes = 0;
  for (it->Seek(message_key(topic, origin, from)); it->Valid() && starts_with(it->key(), prefix);
       it->Next()) {
    auto key = parse_message_key(std::string_view(it->key().data(), it->key().size()), topic_len);
    if (!key) return corrupt("message key");
    if (key->seqno > to) break;
    auto m = parse_message_value(std::string_view(it->value().data(), it->value().size()), origin,
                                 key->seqno);
    if (!m) return corrupt("message record");
    if (!take(out, bytes, std::move(*m), max_bytes)) break;
  }
  if (!it->status().ok()) return db_error(it->status());
  return out;
}

Result<QueryResult> ArchiveStore::since(const TopicId& topic,
                                        const std::vector<Watermark>& watermarks,
                                        const std::optional<Position>& after, size_t max_bytes) {
  if (!db_) return closed();
  QueryResult out;
  if (topic.size() > kMaxTopicBytes) return out;
  std::unordered_map<std::string, uint64_t> marks;
  for (const auto& w : watermarks) {
    auto& mark = marks[std::string(as_string(w.origin))];
    mark = std::max(mark, w.seqno);
  }
  const std::string prefix = topic_prefix(kMessageTag, topic);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  if (after && after->origin.size() <= kMaxOriginBytes) {
    std::string start = message_key(topic, after->origin, after->seqno);
    it->Seek(start);
    if (it->Valid() && it->key() == rocksdb::Slice(start)) it->Next();
  } else {
    it->Seek(prefix);
  }
  size_t bytes = 0;
  while (it->Valid() && starts_with(it->key(), prefix)) {
    auto key =
        parse_message_key(std::string_view(it->key().data(), it->key().size()), prefix.size());
    if (!key) return corrupt("message key");
    auto mark = marks.find(std::string(key->origin));
    if (mark != marks.end() && key->seqno <= mark->second) {
      // Jump over what the client has rather than stepping through it.
      if (mark->second == std::numeric_limits<uint64_t>::max()) {
        it->Next();
      } else {
        it->Seek(message_key(topic, as_bytes(key->origin), mark->second + 1));
      }
      continue;
    }
    auto m = parse_message_value(std::string_view(it->value().data(), it->value().size()),
                                 as_bytes(key->origin), key->seqno);
    if (!m) return corrupt("message record");
    if (!take(out, bytes, std::move(*m), max_bytes)) break;
    it->Next();
  }
  if (!it->status().ok()) return db_error(it->status());
  return out;
}

}  // namespace p2pmq::sync
