#include "agent/state.hpp"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <string_view>
#include <system_error>
#include <utility>

namespace p2pmq::agent {
namespace {

constexpr std::string_view kCounterPrefix = "s/";
constexpr std::string_view kWatermarkPrefix = "w/";
constexpr std::string_view kSubscriptionPrefix = "t/";
constexpr std::string_view kTopicNumberPrefix = "n/";

void put_be(std::string& out, uint64_t v, int bytes) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8)
    out.push_back(static_cast<char>(v >> shift));
}
uint64_t get_be(std::string_view in, size_t at, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(in[at + i]);
  return v;
}

std::string be64(uint64_t v) {
  std::string out;
  put_be(out, v, 8);
  return out;
}

std::string key_of(std::string_view prefix, std::string_view topic) {
  std::string k;
  k.reserve(prefix.size() + topic.size());
  k += prefix;
  k += topic;
  return k;
}

std::string watermark_key(const std::string& topic, BytesView origin) {
  std::string k;
  k.reserve(kWatermarkPrefix.size() + 4 + topic.size() + origin.size());
  k += kWatermarkPrefix;
  put_be(k, topic.size(), 4);
  k += topic;
  k += as_string(origin);
  return k;
}

std::string_view view(const rocksdb::Slice& s) {
  return {s.data(), s.size()};
}

tl::unexpected<Error> db_error(const rocksdb::Status& s) {
  return fail(Errc::io, "state store: " + s.ToString());
}

// Calls fn(key without the prefix, value) for every key under the prefix; stops at fn's error.
template <class Fn>
Result<void> scan(rocksdb::DB& db, std::string_view prefix, Fn&& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size()));
       it->Valid() && view(it->key()).starts_with(prefix); it->Next()) {
    if (auto r = fn(view(it->key()).substr(prefix.size()), view(it->value())); !r) return r;
  }
  if (!it->status().ok()) return db_error(it->status());
  return {};
}

}  // namespace

StateStore::StateStore(std::unique_ptr<rocksdb::DB> db, bool sync_writes)
    : db_(std::move(db)), sync_writes_(sync_writes) {}

StateStore::~StateStore() {
  if (db_) (void)db_->Close();
}

Result<std::unique_ptr<StateStore>> StateStore::open(const std::string& dir, bool sync_writes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(Errc::io, "state store: cannot create " + dir + ": " + ec.message());
  rocksdb::Options opts;
  opts.OptimizeForSmallDb();  // a few records per topic: small memtables and caches
  opts.create_if_missing = true;
  opts.manual_wal_flush = false;  // every write reaches the WAL (write(2)) before it returns
  opts.keep_log_file_num = 2;     // RocksDB's info LOG files
  rocksdb::DB* raw = nullptr;
  auto status = rocksdb::DB::Open(opts, dir, &raw);
  if (status.IsCorruption())
    return fail(Errc::io, "state store " + dir + " is corrupt (" + status.ToString() +
                              "); `p2pmq agent --repair-state` salvages what is readable "
                              "(docs/security.md)");
  if (!status.ok()) return db_error(status);
  std::unique_ptr<StateStore> store(new StateStore(std::unique_ptr<rocksdb::DB>(raw), sync_writes));
  if (auto r = store->load(); !r) return tl::unexpected(r.error());
  return store;
}

Result<void> StateStore::repair(const std::string& dir) {
  rocksdb::Options opts;
  opts.OptimizeForSmallDb();
  auto status = rocksdb::RepairDB(dir, opts);
  if (!status.ok()) return fail(Errc::io, "state store " + dir + ": repair: " + status.ToString());
  return {};
}

Result<void> StateStore::load() {
  auto counters = scan(
      *db_, kCounterPrefix, [this](std::string_view topic, std::string_view value) -> Result<void> {
        if (value.size() != 8)
          return fail(Errc::io, "state store: corrupt seqno counter of topic '" +
                                    std::string(topic) +
                                    "': move the state directory aside (the topic's seqnos "
                                    "would restart at 1: use a new identity too)");
        if (uint64_t last = get_be(value, 0, 8); last > 0) counters_[std::string(topic)] = last;
        return {};
      });
  if (!counters) return counters;
  auto numbers =
      scan(*db_, kTopicNumberPrefix,
           [this](std::string_view topic, std::string_view value) -> Result<void> {
             if (value.size() != 4)
               return fail(Errc::io,
                           "state store: corrupt number of topic '" + std::string(topic) + "'");
             topic_numbers_[std::string(topic)] = static_cast<uint32_t>(get_be(value, 0, 4));
             return {};
           });
  if (!numbers) return numbers;
  return scan(*db_, kSubscriptionPrefix, [this](std::string_view topic, std::string_view) {
    subscriptions_.insert(std::string(topic));
    return Result<void>{};
  });
}

Result<uint32_t> StateStore::topic_number(const std::string& topic) {
  if (auto it = topic_numbers_.find(topic); it != topic_numbers_.end()) return it->second;
  uint32_t next = 0;
  for (const auto& [t, n] : topic_numbers_) next = std::max(next, n + 1);
  std::string value(4, '\0');
  for (int i = 0; i < 4; ++i) value[size_t(i)] = static_cast<char>(next >> (24 - 8 * i));
  rocksdb::WriteOptions wo;
  wo.sync = sync_writes_;
  if (auto status = db_->Put(wo, key_of(kTopicNumberPrefix, topic), value); !status.ok())
    return db_error(status);
  topic_numbers_[topic] = next;
  return next;
}

Result<void> StateStore::write_counter(const std::string& topic, uint64_t value, bool sync) {
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  auto key = key_of(kCounterPrefix, topic);
  auto status = value == 0 ? db_->Delete(wo, key) : db_->Put(wo, key, be64(value));
  if (!status.ok()) return db_error(status);
  if (value == 0)
    counters_.erase(topic);
  else
    counters_[topic] = value;
  return {};
}

Result<uint64_t> StateStore::next_seqno(const std::string& topic, bool defer_sync) {
  uint64_t last = last_seqno(topic);
  if (last == std::numeric_limits<uint64_t>::max())
    return fail(Errc::limit_exceeded, "state store: seqnos of topic '" + topic + "' exhausted");
  // Persisted before the caller sees it: after a crash the counter is at least this value.
  if (auto r = write_counter(topic, last + 1, sync_writes_ && !defer_sync); !r)
    return tl::unexpected(r.error());
  return last + 1;
}

Result<void> StateStore::sync_wal() {
  auto status = db_->SyncWAL();
  if (!status.ok()) return db_error(status);
  return {};
}

Result<void> StateStore::rollback_seqno(const std::string& topic, uint64_t seqno) {
  uint64_t last = last_seqno(topic);
  if (seqno == 0 || seqno > last)
    return fail(Errc::invalid_input, "state store: seqno " + std::to_string(seqno) + " of topic '" +
                                         topic + "' was never handed out (last " +
                                         std::to_string(last) + ")");
  if (seqno < last) return {};  // a later seqno is out: this one stays used
  return write_counter(topic, last - 1, sync_writes_);
}

uint64_t StateStore::last_seqno(const std::string& topic) const {
  auto it = counters_.find(topic);
  return it == counters_.end() ? 0 : it->second;
}

Result<void> StateStore::save_watermarks(const std::vector<WatermarkRecord>& changed) {
  if (changed.empty()) return {};
  rocksdb::WriteBatch batch;
  for (const auto& w : changed) {
    if (w.topic.size() > std::numeric_limits<uint32_t>::max())
      return fail(Errc::limit_exceeded, "state store: topic name too long");
    auto status = batch.Put(watermark_key(w.topic, w.origin), be64(w.seqno));
    if (!status.ok()) return db_error(status);
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync_writes_;
  auto status = db_->Write(wo, &batch);
  if (!status.ok()) return db_error(status);
  return {};
}

std::vector<WatermarkRecord> StateStore::load_watermarks() const {
  std::vector<WatermarkRecord> out;
  (void)scan(
      *db_, kWatermarkPrefix, [&out](std::string_view key, std::string_view value) -> Result<void> {
        if (key.size() < 4 || value.size() != 8) return {};  // unreadable: skipped
        uint64_t len = get_be(key, 0, 4);
        if (key.size() - 4 < len) return {};
        auto origin = as_bytes(key.substr(4 + len));
        out.push_back(WatermarkRecord{std::string(key.substr(4, len)),
                                      Bytes(origin.begin(), origin.end()), get_be(value, 0, 8)});
        return {};
      });
  return out;
}

Result<void> StateStore::add_subscription(const std::string& topic) {
  if (subscriptions_.contains(topic)) return {};
  rocksdb::WriteOptions wo;
  wo.sync = sync_writes_;
  auto status = db_->Put(wo, key_of(kSubscriptionPrefix, topic), rocksdb::Slice());
  if (!status.ok()) return db_error(status);
  subscriptions_.insert(topic);
  return {};
}

Result<void> StateStore::remove_subscription(const std::string& topic) {
  if (!subscriptions_.contains(topic)) return {};
  rocksdb::WriteOptions wo;
  wo.sync = sync_writes_;
  auto status = db_->Delete(wo, key_of(kSubscriptionPrefix, topic));
  if (!status.ok()) return db_error(status);
  subscriptions_.erase(topic);
  return {};
}

std::vector<std::string> StateStore::subscriptions() const {
  return {subscriptions_.begin(), subscriptions_.end()};
}

}  // namespace p2pmq::agent
