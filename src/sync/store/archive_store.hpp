#pragma once
// The archive store (DESIGN.md §5): accepted messages of each topic, signed as received, in
// RocksDB. Keys serve the three sync queries directly:
//   't' topic                                  -> first arrival, next arrival (retention window)
//   'm' topic origin seqno                     -> received time, arrival, message bytes
//   'a' topic arrival                          -> received time, origin, seqno
// topic is prefixed with a 2-byte length and origin with a 1-byte length, so no key is a prefix
// of another's and origins sort as origin_less() says; integers are big-endian so byte order is
// numeric order. 'm' answers range and since with one forward scan; 'a' answers latest-N and
// lets retention delete from the oldest arrival with point lookups (no scan over tombstones).
// Not thread-safe: one thread (the archive's own; calls block on disk).
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sync/archive.hpp"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace p2pmq::sync {

// What an acknowledged put survives.
enum class Durability {
  // Default. Each put appends to the WAL with write(2) before it returns, without fsync: it
  // survives a crash or kill -9 of the process (the bytes are in the OS page cache) and a
  // restart, but a power loss or kernel crash can lose the last few seconds of puts. An
  // archive is one of several copies of a stream it can re-sync from peers, and one fsync
  // per message would cap it at the disk's fsync rate.
  process_crash,
  // WriteOptions.sync = true: every put fsyncs the WAL before it returns, so it also survives
  // power loss, at one fsync per put.
  power_loss,
};

struct ArchiveOptions {
  Durability durability = Durability::process_crash;
  Retention retention;  // for topics without set_retention()
  size_t max_prune_per_put =
      256;  // bounds a put's work after retention shrinks; prune() does the rest
};

class ArchiveStore : public Archive {
 public:
  static Result<std::unique_ptr<ArchiveStore>> open(const std::string& path,
                                                    ArchiveOptions options = {});
  ~ArchiveStore() override;
  ArchiveStore(const ArchiveStore&) = delete;
  ArchiveStore& operator=(const ArchiveStore&) = delete;

  // Flushes nothing extra (the WAL holds every put) and releases the database; later calls
  // fail with Errc::closed.
  Result<void> close();
  bool is_open() const { return db_ != nullptr; }

  void set_retention(const TopicId& topic, Retention retention);
  // Applies retention (age and count) to every topic; returns the messages removed. Call it
  // periodically: put() prunes only the topic it writes.
  Result<size_t> prune(WallTime now);
  uint64_t size(const TopicId& topic) const;
  // Messages held over every topic (kept across restarts: counted from the store at open).
  uint64_t total_size() const;

  // Retention for the topic runs in the same write batch.
  Result<bool> put(const TopicId& topic, BytesView origin, uint64_t seqno, BytesView message,
                   WallTime received) override;
  bool has_topic(const TopicId& topic) override;
  Result<QueryResult> latest(const TopicId& topic, uint64_t n, size_t max_bytes) override;
  Result<QueryResult> range(const TopicId& topic, BytesView origin, uint64_t from, uint64_t to,
                            size_t max_bytes) override;
  Result<QueryResult> since(const TopicId& topic, const std::vector<Watermark>& watermarks,
                            const std::optional<Position>& after, size_t max_bytes) override;

 private:
  struct Meta {
    uint64_t first = 1;  // oldest retained arrival
    uint64_t next = 1;   // next arrival number
    uint64_t count = 0;  // messages held (arrivals in [first, next) minus per-origin evictions)
  };
  using OriginKey = std::pair<TopicId, std::string>;
  ArchiveStore(std::unique_ptr<rocksdb::DB> db, ArchiveOptions options);
  const Retention& retention(const TopicId& topic) const;
  Result<void> load_meta();
  // Deletes oldest arrivals of `topic` below `end` into `batch` while retention demands it.
  // Origins of the deleted messages go to `removed` (counted down once the batch is written);
  // deleted_arrival is already deleted in `batch`.
  Result<size_t> prune_topic(const TopicId& topic, Meta& meta, uint64_t end, WallTime now,
                             size_t max_ops, rocksdb::WriteBatch& batch,
                             std::vector<std::string>& removed, uint64_t deleted_arrival = 0);
  // Deletes the lowest seqno of `origin` into `batch`; its arrival, or 0 when it holds nothing.
  Result<uint64_t> evict_lowest(const TopicId& topic, BytesView origin, rocksdb::WriteBatch& batch);
  void uncount(const TopicId& topic, const std::vector<std::string>& origins);

  std::unique_ptr<rocksdb::DB> db_;
  ArchiveOptions options_;
  std::map<TopicId, Meta> meta_;
  std::map<TopicId, Retention> retention_;
  std::map<OriginKey, uint64_t> per_origin_;  // messages held per (topic, origin); from a scan
};

}  // namespace p2pmq::sync
