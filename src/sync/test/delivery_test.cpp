#include "sync/delivery.hpp"

#include <gtest/gtest.h>

#include "pubsub/message.hpp"

namespace p2pmq::sync {
namespace {

using namespace std::chrono_literals;

const Time t0{};
const TopicId kTopic = "t";
const Bytes kA = {0xa};
const Bytes kB = {0xb};

pubsub::Message msg(uint64_t seqno, const Bytes& origin = kA, const TopicId& topic = kTopic) {
  pubsub::Message m;
  m.from = origin;
  m.seqno = pubsub::seqno_bytes(seqno);
  m.topic = topic;
  m.data = to_bytes(std::to_string(seqno));
  return m;
}

// "1 2 G3-4 5": deliveries by seqno, gap events as G<from>-<to>.
std::string events(const DeliveryOutput& out) {
  std::string s;
  for (const auto& e : out.events) {
    if (!s.empty()) s += " ";
    if (const auto* d = std::get_if<Deliver>(&e))
      s += std::to_string(d->seqno);
    else {
      const auto& g = std::get<GapEvent>(e);
      s += "G" + std::to_string(g.from) + "-" + std::to_string(g.to);
    }
  }
  return s;
}

DeliveryConfig ordered_config() {
  DeliveryConfig c;
  c.ordered = true;
  c.gap_wait = 2s;
  c.fetch_retry = 5s;
  c.gap_give_up = 30s;
  return c;
}

TEST(IntervalSet, MergesAndTakes) {
  IntervalSet s;
  s.insert(5, 6);
  s.insert(8, 9);
  EXPECT_EQ(s.intervals(), 2u);
  s.insert(7, 7);
  EXPECT_EQ(s.intervals(), 1u);
  EXPECT_TRUE(s.contains(5));
  EXPECT_TRUE(s.contains(9));
  EXPECT_FALSE(s.contains(10));
  EXPECT_FALSE(s.contains(4));
  EXPECT_EQ(s.take_starting_at(5), 9u);
  EXPECT_TRUE(s.empty());
  s.insert(0, UINT64_MAX);
  s.insert(3, 4);
  EXPECT_EQ(s.intervals(), 1u);
}

TEST(Delivery, UnorderedDeliversAtOnceAndOnce) {
  DeliveryTracker d;
  EXPECT_EQ(events(d.offer(msg(1), Source::live, t0)), "1");
  EXPECT_EQ(events(d.offer(msg(3), Source::live, t0)), "3");
  EXPECT_EQ(events(d.offer(msg(3), Source::synced, t0)), "");
  EXPECT_EQ(events(d.offer(msg(2), Source::synced, t0)), "2");
  EXPECT_EQ(events(d.offer(msg(1), Source::live, t0)), "");
  EXPECT_EQ(events(d.offer(msg(2), Source::live, t0)), "");
  EXPECT_EQ(d.stats().duplicates, 3u);
  EXPECT_FALSE(d.next_deadline());  // the gap at 2 was filled
}

TEST(Delivery, OrderedReordersPerOrigin) {
  DeliveryTracker d(ordered_config());
  EXPECT_EQ(events(d.offer(msg(1), Source::live, t0)), "1");
  EXPECT_EQ(events(d.offer(msg(4), Source::live, t0)), "");
  EXPECT_EQ(events(d.offer(msg(3), Source::live, t0)), "");
  EXPECT_EQ(events(d.offer(msg(1, kB), Source::live, t0)), "1");  // another origin flows
  EXPECT_EQ(d.buffered(kTopic, kA), 2u);
  auto out = d.offer(msg(2), Source::synced, t0);
  EXPECT_EQ(events(out), "2 3 4");
  EXPECT_EQ(std::get<Deliver>(out.events[0]).source, Source::synced);
  EXPECT_EQ(d.buffered(kTopic, kA), 0u);
  EXPECT_EQ(events(d.offer(msg(3), Source::live, t0)), "");
}

TEST(Delivery, GapIsFetchedAfterGraceAndFilled) {
  DeliveryTracker d(ordered_config());
  d.offer(msg(1), Source::live, t0);
  d.offer(msg(5), Source::live, t0 + 1s);  // gap 2..4
  EXPECT_EQ(d.stats().gaps_opened, 1u);
  EXPECT_EQ(d.next_deadline(), t0 + 3s);
  EXPECT_TRUE(d.on_timer(t0 + 2s).fetches.empty());  // gossip's grace
  auto out = d.on_timer(t0 + 3s);
  ASSERT_EQ(out.fetches.size(), 1u);
  EXPECT_EQ(out.fetches[0], (FetchRange{kTopic, kA, 2, 4}));
  EXPECT_EQ(d.next_deadline(), t0 + 8s);  // retry
  EXPECT_EQ(events(d.offer(msg(3), Source::synced, t0 + 4s)), "");
  EXPECT_EQ(events(d.offer(msg(2), Source::synced, t0 + 4s)), "2 3");
  // The rest (4) keeps its fetch state: the retry asks for just that.
  out = d.on_timer(t0 + 8s);
  ASSERT_EQ(out.fetches.size(), 1u);
  EXPECT_EQ(out.fetches[0], (FetchRange{kTopic, kA, 4, 4}));
  EXPECT_EQ(events(d.offer(msg(4), Source::synced, t0 + 9s)), "4 5");
  EXPECT_FALSE(d.next_deadline());
}

TEST(Delivery, OrderedGiveUpReportsGapInOrderAndContinues) {
  DeliveryTracker d(ordered_config());
  d.offer(msg(1), Source::live, t0);
  d.offer(msg(4), Source::live, t0);
  d.offer(msg(6), Source::live, t0 + 10s);  // gaps 2..3 (t0) and 5 (t0+10s)
  auto out = d.on_timer(t0 + 30s);
  EXPECT_EQ(events(out), "G2-3 4");
  EXPECT_EQ(out.fetches.size(), 1u);  // for 5
  EXPECT_EQ(d.next_deadline(), t0 + 35s);
  out = d.on_timer(t0 + 40s);
  EXPECT_EQ(events(out), "G5-5 6");
  EXPECT_EQ(d.stats().gaps_given_up, 2u);
  EXPECT_EQ(events(d.offer(msg(2), Source::synced, t0 + 41s)), "");  // too late
  EXPECT_EQ(events(d.offer(msg(7), Source::live, t0 + 41s)), "7");
}

TEST(Delivery, OrderedBufferOverflowIsRefetched) {
  auto c = ordered_config();
  c.max_buffered = 2;
  DeliveryTracker d(c);
  d.offer(msg(1), Source::live, t0);
  d.offer(msg(3), Source::live, t0 + 20s);  // gap 2 (t0+20s)
  d.offer(msg(5), Source::live, t0 + 20s);  // gap 4
  d.offer(msg(6), Source::live, t0 + 20s);  // buffer full: 6 dropped, gap 6 (t0+20s)
  EXPECT_EQ(d.stats().buffer_overflow, 1u);
  auto out = d.on_timer(t0 + 22s);
  ASSERT_EQ(out.fetches.size(), 3u);
  EXPECT_EQ(out.fetches[2], (FetchRange{kTopic, kA, 6, 6}));         // the overflow is re-fetched
  EXPECT_EQ(events(d.offer(msg(6), Source::synced, t0 + 23s)), "");  // still no room
  EXPECT_EQ(events(d.offer(msg(2), Source::synced, t0 + 23s)), "2 3");
  EXPECT_EQ(events(d.offer(msg(6), Source::synced, t0 + 23s)), "");  // now buffered
  EXPECT_EQ(events(d.on_timer(t0 + 50s)), "G4-4 5 6");
}

TEST(Delivery, UnorderedGiveUpReportsGap) {
  DeliveryTracker d;
  d.offer(msg(1), Source::live, t0);
  EXPECT_EQ(events(d.offer(msg(3), Source::live, t0)), "3");
  EXPECT_EQ(events(d.on_timer(t0 + 30s)), "G2-2");
  EXPECT_EQ(events(d.offer(msg(4), Source::live, t0 + 31s)), "4");
  EXPECT_FALSE(d.next_deadline());
}

TEST(Delivery, UnorderedOutOfOrderStateIsBounded) {
  DeliveryConfig c;
  c.max_buffered = 2;
  DeliveryTracker d(c);
  d.offer(msg(1), Source::live, t0);
  d.offer(msg(3), Source::live, t0);
  d.offer(msg(5), Source::live, t0);
  // A third out-of-order range forces the oldest gap out.
  EXPECT_EQ(events(d.offer(msg(7), Source::live, t0)), "7 G2-2");
  EXPECT_EQ(d.stats().forced_give_ups, 1u);
}

TEST(Delivery, WatermarksPersistOnlyWhatListenersGot) {
  DeliveryTracker d(ordered_config());
  for (uint64_t s = 1; s <= 3; ++s) d.offer(msg(s), Source::live, t0);
  EXPECT_TRUE(d.export_watermarks().empty());  // nothing handed to a listener yet
  d.mark_delivered(kTopic, kA, 2, 2);          // out of order: 1 not yet handed over
  EXPECT_TRUE(d.export_watermarks().empty());
  d.mark_delivered(kTopic, kA, 1, 1);
  EXPECT_EQ(d.export_watermarks(), (std::vector<WatermarkEntry>{{kTopic, kA, 2}}));
  d.mark_delivered(kTopic, kA, 3, 3);
  EXPECT_EQ(d.export_watermarks(), (std::vector<WatermarkEntry>{{kTopic, kA, 3}}));

  // A restarted agent: seqnos up to 3 are done, a jump to 6 is a gap from 4.
  DeliveryTracker e(ordered_config());
  e.import_watermarks(d.export_watermarks(), t0);
  EXPECT_EQ(events(e.offer(msg(3), Source::live, t0)), "");
  EXPECT_EQ(events(e.offer(msg(6), Source::live, t0)), "");
  auto out = e.on_timer(t0 + 2s);
  ASSERT_EQ(out.fetches.size(), 1u);
  EXPECT_EQ(out.fetches[0], (FetchRange{kTopic, kA, 4, 5}));
  EXPECT_EQ(events(e.offer(msg(4), Source::synced, t0 + 3s)), "4");
  EXPECT_EQ(events(e.offer(msg(5), Source::synced, t0 + 3s)), "5 6");
}

TEST(Delivery, FirstSightIsNotAGap) {
  DeliveryTracker d(ordered_config());
  EXPECT_EQ(events(d.offer(msg(100), Source::live, t0)), "100");
  EXPECT_FALSE(d.next_deadline());
  d.mark_delivered(kTopic, kA, 100, 100);
  EXPECT_EQ(d.export_watermarks(), (std::vector<WatermarkEntry>{{kTopic, kA, 100}}));
}

TEST(Delivery, HistoryOfAnOriginMetMidStreamIsFetchedOnceAndNeverAGap) {
  auto config = ordered_config();
  config.fetch_history = true;
  DeliveryTracker d(config);
  auto first = d.offer(msg(3), Source::live, t0);
  EXPECT_EQ(events(first), "3");
  EXPECT_EQ(first.fetches, (std::vector<FetchRange>{{kTopic, kA, 1, 2}}));
  EXPECT_EQ(events(d.offer(msg(4), Source::live, t0)), "4");
  // The history arrives later, out of order, each seqno once.
  EXPECT_EQ(events(d.offer(msg(2), Source::synced, t0 + 1s)), "2");
  EXPECT_EQ(events(d.offer(msg(2), Source::synced, t0 + 1s)), "");
  EXPECT_EQ(events(d.offer(msg(1), Source::synced, t0 + 1s)), "1");
  EXPECT_FALSE(d.next_deadline());  // nothing pending: history is never a gap
  EXPECT_EQ(events(d.on_timer(t0 + 1h)), "");
  // A second origin met at 1 has no history; an imported one neither.
  EXPECT_TRUE(d.offer(msg(1, kB), Source::live, t0).fetches.empty());
  EXPECT_EQ(d.stats().history_fetches, 1u);
}

TEST(Delivery, UntrackedWithoutOriginOrSeqno) {
  DeliveryTracker d;
  pubsub::Message m;
  m.topic = kTopic;
  m.data = to_bytes("x");
  EXPECT_EQ(events(d.offer(m, Source::live, t0)), "0");
  EXPECT_EQ(events(d.offer(m, Source::live, t0)), "0");  // no seqno: no dedup here
  EXPECT_EQ(d.stats().untracked, 2u);
  EXPECT_EQ(d.streams(), 0u);
}

TEST(Delivery, StreamTableEvictsIdleThenGoesUntracked) {
  DeliveryConfig c;
  c.max_streams = 1;
  DeliveryTracker d(c);
  d.offer(msg(1, kA), Source::live, t0);
  d.mark_delivered(kTopic, kA, 1, 1);
  EXPECT_EQ(events(d.offer(msg(1, kB), Source::live, t0 + 1s)), "1");  // A was idle: evicted
  EXPECT_EQ(d.stats().streams_evicted, 1u);
  // B is not idle (nothing marked yet): a third origin goes untracked.
  EXPECT_EQ(events(d.offer(msg(1, Bytes{0xc}), Source::live, t0 + 2s)), "0");
  EXPECT_EQ(d.stats().untracked, 1u);
}

TEST(Delivery, SwitchingToUnorderedReleasesBuffer) {
  DeliveryTracker d(ordered_config());
  d.offer(msg(1), Source::live, t0);
  d.offer(msg(3), Source::live, t0);
  d.offer(msg(4), Source::live, t0);
  EXPECT_EQ(events(d.set_ordered(kTopic, false)), "3 4");
  EXPECT_EQ(events(d.offer(msg(2), Source::synced, t0)), "2");
  EXPECT_EQ(events(d.offer(msg(5), Source::live, t0)), "5");
}

// js gossipsub draws a random seqno per message: a later one far below what was delivered is
// not a replay to drop, it is an origin that does not number contiguously. Everything it sends
// is delivered (the router's seen cache removes copies), nothing is fetched, no gap reported.
TEST(Delivery, RandomSeqnosOfAnOriginAreAllDelivered) {
  DeliveryTracker d(ordered_config());
  const uint64_t seqnos[] = {0x7a31'0000'0000'0001, 0x0312'0000'0000'0000, 0x9999'0000'0000'0000,
                             0x0000'0000'0004'0000, 0x4444'0000'0000'0000};
  size_t delivered = 0;
  for (uint64_t n : seqnos) {
    auto out = d.offer(msg(n), Source::live, t0);
    EXPECT_TRUE(out.fetches.empty());
    for (const auto& e : out.events) delivered += std::holds_alternative<Deliver>(e) ? 1 : 0;
  }
  EXPECT_EQ(delivered, 5u);
  EXPECT_EQ(d.stats().unnumbered_origins, 1u);
  EXPECT_FALSE(d.next_deadline());
  EXPECT_TRUE(d.on_timer(t0 + 1h).events.empty());
}

// A jump of 2^40 on a synced topic: no fetch of the 2^40 seqnos skipped, no gap event; the
// origin's messages keep being delivered. Other origins are not affected.
TEST(Delivery, HugeSeqnoJumpIsNotFetched) {
  DeliveryTracker d(ordered_config());
  EXPECT_EQ(events(d.offer(msg(1), Source::live, t0)), "1");
  EXPECT_EQ(events(d.offer(msg(3), Source::live, t0)), "");  // an ordinary gap: buffered
  auto out = d.offer(msg((uint64_t{1} << 40) + 3), Source::live, t0);
  EXPECT_TRUE(out.fetches.empty());
  EXPECT_EQ(events(out), "0 0");  // 3, released from the buffer, then the jump: untracked
  EXPECT_FALSE(d.next_deadline());
  EXPECT_EQ(events(d.offer(msg(1, kB), Source::live, t0)), "1");
  EXPECT_EQ(events(d.offer(msg(3, kB), Source::live, t0)), "");  // B still tracked, in order
}

// Finding 8: a jump to 2^40 after 1 must not make us fetch 2^40 seqnos.
TEST(Delivery, HugeSeqnoJumpFetchesOnlyTheWindowBelowIt) {
  auto c = ordered_config();
  c.max_gap_fetch = 100;
  c.max_seqno_jump = UINT64_MAX;  // the window cap on its own (by default such a jump untracks)
  DeliveryTracker d(c);
  const uint64_t huge = uint64_t{1} << 40;
  EXPECT_EQ(events(d.offer(msg(1), Source::live, t0)), "1");
  // Ordered: the unfetchable part is reported at once (delivery is right before it).
  EXPECT_EQ(events(d.offer(msg(huge), Source::live, t0)), "G2-" + std::to_string(huge - 101));
  EXPECT_EQ(d.stats().oversized_gaps, 1u);
  auto out = d.on_timer(t0 + 2s);
  ASSERT_EQ(out.fetches.size(), 1u);
  EXPECT_EQ(out.fetches[0].from, huge - 100);
  EXPECT_EQ(out.fetches[0].to, huge - 1);
  // The window is fetched, then the held message follows it.
  for (uint64_t n = huge - 100; n < huge - 1; ++n) d.offer(msg(n), Source::synced, t0 + 3s);
  EXPECT_EQ(events(d.offer(msg(huge - 1), Source::synced, t0 + 3s)),
            std::to_string(huge - 1) + " " + std::to_string(huge));
}

TEST(Delivery, HugeSeqnoJumpUnorderedReportsTheLowerPartAtOnce) {
  DeliveryConfig c;
  c.max_gap_fetch = 10;
  DeliveryTracker d(c);
  EXPECT_EQ(events(d.offer(msg(1), Source::live, t0)), "1");
  EXPECT_EQ(events(d.offer(msg(1000), Source::live, t0)), "G2-989 1000");
  auto out = d.on_timer(t0 + 2s);
  ASSERT_EQ(out.fetches.size(), 1u);
  EXPECT_EQ(out.fetches[0], (FetchRange{kTopic, kA, 990, 999}));
}

TEST(Delivery, HistoryFetchIsCappedToTheWindow) {
  DeliveryConfig c;
  c.fetch_history = true;
  c.max_gap_fetch = 50;
  c.max_seqno_jump = UINT64_MAX;
  DeliveryTracker d(c);
  auto out = d.offer(msg(uint64_t{1} << 40), Source::live, t0);
  ASSERT_EQ(out.fetches.size(), 1u);
  EXPECT_EQ(out.fetches[0].from, (uint64_t{1} << 40) - 50);
  EXPECT_EQ(out.fetches[0].to, (uint64_t{1} << 40) - 1);
}

TEST(FetchSlots, CapsFetchesPerTopicAndInTotal) {
  FetchSlots slots(FetchSlotsConfig{2, 3});
  EXPECT_TRUE(slots.try_acquire("a"));
  EXPECT_TRUE(slots.try_acquire("a"));
  EXPECT_FALSE(slots.try_acquire("a"));  // per topic
  EXPECT_TRUE(slots.try_acquire("b"));
  EXPECT_FALSE(slots.try_acquire("c"));  // in total
  EXPECT_EQ(slots.in_flight(), 3u);
  slots.release("a");
  EXPECT_TRUE(slots.try_acquire("c"));
  EXPECT_EQ(slots.in_flight("a"), 1u);
  EXPECT_EQ(slots.in_flight("c"), 1u);
}

// Hands everything out and marks it, as the IO side does.
std::string deliver_and_mark(DeliveryTracker& d, DeliveryOutput out) {
  for (const auto& e : out.events)
    if (const auto* m = std::get_if<Deliver>(&e); m && m->seqno != 0)
      d.mark_delivered(m->message.topic, *m->message.from, m->seqno, m->seqno);
  return events(out);
}

// Finding 5: an evicted origin's next message resumes from its watermark; nothing of its
// history is fetched or handed out again.
TEST(Delivery, EvictedOriginResumesFromItsWatermark) {
  DeliveryConfig c;
  c.max_streams = 1;
  c.fetch_history = true;
  DeliveryTracker d(c);
  for (uint64_t n = 1; n <= 5; ++n) deliver_and_mark(d, d.offer(msg(n, kA), Source::live, t0));
  deliver_and_mark(d, d.offer(msg(1, kB), Source::live, t0 + 1s));  // evicts A
  EXPECT_EQ(d.stats().streams_evicted, 1u);
  EXPECT_EQ(d.retired(), 1u);
  auto out = d.offer(msg(6, kA), Source::live, t0 + 2s);  // evicts B, restores A
  EXPECT_EQ(deliver_and_mark(d, out), "6");
  EXPECT_TRUE(out.fetches.empty());  // no history fetch of 1..5
  EXPECT_EQ(d.stats().streams_restored, 1u);
  // A catch-up that brings A's history back delivers none of it.
  for (uint64_t n = 1; n <= 6; ++n)
    EXPECT_EQ(events(d.offer(msg(n, kA), Source::synced, t0 + 3s)), "") << n;
  // A real jump after the restore is still a gap.
  EXPECT_EQ(events(d.offer(msg(9, kA), Source::live, t0 + 4s)), "9");
  EXPECT_EQ(d.on_timer(t0 + 6s).fetches, (std::vector<FetchRange>{{kTopic, kA, 7, 8}}));
}

TEST(Delivery, ForgottenWatermarksMakeTheTopicWaryOfUnknownOrigins) {
  DeliveryConfig c;
  c.max_streams = 1;
  c.max_retired = 1;
  c.fetch_history = true;
  DeliveryTracker d(c);
  const Bytes kC = {0xc};
  for (uint64_t n = 1; n <= 3; ++n) deliver_and_mark(d, d.offer(msg(n, kA), Source::live, t0));
  deliver_and_mark(d, d.offer(msg(1, kB), Source::live, t0 + 1s));  // A retired
  deliver_and_mark(d, d.offer(msg(1, kC), Source::live, t0 + 2s));  // B retired, A forgotten
  EXPECT_EQ(d.stats().retired_forgotten, 1u);
  // A comes back unknown: its history is neither fetched nor accepted from a sync.
  auto out = d.offer(msg(4, kA), Source::live, t0 + 3s);
  EXPECT_EQ(events(out), "4");
  EXPECT_TRUE(out.fetches.empty());
  d.mark_delivered(kTopic, kA, 4, 4);
  deliver_and_mark(d, d.offer(msg(2, kB), Source::live, t0 + 4s));      // B restored, A retired
  EXPECT_EQ(events(d.offer(msg(1, kC), Source::synced, t0 + 5s)), "");  // C forgotten: dropped
  EXPECT_GE(d.stats().unknown_synced_dropped, 1u);
}

TEST(Delivery, NewOriginsPerTopicAreRateLimited) {
  DeliveryConfig c;
  c.new_origins_per_second = 1;
  c.new_origin_burst = 2;
  DeliveryTracker d(c);
  EXPECT_EQ(events(d.offer(msg(1, Bytes{1}), Source::live, t0)), "1");
  EXPECT_EQ(events(d.offer(msg(1, Bytes{2}), Source::live, t0)), "1");
  // Over the rate: a live message is still delivered, untracked; a synced one is dropped.
  EXPECT_EQ(events(d.offer(msg(1, Bytes{3}), Source::live, t0)), "0");
  EXPECT_EQ(events(d.offer(msg(1, Bytes{4}), Source::synced, t0)), "");
  EXPECT_EQ(d.stats().new_origins_limited, 2u);
  EXPECT_EQ(d.streams(), 2u);
  // Another topic has its own budget; known origins are never limited.
  EXPECT_EQ(events(d.offer(msg(1, Bytes{3}, "u"), Source::live, t0)), "1");
  EXPECT_EQ(events(d.offer(msg(2, Bytes{1}), Source::live, t0)), "2");
  EXPECT_EQ(events(d.offer(msg(1, Bytes{3}), Source::live, t0 + 1s)), "1");
}

}  // namespace
}  // namespace p2pmq::sync
