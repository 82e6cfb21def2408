#pragma once
// The agent's persisted state (DESIGN.md §5), a small RocksDB database at <data_dir>/state:
//   - per-topic publish counters, so that a restarted publisher continues its seqnos (contiguous
//     from 1 per topic) and never reuses one, even after kill -9;
//   - per (topic, origin) watermarks: the last seqno handed to a Listen stream;
//   - the subscriptions, so that a restarted agent rejoins its topics and catches up at once.
// Keys, one prefix per kind (no key of one kind is a prefix of another's):
//   "s/" topic                                 -> last seqno published   (8 bytes, big-endian)
//   "w/" len(topic) topic origin               -> last delivered seqno   (8 bytes, big-endian)
//   "t/" topic                                 -> ""                     (a subscription)
//   "n/" topic                                 -> topic number           (4 bytes, big-endian)
// len(topic) is 4 bytes big-endian, so the origin is what follows the topic.
//
// Every write goes to the WAL before the call returns; without sync_writes it is not fsynced:
// it survives a crash or kill -9 of the process (the bytes are in the OS page cache), not a
// power loss or kernel crash. sync_writes (sync.durability: power_loss) fsyncs each write.
// Counters and subscriptions are cached in memory, so the reads cost nothing.
//
// Synchronous (calls block on disk) and not thread-safe: call it from one thread.
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace rocksdb {
class DB;
}  // namespace rocksdb

namespace p2pmq::agent {

struct WatermarkRecord {
  std::string topic;
  Bytes origin;
  uint64_t seqno = 0;
  bool operator==(const WatermarkRecord&) const = default;
};

class StateStore {
 public:
  // Opens the database at `dir`, creating it (and missing parent directories) if needed. Fails
  // if another process (or another StateStore) has it open, or if a record is corrupt (the
  // message then names `p2pmq agent --repair-state`).
  static Result<std::unique_ptr<StateStore>> open(const std::string& dir, bool sync_writes);
  // RocksDB's repair of a corrupt database at `dir`: keeps every record it can still read
  // (publish counters included) and drops the rest. For `p2pmq agent --repair-state`.
  static Result<void> repair(const std::string& dir);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // The next seqno of the topic (last + 1, from 1), persisted before it is returned: once a
  // caller has seen a seqno, no later call returns it again, whatever happens to the process.
  // With `defer_sync` (and sync_writes) the counter reaches the WAL but is not fsynced: the
  // caller must not use the seqno before sync_wal() returned (the agent batches those fsyncs on
  // a worker thread, off its io thread).
  Result<uint64_t> next_seqno(const std::string& topic, bool defer_sync = false);
  // Fsyncs the WAL: every write made before the call survives a power loss. Thread-safe (the
  // only method that is).
  Result<void> sync_wal();
  // Gives back a seqno that next_seqno returned when publishing it failed, so that the topic's
  // seqnos stay contiguous. Only the last one can be given back: for an older seqno (a later
  // one is already out) this does nothing and succeeds, the seqno stays used. A seqno that was
  // never handed out (0, or above the last) is refused with Errc::invalid_input.
  Result<void> rollback_seqno(const std::string& topic, uint64_t seqno);
  // 0 for a topic never published to.
  uint64_t last_seqno(const std::string& topic) const;

  // The topic's number among those this agent numbered (0, 1, 2 ... in the order asked),
  // persisted before it is returned: stable across restarts. Stock message ids need it
  // (pubsub::stock_seqno).
  Result<uint32_t> topic_number(const std::string& topic);

  // Upserts, in one atomic write (a later record for the same topic and origin wins).
  Result<void> save_watermarks(const std::vector<WatermarkRecord>& changed);
  // Every stored watermark. Unreadable records are skipped.
  std::vector<WatermarkRecord> load_watermarks() const;

  // Idempotent.
  Result<void> add_subscription(const std::string& topic);
  Result<void> remove_subscription(const std::string& topic);
  // Sorted.
  std::vector<std::string> subscriptions() const;

 private:
  StateStore(std::unique_ptr<rocksdb::DB> db, bool sync_writes);
  Result<void> load();
  Result<void> write_counter(const std::string& topic, uint64_t value, bool sync);

  std::unique_ptr<rocksdb::DB> db_;
  bool sync_writes_;
  std::map<std::string, uint64_t> counters_;  // topic -> last seqno (absent: 0)
  std::set<std::string> subscriptions_;
  std::map<std::string, uint32_t> topic_numbers_;
};

}  // namespace p2pmq::agent
