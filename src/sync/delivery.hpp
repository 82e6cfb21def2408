#pragma once
// The agent side of sync, sans-IO (DESIGN.md §5): per (topic, origin) delivery watermarks, a
// reorder buffer for ordered delivery, duplicate suppression, and gap handling. A seqno jump
// opens a gap; after gap_wait (gossip's grace) it becomes a FetchRange for the IO side to ask
// archives, and after gap_give_up a GapEvent for the listeners, with delivery continuing past
// it. Watermarks persist only what listeners were handed (mark_delivered).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "pubsub/types.hpp"

namespace p2pmq::sync {

using pubsub::Duration;
using pubsub::Time;
using pubsub::TopicId;

enum class Source { live, synced };

struct DeliveryConfig {
  bool ordered = false;                         // per-origin order for topics without set_ordered()
  Duration gap_wait = std::chrono::seconds(2);  // left to gossip before fetching
  Duration fetch_retry = std::chrono::seconds(5);   // fetch again while still missing
  Duration gap_give_up = std::chrono::seconds(30);  // then reported as a gap and skipped
  size_t max_buffered = 1'000;  // per (topic, origin): reorder buffer, and out-of-order ranges
  size_t max_streams = 10'000;  // tracked (topic, origin) pairs
  // An origin first met at seqno n > 1 (not from imported watermarks): fetch 1..n-1 once and
  // deliver what comes, out of order and without gap events (history, not a hole). Off: that
  // history is never delivered.
  bool fetch_history = false;
  // A seqno this far below what an origin's stream delivered, or above what it saw, says the
  // origin does not number its messages contiguously per topic (js gossipsub draws a random
  // seqno per message; an attacker jumps by 2^40): the stream stops tracking and its messages
  // are delivered as they come, deduplicated by the router's seen cache only. Neither order nor
  // gaps mean anything for such an origin, and fetching its "gaps" would never end.
  uint64_t max_seqno_jump = 1'000'000;
  // The most seqnos fetched for one jump (and for fetch_history): a peer can publish seqno
  // 2^40 after 1. Below the window just under the new seqno, the jump is reported as a gap at
  // once and never fetched. >= 1.
  uint64_t max_gap_fetch = 10'000;
  // Watermarks of streams evicted over max_streams, so that an evicted origin's next message
  // resumes where it was instead of looking new (re-fetching and re-delivering its history).
  // Over this many the oldest is forgotten, and its topic then treats unknown origins warily:
  // no history fetch, and synced messages of unknown origins are dropped (they could be
  // re-deliveries).
  size_t max_retired = 100'000;
  // Origins a topic may start tracking, per second (token refill) and at once (bucket size):
  // throwaway keys cannot churn the stream table. Over it, a live message is delivered
  // untracked (the seen cache still drops its copies) and a synced one dropped.
  double new_origins_per_second = 10.0;
  double new_origin_burst = 1'000.0;
};

// Fetches in flight, per topic and in total: a jump on many origins or topics must not start
// unbounded work. A fetch refused here is not lost: its gap asks again after fetch_retry.
struct FetchSlotsConfig {
  size_t per_topic = 4;
  size_t total = 32;
};

class FetchSlots {
 public:
  explicit FetchSlots(FetchSlotsConfig config = {}) : config_(config) {}
  bool try_acquire(const TopicId& topic);
  void release(const TopicId& topic);
  size_t in_flight() const { return total_; }
  size_t in_flight(const TopicId& topic) const;

 private:
  FetchSlotsConfig config_;
  std::map<TopicId, size_t> per_topic_;
  size_t total_ = 0;
};

struct Deliver {
  pubsub::Message message;
  Source source = Source::live;
  uint64_t seqno = 0;  // 0: untracked (no from/seqno, or no room to track its origin)
};
// Seqnos from..to of origin will not be delivered.
struct GapEvent {
  TopicId topic;
  Bytes origin;
  uint64_t from = 0, to = 0;
  bool operator==(const GapEvent&) const = default;
};
using DeliveryEvent = std::variant<Deliver, GapEvent>;

// Ask archives for these seqnos (the IO side splits by the server's max_range_span).
struct FetchRange {
  TopicId topic;
  Bytes origin;
  uint64_t from = 0, to = 0;
  bool operator==(const FetchRange&) const = default;
};

struct DeliveryOutput {
  std::vector<DeliveryEvent> events;  // for listeners, in order
  std::vector<FetchRange> fetches;    // for the IO side
};

struct WatermarkEntry {
  TopicId topic;
  Bytes origin;
  uint64_t seqno = 0;  // everything up to it was handed to listeners (or reported as a gap)
  bool operator==(const WatermarkEntry&) const = default;
};

struct DeliveryStats {
  uint64_t delivered = 0;
  uint64_t duplicates = 0;
  uint64_t late = 0;             // arrived after its gap was given up
  uint64_t buffer_overflow = 0;  // dropped from a full buffer; re-fetched as a gap
  uint64_t forced_give_ups = 0;  // gaps given up early because out-of-order state was full
  uint64_t streams_evicted = 0;
  uint64_t untracked = 0;           // delivered without dedup or order
  uint64_t unnumbered_origins = 0;  // streams that stopped tracking (max_seqno_jump)
  uint64_t gaps_opened = 0;
  uint64_t fetches = 0;
  uint64_t gaps_given_up = 0;
  uint64_t history_fetches = 0;
  uint64_t oversized_gaps = 0;       // jumps over max_gap_fetch: their lower part reported at once
  uint64_t streams_restored = 0;     // evicted streams resumed from their retired watermark
  uint64_t retired_forgotten = 0;    // retired watermarks dropped over max_retired
  uint64_t new_origins_limited = 0;  // over new_origins_per_second
  uint64_t unknown_synced_dropped = 0;  // synced messages no stream could safely take
};

// Disjoint, merged, inclusive ranges of seqnos.
class IntervalSet {
 public:
  void insert(uint64_t from, uint64_t to);
  bool contains(uint64_t x) const;
  // Removes the range starting at x, returning its end.
  std::optional<uint64_t> take_starting_at(uint64_t x);
  void erase_highest();
  size_t intervals() const { return ranges_.size(); }
  bool empty() const { return ranges_.empty(); }
  const std::map<uint64_t, uint64_t>& ranges() const { return ranges_; }

 private:
  std::map<uint64_t, uint64_t> ranges_;  // from -> to
};

class DeliveryTracker {
 public:
  explicit DeliveryTracker(DeliveryConfig config = {});

  // Switching a topic to unordered releases its buffered messages.
  DeliveryOutput set_ordered(const TopicId& topic, bool ordered);

  // A validated message, live or synced. Messages without from or an 8-byte seqno
  // (StrictNoSign) are delivered at once, untracked.
  DeliveryOutput offer(pubsub::Message message, Source source, Time now);

  std::optional<Time> next_deadline() const;
  DeliveryOutput on_timer(Time now);

  // The IO side handed seqnos from..to of origin (messages or a GapEvent) to a listener.
  void mark_delivered(const TopicId& topic, BytesView origin, uint64_t from, uint64_t to);

  // Persisted watermarks: only what mark_delivered() covered, contiguously.
  std::vector<WatermarkEntry> export_watermarks() const;
  // At start-up, before offer(): seqnos up to each entry count as delivered. Entries for
  // streams already tracked are ignored.
  void import_watermarks(const std::vector<WatermarkEntry>& entries, Time now);

  const DeliveryStats& stats() const { return stats_; }
  size_t streams() const { return streams_.size(); }
  size_t retired() const { return retired_.size(); }
  size_t buffered(const TopicId& topic, BytesView origin) const;

 private:
  struct Gap {
    uint64_t to;
    Time first_seen;
    std::optional<Time> last_fetch;
  };
  // Every seqno in (delivered, max_seen] is in exactly one of buffer, done, abandoned, gaps.
  struct Stream {
    uint64_t delivered = 0;  // handed out contiguously up to here
    uint64_t max_seen = 0;
    std::map<uint64_t, Deliver> buffer;  // ordered mode: waiting for the seqnos before them
    IntervalSet done;                    // handed out early (unordered), or given up
    IntervalSet abandoned;               // ordered mode: given up, reported when reached
    std::map<uint64_t, Gap> gaps;        // from -> gap
    uint64_t acked = 0;                  // what mark_delivered covered contiguously
    uint64_t history_end = 0;            // fetch_history: 1..history_end predate the stream
    IntervalSet history_done;            // of those, what was delivered
    IntervalSet acked_above;
    Time last_active{};
    bool unnumbered = false;  // see DeliveryConfig::max_seqno_jump
  };
  using Key = std::pair<TopicId, Bytes>;

  struct Retired {
    uint64_t delivered;
    uint64_t generation;  // matches its entry in retired_order_
  };
  struct Bucket {
    double tokens;
    Time last;
  };

  bool ordered(const TopicId& topic) const;
  // A stream with everything up to `delivered` handed out; evicts an idle one when full.
  Stream* create(const Key& key, uint64_t delivered, Time now);
  void retire(const Key& key, uint64_t delivered);
  bool allow_new_origin(const TopicId& topic, Time now);
  void add_gap(Stream& s, uint64_t from, uint64_t to, Time now);
  void remove_from_gap(Stream& s, uint64_t seqno);
  void give_up(const Key& key, Stream& s, std::map<uint64_t, Gap>::iterator gap, bool ordered,
               DeliveryOutput& out);
  void advance(const Key& key, Stream& s, DeliveryOutput& out);
  void emit(Deliver d, DeliveryOutput& out);
  // Whether n is so far from the stream's window that the origin cannot be numbering its
  // messages contiguously; then stops tracking the stream (releasing its buffer, dropping its
  // gaps without fetches or events).
  bool far_outside(const Stream& s, uint64_t n) const;
  void stop_tracking(Stream& s, DeliveryOutput& out);

  DeliveryConfig config_;
  std::map<TopicId, bool> ordered_;
  std::map<Key, Stream> streams_;
  std::map<Key, Retired> retired_;
  std::deque<std::pair<uint64_t, Key>> retired_order_;  // (generation, key), oldest first
  uint64_t next_generation_ = 0;
  std::set<TopicId> forgotten_;  // topics that lost a retired watermark
  std::map<TopicId, Bucket> new_origins_;
  DeliveryStats stats_;
};

}  // namespace p2pmq::sync
