#include "sync/store/archive_store.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "sync/memory_archive.hpp"

namespace p2pmq::sync {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const WallTime w0 = WallTime(std::chrono::seconds(1'700'000'000));

// A fresh directory per test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("p2pmq-archive-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::unique_ptr<ArchiveStore> open_store(const TempDir& dir, ArchiveOptions options = {}) {
  auto store = ArchiveStore::open(dir.path.string(), options);
  if (!store) ADD_FAILURE() << store.error().to_string();
  return store ? std::move(*store) : nullptr;
}

Bytes body(uint8_t origin, uint64_t seqno) {
  return to_bytes(std::to_string(origin) + ":" + std::to_string(seqno));
}

std::vector<uint64_t> seqnos(const QueryResult& r) {
  std::vector<uint64_t> out;
  for (const auto& m : r.messages) out.push_back(m.seqno);
  return out;
}

TEST(ArchiveStore, PutAndQuery) {
  TempDir dir;
  auto store = open_store(dir);
  ASSERT_TRUE(store);
  for (uint64_t s = 1; s <= 5; ++s)
    ASSERT_TRUE(*store->put("t", Bytes{1}, s, body(1, s), w0 + std::chrono::seconds(s)));
  for (uint64_t s = 1; s <= 3; ++s) ASSERT_TRUE(*store->put("t", Bytes{2}, s, body(2, s), w0));
  EXPECT_FALSE(*store->put("t", Bytes{1}, 3, body(1, 3), w0));  // duplicate
  EXPECT_TRUE(store->has_topic("t"));
  EXPECT_FALSE(store->has_topic("u"));
  EXPECT_EQ(store->size("t"), 8u);

  auto latest = store->latest("t", 4, 1 << 20);
  ASSERT_TRUE(latest);
  ASSERT_EQ(latest->messages.size(), 4u);
  EXPECT_EQ(latest->messages[0].message, body(1, 5));  // oldest of the newest four
  EXPECT_EQ(latest->messages[3].message, body(2, 3));
  EXPECT_EQ(latest->messages[0].received, w0 + 5s);

  auto range = store->range("t", Bytes{1}, 2, 4, 1 << 20);
  EXPECT_EQ(seqnos(*range), (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_TRUE(range->complete);
  range = store->range("t", Bytes{1}, 2, 4, 1);  // max_bytes: still one message
  EXPECT_EQ(seqnos(*range), (std::vector<uint64_t>{2}));
  EXPECT_FALSE(range->complete);

  auto since = store->since("t", {{Bytes{1}, 3}}, std::nullopt, 1 << 20);
  EXPECT_EQ(seqnos(*since), (std::vector<uint64_t>{4, 5, 1, 2, 3}));
  since = store->since("t", {{Bytes{1}, 3}}, Position{Bytes{1}, 5}, 1 << 20);
  EXPECT_EQ(seqnos(*since), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(since->messages[0].origin, Bytes{2});
}

TEST(ArchiveStore, KeysDoNotBleedAcrossTopicsOrOrigins) {
  TempDir dir;
  auto store = open_store(dir);
  // Origins and topics that are prefixes of one another.
  ASSERT_TRUE(store->put("a", Bytes{1}, 1, body(1, 1), w0));
  ASSERT_TRUE(store->put("a", Bytes{1, 0}, 1, body(10, 1), w0));
  ASSERT_TRUE(store->put("ab", Bytes{1}, 2, body(1, 2), w0));
  EXPECT_EQ(store->range("a", Bytes{1}, 0, UINT64_MAX, 1 << 20)->messages.size(), 1u);
  EXPECT_EQ(store->since("a", {}, std::nullopt, 1 << 20)->messages.size(), 2u);
  EXPECT_EQ(store->latest("ab", 10, 1 << 20)->messages.size(), 1u);
}

TEST(ArchiveStore, RetentionByCountOnPut) {
  TempDir dir;
  ArchiveOptions options;
  options.retention.max_messages = 3;
  auto store = open_store(dir, options);
  store->set_retention("big", Retention{100, {}});
  for (uint64_t s = 1; s <= 10; ++s) {
    ASSERT_TRUE(store->put("t", Bytes{1}, s, body(1, s), w0));
    ASSERT_TRUE(store->put("big", Bytes{1}, s, body(1, s), w0));
  }
  EXPECT_EQ(store->size("t"), 3u);
  EXPECT_EQ(seqnos(*store->range("t", Bytes{1}, 1, 10, 1 << 20)),
            (std::vector<uint64_t>{8, 9, 10}));
  EXPECT_EQ(store->size("big"), 10u);
}

// Finding 6: one publisher flooding a topic replaces its own messages, not the others'.
TEST(ArchiveStore, PerOriginQuotaKeepsOtherOriginsHistory) {
  TempDir dir;
  ArchiveOptions options;
  options.retention = Retention{10, {}, 4};
  auto store = open_store(dir, options);
  for (uint64_t s = 1; s <= 5; ++s) ASSERT_TRUE(store->put("t", Bytes{1}, s, body(1, s), w0));
  for (uint64_t s = 1; s <= 1000; ++s) ASSERT_TRUE(store->put("t", Bytes{9}, s, body(9, s), w0));
  // The honest origin keeps its newest 4 (its own quota), the flooder only its newest 4.
  EXPECT_EQ(seqnos(*store->range("t", Bytes{1}, 1, 10, 1 << 20)),
            (std::vector<uint64_t>{2, 3, 4, 5}));
  EXPECT_EQ(seqnos(*store->range("t", Bytes{9}, 1, 1000, 1 << 20)),
            (std::vector<uint64_t>{997, 998, 999, 1000}));
  EXPECT_EQ(store->size("t"), 8u);
  auto latest = store->latest("t", 100, 1 << 20);
  EXPECT_EQ(latest->messages.size(), 8u);
  // Counts survive a reopen, and the topic-wide bound still applies, oldest arrival first.
  ASSERT_TRUE(store->close());
  store = open_store(dir, options);
  EXPECT_EQ(store->size("t"), 8u);
  for (uint8_t o = 2; o <= 4; ++o) ASSERT_TRUE(store->put("t", Bytes{o}, 1, body(o, 1), w0));
  EXPECT_EQ(store->size("t"), 10u);
  EXPECT_EQ(seqnos(*store->range("t", Bytes{1}, 1, 10, 1 << 20)), (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(store->size("t"), 10u);
}

TEST(ArchiveStore, RetentionByAgeOnPutAndPrune) {
  TempDir dir;
  ArchiveOptions options;
  options.retention.max_age = 60s;
  auto store = open_store(dir, options);
  for (uint64_t s = 1; s <= 5; ++s)
    ASSERT_TRUE(store->put("t", Bytes{1}, s, body(1, s), w0 + std::chrono::seconds(10 * s)));
  ASSERT_TRUE(store->put("u", Bytes{1}, 1, body(1, 1), w0));
  EXPECT_EQ(store->size("t"), 5u);
  // put prunes its own topic: at w0+75s everything received before w0+15s goes.
  ASSERT_TRUE(store->put("t", Bytes{1}, 6, body(1, 6), w0 + 75s));
  EXPECT_EQ(seqnos(*store->range("t", Bytes{1}, 1, 10, 1 << 20)),
            (std::vector<uint64_t>{2, 3, 4, 5, 6}));
  // prune(now) covers every topic, idle ones included.
  auto removed = store->prune(w0 + 105s);
  ASSERT_TRUE(removed);
  EXPECT_EQ(*removed, 4u);  // 2, 3, 4 of t and the one of u
  EXPECT_EQ(seqnos(*store->range("t", Bytes{1}, 1, 10, 1 << 20)), (std::vector<uint64_t>{5, 6}));
  EXPECT_EQ(store->size("u"), 0u);
  EXPECT_TRUE(store->has_topic("u"));  // still served, now empty
}

TEST(ArchiveStore, ReopenAfterClose) {
  TempDir dir;
  {
    auto store = open_store(dir);
    for (uint64_t s = 1; s <= 4; ++s) ASSERT_TRUE(store->put("t", Bytes{1}, s, body(1, s), w0));
    ASSERT_TRUE(store->close());
    EXPECT_FALSE(store->is_open());
    EXPECT_EQ(store->latest("t", 1, 100).error().code, Errc::closed);
    EXPECT_EQ(store->put("t", Bytes{1}, 9, body(1, 9), w0).error().code, Errc::closed);
  }
  auto store = open_store(dir, ArchiveOptions{Durability::process_crash, Retention{5, {}}, 256});
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->has_topic("t"));
  EXPECT_EQ(store->size("t"), 4u);
  EXPECT_EQ(store->total_size(), 4u);  // what Status reports after an archive restart
  EXPECT_FALSE(*store->put("t", Bytes{1}, 2, body(1, 2), w0));
  // Arrival numbering continues: the new put is the newest, and retention counts the old ones.
  ASSERT_TRUE(store->put("t", Bytes{2}, 1, body(2, 1), w0));
  ASSERT_TRUE(store->put("t", Bytes{2}, 2, body(2, 2), w0));
  auto latest = store->latest("t", 2, 1 << 20);
  EXPECT_EQ(latest->messages[1].message, body(2, 2));
  EXPECT_EQ(store->size("t"), 5u);
  EXPECT_EQ(seqnos(*store->range("t", Bytes{1}, 1, 4, 1 << 20)), (std::vector<uint64_t>{2, 3, 4}));
}

TEST(ArchiveStore, PowerLossDurabilityWrites) {
  TempDir dir;
  auto store = open_store(dir, ArchiveOptions{Durability::power_loss, Retention{}, 256});
  for (uint64_t s = 1; s <= 20; ++s) ASSERT_TRUE(store->put("t", Bytes{1}, s, body(1, s), w0));
  ASSERT_TRUE(store->close());
  store = open_store(dir);
  EXPECT_EQ(store->size("t"), 20u);
}

TEST(ArchiveStore, RefusesOversizedKeys) {
  TempDir dir;
  auto store = open_store(dir);
  EXPECT_EQ(store->put("t", Bytes(256, 1), 1, Bytes{1}, w0).error().code, Errc::limit_exceeded);
  EXPECT_EQ(store->put(std::string(70'000, 't'), Bytes{1}, 1, Bytes{1}, w0).error().code,
            Errc::limit_exceeded);
}

// The store and the in-memory reference answer the same random workload identically.
TEST(ArchiveStore, MatchesMemoryArchive) {
  TempDir dir;
  Retention retention{25, 40s};
  ArchiveOptions options;
  options.retention = retention;
  auto store = open_store(dir, options);
  MemoryArchive memory(retention);
  std::mt19937_64 rng(7);
  const std::vector<TopicId> topics = {"x", "xy"};
  const std::vector<Bytes> origins = {Bytes{1}, Bytes{1, 2}, Bytes{2}, Bytes{0, 0, 0}};
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  WallTime now = w0;
  for (int i = 0; i < 600; ++i) {
    now += std::chrono::milliseconds(rng() % 400);
    const auto& topic = topics[pick(2)];
    const auto& origin = origins[pick(4)];
    uint64_t seqno = 1 + pick(40);
    Bytes message(1 + pick(30), static_cast<uint8_t>(i));
    auto a = store->put(topic, origin, seqno, message, now);
    auto b = memory.put(topic, origin, seqno, message, now);
    ASSERT_TRUE(a && b);
    ASSERT_EQ(*a, *b) << i;
  }
  for (const auto& topic : topics) {
    for (size_t max_bytes : {size_t{1}, size_t{40}, size_t{1} << 20}) {
      auto la = store->latest(topic, 10, max_bytes), lb = memory.latest(topic, 10, max_bytes);
      EXPECT_EQ(la->messages, lb->messages);
      EXPECT_EQ(la->complete, lb->complete);
      for (const auto& origin : origins) {
        auto ra = store->range(topic, origin, 5, 30, max_bytes);
        auto rb = memory.range(topic, origin, 5, 30, max_bytes);
        EXPECT_EQ(ra->messages, rb->messages);
        EXPECT_EQ(ra->complete, rb->complete);
      }
      // Page through since() with its cursor on both.
      std::vector<Watermark> marks = {{origins[0], 20}, {origins[3], 40}};
      std::optional<Position> pa, pb;
      std::vector<StoredMessage> all_a, all_b;
      for (int page = 0; page < 1000; ++page) {
        auto sa = store->since(topic, marks, pa, max_bytes);
        auto sb = memory.since(topic, marks, pb, max_bytes);
        ASSERT_EQ(sa->messages, sb->messages);
        all_a.insert(all_a.end(), sa->messages.begin(), sa->messages.end());
        if (sa->complete) break;
        pa = pb = Position{sa->messages.back().origin, sa->messages.back().seqno};
      }
      EXPECT_FALSE(all_a.empty());
      for (size_t i = 1; i < all_a.size(); ++i) {
        const auto& p = all_a[i - 1];
        const auto& q = all_a[i];
        EXPECT_TRUE(origin_less(p.origin, q.origin) || (p.origin == q.origin && p.seqno < q.seqno));
      }
    }
  }
}

// An acknowledged put survives kill -9 of the writer (Durability::process_crash: the WAL write
// reached the OS before put() returned).
TEST(ArchiveStore, AckedPutsSurviveKill9) {
  TempDir dir;
  constexpr uint64_t kAcked = 300;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    ArchiveOptions options;
    options.retention.max_messages = uint64_t{1} << 40;
    auto store = ArchiveStore::open(dir.path.string(), options);
    if (!store) ::_exit(2);
    for (uint64_t s = 1;; ++s) {
      if (!(*store)->put("t", Bytes{1}, s, body(1, s), w0)) ::_exit(3);
      std::string line = "acked " + std::to_string(s) + "\n";
      if (::write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        ::_exit(4);
    }
  }
  ::close(fds[1]);
  FILE* in = ::fdopen(fds[0], "r");
  ASSERT_NE(in, nullptr);
  char line[64];
  const std::string want = "acked " + std::to_string(kAcked) + "\n";
  bool seen = false;
  while (!seen && std::fgets(line, sizeof line, in)) seen = want == line;
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  std::fclose(in);
  ASSERT_TRUE(seen) << "writer died early, status " << status;
  ASSERT_TRUE(WIFSIGNALED(status));

  auto store = open_store(dir);
  ASSERT_TRUE(store);
  auto got = store->range("t", Bytes{1}, 1, kAcked, 1 << 20);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->messages.size(), kAcked);
  EXPECT_GE(store->size("t"), kAcked);
}

}  // namespace
}  // namespace p2pmq::sync
