#pragma once
// What the sync server reads from (and an archive node writes to): messages of a topic keyed by
// (origin, seqno) and by arrival. The RocksDB store (sync/store) and the in-memory archive
// (memory_archive.hpp, for tests, fuzzing and the simulator) implement it with the same
// semantics, so the server is tested against the fake.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "sync/codec.hpp"

namespace p2pmq::sync {

// Persisted times are wall-clock: a steady clock restarts with the machine.
using WallClock = std::chrono::system_clock;
using WallTime = WallClock::time_point;

struct StoredMessage {
  Bytes origin;
  uint64_t seqno = 0;
  Bytes message;  // the encoded libp2p.pubsub.Message, signed, as received
  WallTime received{};
  bool operator==(const StoredMessage&) const = default;
};

// Where a `since` answer stopped, to continue after it.
struct Position {
  Bytes origin;
  uint64_t seqno = 0;
  bool operator==(const Position&) const = default;
};

struct QueryResult {
  std::vector<StoredMessage> messages;
  bool complete = true;  // false: stopped at max_bytes, more matches exist
};

// The order of origins in range/since answers: shorter ids first, then bytewise (the order of
// the store's length-prefixed keys). Callers only need it to be the same everywhere.
bool origin_less(BytesView a, BytesView b);

// Retention per topic: whichever bound is hit first removes the oldest arrivals.
struct Retention {
  uint64_t max_messages = 10'000;   // >= 1
  std::chrono::seconds max_age{0};  // 0: no age bound
  // Messages one origin may hold in the topic: over it, that origin's lowest seqno goes, so
  // one publisher cannot flush the others' history. >= 1.
  uint64_t max_messages_per_origin = 5'000;
};

// Answers are bounded by max_bytes (the sum of message sizes) but always hold at least one
// match if one exists, so a caller paging through them always progresses.
class Archive {
 public:
  virtual ~Archive() = default;

  // false: already stored (same topic, origin, seqno), nothing written.
  virtual Result<bool> put(const TopicId& topic, BytesView origin, uint64_t seqno,
                           BytesView message, WallTime received) = 0;

  virtual bool has_topic(const TopicId& topic) = 0;
  // The newest n messages by arrival that fit max_bytes, oldest first.
  virtual Result<QueryResult> latest(const TopicId& topic, uint64_t n, size_t max_bytes) = 0;
  // Seqnos from..to (inclusive) of one origin, ascending.
  virtual Result<QueryResult> range(const TopicId& topic, BytesView origin, uint64_t from,
                                    uint64_t to, size_t max_bytes) = 0;
  // Everything of the topic past the watermarks (origins not listed: everything retained), in
  // (origin_less, seqno) order, strictly after `after` when given.
  virtual Result<QueryResult> since(const TopicId& topic, const std::vector<Watermark>& watermarks,
                                    const std::optional<Position>& after, size_t max_bytes) = 0;
};

}  // namespace p2pmq::sync
