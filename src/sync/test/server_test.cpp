#include "sync/server.hpp"

#include <gtest/gtest.h>

#include "sync/memory_archive.hpp"

namespace p2pmq::sync {
namespace {

using namespace std::chrono_literals;

crypto::PeerId peer(uint8_t fill) {
  crypto::PrivateKey::Seed seed;
  seed.fill(fill);
  return crypto::PeerId::from_public_key(crypto::PrivateKey::from_seed(seed).public_key());
}

// Message bytes that name their origin and seqno, so answers are easy to check.
Bytes body(char origin, uint64_t seqno, size_t pad = 0) {
  std::string s = std::string(1, origin) + ":" + std::to_string(seqno) + std::string(pad, '.');
  return to_bytes(s);
}
std::string text(const Bytes& b) {
  std::string s(as_string(b));
  return s.substr(0, s.find('.'));
}

const Time t0{};
const WallTime w0{};

struct SyncServerTest : ::testing::Test {
  MemoryArchive archive{Retention{1000, {}}};
  ServerConfig config;
  void add(const TopicId& topic, char origin, uint64_t seqno, size_t pad = 0) {
    ASSERT_TRUE(*archive.put(topic, Bytes{uint8_t(origin)}, seqno, body(origin, seqno, pad), w0));
  }
  // All messages of an answer, checking the item sequence is well formed.
  std::vector<std::string> messages(const std::vector<SyncResponse>& items, uint64_t id,
                                    bool* truncated = nullptr) {
    std::vector<std::string> out;
    for (size_t i = 0; i < items.size(); ++i) {
      EXPECT_EQ(items[i].id, id);
      const auto& b = std::get<Batch>(items[i].item);
      EXPECT_EQ(b.more, i + 1 < items.size());
      if (i + 1 < items.size()) {
        EXPECT_FALSE(b.truncated);
      }
      if (truncated && i + 1 == items.size()) *truncated = b.truncated;
      for (const auto& m : b.messages) out.push_back(text(m));
    }
    return out;
  }
  ErrorReply error(const std::vector<SyncResponse>& items) {
    EXPECT_EQ(items.size(), 1u);
    return std::get<ErrorReply>(items.at(0).item);
  }
};

TEST_F(SyncServerTest, LatestReturnsNewestOldestFirst) {
  for (uint64_t s = 1; s <= 5; ++s) add("t", 'a', s);
  add("t", 'b', 1);
  SyncServer server(archive, config);
  auto items = server.respond_all(peer(1), {42, LatestQuery{"t", 3}}, t0);
  EXPECT_EQ(messages(items, 42), (std::vector<std::string>{"a:4", "a:5", "b:1"}));
  items = server.respond_all(peer(1), {43, LatestQuery{"t", 0}}, t0);
  EXPECT_EQ(items.size(), 1u);
  EXPECT_TRUE(messages(items, 43).empty());
}

TEST_F(SyncServerTest, LatestSplitsIntoBoundedBatches) {
  for (uint64_t s = 1; s <= 10; ++s) add("t", 'a', s, 20);
  config.limits.max_batch_bytes = 100;  // four 24-byte messages per batch
  SyncServer server(archive, config);
  auto items = server.respond_all(peer(1), {1, LatestQuery{"t", 10}}, t0);
  EXPECT_EQ(items.size(), 3u);
  for (const auto& item : items) EXPECT_LE(std::get<Batch>(item.item).messages.size(), 4u);
  EXPECT_EQ(messages(items, 1).size(), 10u);
  EXPECT_EQ(messages(items, 1).front(), "a:1");
}

TEST_F(SyncServerTest, RangePagesAndStopsAtResponseLimit) {
  for (uint64_t s = 1; s <= 20; ++s) add("t", 'a', s, 20);
  add("t", 'b', 5);
  config.limits.max_batch_bytes = 50;  // two per batch
  SyncServer server(archive, config);
  auto items = server.respond_all(peer(1), {9, RangeQuery{"t", Bytes{'a'}, 3, 8}}, t0);
  EXPECT_EQ(items.size(), 3u);
  EXPECT_EQ(messages(items, 9),
            (std::vector<std::string>{"a:3", "a:4", "a:5", "a:6", "a:7", "a:8"}));

  config.max_response_bytes = 100;
  SyncServer limited(archive, config);
  bool truncated = false;
  items = limited.respond_all(peer(1), {9, RangeQuery{"t", Bytes{'a'}, 1, 20}}, t0);
  auto got = messages(items, 9, &truncated);
  EXPECT_TRUE(truncated);
  // Pages of 50 bytes until 100 are used up; the last page holds at least one message, so
  // the answer may pass max_response_bytes by one message.
  EXPECT_EQ(got.size(), 5u);
  EXPECT_EQ(got.back(), "a:5");  // the client asks again from 6
}

TEST_F(SyncServerTest, SinceSkipsWatermarksAndListsUnknownOrigins) {
  for (uint64_t s = 1; s <= 4; ++s) add("t", 'a', s);
  for (uint64_t s = 1; s <= 3; ++s) add("t", 'b', s);
  add("t", 'c', 7);
  add("u", 'a', 9);
  config.limits.max_batch_bytes = 8;  // two per batch: paging via the since cursor
  SyncServer server(archive, config);
  auto items =
      server.respond_all(peer(1), {5, SinceQuery{"t", {{Bytes{'a'}, 2}, {Bytes{'c'}, 7}}}}, t0);
  EXPECT_EQ(messages(items, 5), (std::vector<std::string>{"a:3", "a:4", "b:1", "b:2", "b:3"}));
}

TEST_F(SyncServerTest, Errors) {
  add("t", 'a', 1);
  config.limits.max_range_span = 10;
  config.limits.max_count = 5;
  config.limits.max_watermarks = 1;
  SyncServer server(archive, config);
  auto p = peer(1);
  EXPECT_EQ(error(server.respond_all(p, {1, LatestQuery{"nope", 1}}, t0)).code,
            ErrorCode::unknown_topic);
  EXPECT_EQ(error(server.respond_all(p, {1, RangeQuery{"t", Bytes{'a'}, 5, 4}}, t0)).code,
            ErrorCode::bad_range);
  EXPECT_EQ(error(server.respond_all(p, {1, RangeQuery{"t", Bytes{'a'}, 1, 11}}, t0)).code,
            ErrorCode::bad_range);
  EXPECT_EQ(error(server.respond_all(p, {1, LatestQuery{"t", 6}}, t0)).code, ErrorCode::too_large);
  EXPECT_EQ(
      error(server.respond_all(p, {1, SinceQuery{"t", {{Bytes{1}, 1}, {Bytes{2}, 1}}}}, t0)).code,
      ErrorCode::too_large);
  auto items = server.respond_all(p, {77, RangeQuery{"t", Bytes{'a'}, 1, 10}}, t0);
  EXPECT_EQ(messages(items, 77), std::vector<std::string>{"a:1"});
  EXPECT_EQ(server.stats().errors, 5u);
}

TEST_F(SyncServerTest, RateLimitPerPeerRefills) {
  add("t", 'a', 1);
  config.burst = 3;
  config.requests_per_second = 2;
  SyncServer server(archive, config);
  SyncRequest req{1, LatestQuery{"t", 1}};
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(std::holds_alternative<Batch>(server.respond_all(peer(1), req, t0)[0].item));
  EXPECT_EQ(error(server.respond_all(peer(1), req, t0)).code, ErrorCode::rate_limited);
  // Another peer has its own bucket.
  EXPECT_TRUE(std::holds_alternative<Batch>(server.respond_all(peer(2), req, t0)[0].item));
  // Half a second refills one token.
  EXPECT_TRUE(std::holds_alternative<Batch>(server.respond_all(peer(1), req, t0 + 500ms)[0].item));
  EXPECT_EQ(error(server.respond_all(peer(1), req, t0 + 500ms)).code, ErrorCode::rate_limited);
  // Bad requests cost tokens too.
  EXPECT_EQ(error(server.respond_all(peer(3), {1, LatestQuery{"x", 1}}, t0)).code,
            ErrorCode::unknown_topic);
  EXPECT_EQ(server.stats().rate_limited, 2u);
}

TEST(RateLimiter, FullTableForgetsRefilledPeersFirst) {
  RateLimiter limiter(1.0, 2.0, 2);
  EXPECT_TRUE(limiter.allow(peer(1), t0));
  EXPECT_TRUE(limiter.allow(peer(2), t0));
  EXPECT_FALSE(limiter.allow(peer(3), t0));      // table full, nobody refilled
  EXPECT_TRUE(limiter.allow(peer(3), t0 + 2s));  // both refilled: forgotten
  EXPECT_EQ(limiter.tracked(), 1u);
}

// Finding 8: many requesters at once (Sybils, or every subscriber after one jump) share a
// total budget; the refusal says the archive is busy.
TEST_F(SyncServerTest, TotalRateLimitAnswersBusy) {
  add("t", 'a', 1);
  config.burst = 5;
  config.total_burst = 3;
  config.total_requests_per_second = 1;
  SyncServer server(archive, config);
  SyncRequest req{1, LatestQuery{"t", 1}};
  for (int i = 1; i <= 3; ++i)
    EXPECT_TRUE(std::holds_alternative<Batch>(server.respond_all(peer(i), req, t0)[0].item));
  auto refused = error(server.respond_all(peer(4), req, t0));
  EXPECT_EQ(refused.code, ErrorCode::rate_limited);
  EXPECT_NE(refused.message.find("busy"), std::string::npos);
  // A refusal by the shared bucket costs the peer nothing: one token after a second.
  EXPECT_TRUE(std::holds_alternative<Batch>(server.respond_all(peer(4), req, t0 + 1s)[0].item));
}

// An archive whose reads fail.
struct BrokenArchive : MemoryArchive {
  Result<QueryResult> range(const TopicId&, BytesView, uint64_t, uint64_t, size_t) override {
    return fail(Errc::io, "disk gone");
  }
};

TEST(SyncServer, ArchiveFailureIsInternal) {
  BrokenArchive archive;
  ASSERT_TRUE(archive.put("t", Bytes{1}, 1, Bytes{1}, w0));
  SyncServer server(archive);
  auto items = server.respond_all(peer(1), {3, RangeQuery{"t", Bytes{1}, 1, 1}}, t0);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(std::get<ErrorReply>(items[0].item).code, ErrorCode::internal);
}

TEST(SyncServer, ResponderYieldsOneItemAtATime) {
  MemoryArchive archive;
  for (uint64_t s = 1; s <= 3; ++s) ASSERT_TRUE(archive.put("t", Bytes{1}, s, Bytes(10, 0), w0));
  ServerConfig config;
  config.limits.max_batch_bytes = 10;
  SyncServer server(archive, config);
  auto r = server.handle(peer(1), {1, RangeQuery{"t", Bytes{1}, 1, 3}}, t0);
  int items = 0;
  while (auto item = r.next()) {
    ++items;
    EXPECT_EQ(std::get<Batch>(item->item).messages.size(), 1u);
  }
  EXPECT_EQ(items, 3);
  EXPECT_TRUE(r.done());
  EXPECT_FALSE(r.next());
}

TEST(MemoryArchive, RetentionByCountAndAge) {
  MemoryArchive archive(Retention{3, std::chrono::seconds(60)});
  for (uint64_t s = 1; s <= 5; ++s) ASSERT_TRUE(archive.put("t", Bytes{1}, s, Bytes{1}, w0));
  EXPECT_EQ(archive.size("t"), 3u);
  EXPECT_FALSE(*archive.put("t", Bytes{1}, 5, Bytes{1}, w0));  // duplicate
  ASSERT_TRUE(archive.put("t", Bytes{1}, 6, Bytes{1}, w0 + std::chrono::seconds(61)));
  EXPECT_EQ(archive.size("t"), 1u);
}

}  // namespace
}  // namespace p2pmq::sync
