#include "agent/state.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

namespace p2pmq::agent {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = fs::temp_directory_path() /
           (std::string("p2pmq-state-") + info->test_suite_name() + "-" + info->name() + "-" +
            std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

std::unique_ptr<StateStore> open_store(const TempDir& dir, bool sync_writes = false) {
  auto s = StateStore::open(dir.str(), sync_writes);
  EXPECT_TRUE(s) << s.error().message;
  return s ? std::move(*s) : nullptr;
}

uint64_t take(StateStore& s, const std::string& topic) {
  auto v = s.next_seqno(topic);
  EXPECT_TRUE(v) << v.error().message;
  return v ? *v : 0;
}

std::vector<WatermarkRecord> sorted(std::vector<WatermarkRecord> v) {
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return std::tie(a.topic, a.origin) < std::tie(b.topic, b.origin);
  });
  return v;
}

TEST(StateStore, SeqnosAreContiguousPerTopicFromOne) {
  TempDir dir;
  auto s = open_store(dir);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->last_seqno("a"), 0u);
  for (uint64_t i = 1; i <= 100; ++i) {
    EXPECT_EQ(take(*s, "a"), i);
    if (i % 3 == 0) {
      EXPECT_EQ(take(*s, "b"), i / 3);
    }
  }
  EXPECT_EQ(s->last_seqno("a"), 100u);
  EXPECT_EQ(s->last_seqno("b"), 33u);
  EXPECT_EQ(s->last_seqno("c"), 0u);
}

TEST(StateStore, CountersPersistAcrossReopen) {
  TempDir dir;
  for (bool sync_writes : {false, true}) {
    {
      auto s = open_store(dir, sync_writes);
      ASSERT_TRUE(s);
      for (int i = 0; i < 5; ++i) take(*s, "blocks");
      take(*s, "tx");
    }
    auto s = open_store(dir, sync_writes);
    ASSERT_TRUE(s);
    const uint64_t blocks = sync_writes ? 10 : 5, tx = sync_writes ? 2 : 1;
    EXPECT_EQ(s->last_seqno("blocks"), blocks);
    EXPECT_EQ(s->last_seqno("tx"), tx);
    EXPECT_EQ(take(*s, "blocks"), blocks + 1);
    ASSERT_TRUE(s->rollback_seqno("blocks", blocks + 1));
  }
}

TEST(StateStore, TopicNamesAreOpaqueBytes) {
  TempDir dir;
  const std::string odd("a/b\0c\xff", 6);
  {
    auto s = open_store(dir);
    ASSERT_TRUE(s);
    EXPECT_EQ(take(*s, ""), 1u);
    EXPECT_EQ(take(*s, odd), 1u);
    EXPECT_EQ(take(*s, odd), 2u);
    ASSERT_TRUE(s->add_subscription(odd));
    // A topic named like another kind's key prefix stays in its own kind.
    ASSERT_TRUE(s->add_subscription("s/x"));
  }
  auto s = open_store(dir);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->last_seqno(""), 1u);
  EXPECT_EQ(s->last_seqno(odd), 2u);
  EXPECT_EQ(s->last_seqno("x"), 0u);
  EXPECT_EQ(s->subscriptions(), (std::vector<std::string>{odd, "s/x"}));
}

TEST(StateStore, RollbackGivesBackOnlyTheLast) {
  TempDir dir;
  {
    auto s = open_store(dir);
    ASSERT_TRUE(s);
    EXPECT_EQ(take(*s, "t"), 1u);
    EXPECT_EQ(take(*s, "t"), 2u);
    ASSERT_TRUE(s->rollback_seqno("t", 2));
    EXPECT_EQ(s->last_seqno("t"), 1u);
    EXPECT_EQ(take(*s, "t"), 2u);  // reused: it was never published
    EXPECT_EQ(take(*s, "t"), 3u);
    // 2 is not the last any more: it stays used.
    ASSERT_TRUE(s->rollback_seqno("t", 2));
    EXPECT_EQ(s->last_seqno("t"), 3u);
    // Never handed out.
    auto r = s->rollback_seqno("t", 4);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::invalid_input);
    EXPECT_FALSE(s->rollback_seqno("t", 0));
    EXPECT_FALSE(s->rollback_seqno("never", 1));
    ASSERT_TRUE(s->rollback_seqno("t", 3));
  }
  auto s = open_store(dir);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->last_seqno("t"), 2u);  // the rollback is persisted too
  EXPECT_EQ(take(*s, "t"), 3u);
  // Back to nothing: the topic is as if never published to.
  ASSERT_TRUE(s->rollback_seqno("t", 3));
  ASSERT_TRUE(s->rollback_seqno("t", 2));
  ASSERT_TRUE(s->rollback_seqno("t", 1));
  EXPECT_EQ(s->last_seqno("t"), 0u);
  s.reset();
  s = open_store(dir);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->last_seqno("t"), 0u);
  EXPECT_EQ(take(*s, "t"), 1u);
}

TEST(StateStore, WatermarksUpsertAndLoad) {
  TempDir dir;
  const Bytes alice = to_bytes("alice"), bob = to_bytes("bob"), empty;
  {
    auto s = open_store(dir);
    ASSERT_TRUE(s);
    EXPECT_TRUE(s->load_watermarks().empty());
    ASSERT_TRUE(s->save_watermarks({}));
    ASSERT_TRUE(s->save_watermarks({{"blocks", alice, 5}, {"blocks", bob, 7}, {"tx", alice, 1}}));
    ASSERT_TRUE(s->save_watermarks({{"blocks", alice, 6}}));
    // Within one call the later record wins. A topic that is a prefix of another stays apart.
    ASSERT_TRUE(
        s->save_watermarks({{"tx", alice, 2}, {"tx", alice, 3}, {"t", to_bytes("xalice"), 9}}));
    ASSERT_TRUE(s->save_watermarks({{"empty-origin", empty, 4}}));
    EXPECT_EQ(sorted(s->load_watermarks()), sorted({{"blocks", alice, 6},
                                                    {"blocks", bob, 7},
                                                    {"tx", alice, 3},
                                                    {"t", to_bytes("xalice"), 9},
                                                    {"empty-origin", empty, 4}}));
  }
  auto s = open_store(dir);
  ASSERT_TRUE(s);
  EXPECT_EQ(sorted(s->load_watermarks()), sorted({{"blocks", alice, 6},
                                                  {"blocks", bob, 7},
                                                  {"tx", alice, 3},
                                                  {"t", to_bytes("xalice"), 9},
                                                  {"empty-origin", empty, 4}}));
  // Counters and subscriptions do not show up as watermarks, nor the reverse.
  take(*s, "blocks");
  ASSERT_TRUE(s->add_subscription("blocks"));
  EXPECT_EQ(s->load_watermarks().size(), 5u);
  EXPECT_EQ(s->last_seqno("blocks"), 1u);
}

TEST(StateStore, Subscriptions) {
  TempDir dir;
  {
    auto s = open_store(dir);
    ASSERT_TRUE(s);
    EXPECT_TRUE(s->subscriptions().empty());
    ASSERT_TRUE(s->add_subscription("tx"));
    ASSERT_TRUE(s->add_subscription("blocks"));
    ASSERT_TRUE(s->add_subscription("blocks"));  // idempotent
    ASSERT_TRUE(s->add_subscription("old"));
    ASSERT_TRUE(s->remove_subscription("old"));
    ASSERT_TRUE(s->remove_subscription("never"));  // idempotent
    EXPECT_EQ(s->subscriptions(), (std::vector<std::string>{"blocks", "tx"}));
  }
  auto s = open_store(dir);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->subscriptions(), (std::vector<std::string>{"blocks", "tx"}));
  ASSERT_TRUE(s->remove_subscription("tx"));
  s.reset();
  s = open_store(dir);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->subscriptions(), std::vector<std::string>{"blocks"});
}

TEST(StateStore, OpenCreatesParentsAndRefusesASecondOpener) {
  TempDir dir;
  TempDir nested_root;
  auto nested = nested_root.path / "data" / "state";
  auto s = StateStore::open(nested.string(), false);
  ASSERT_TRUE(s) << s.error().message;
  // The same database twice (e.g. two agents with one data_dir) is refused, with a reason.
  auto again = StateStore::open(nested.string(), false);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::io);
  EXPECT_NE(again.error().message.find("state store:"), std::string::npos);
  // A path that cannot be a directory.
  std::ofstream(dir.path.string() + ".file") << "x";
  auto bad = StateStore::open(dir.path.string() + ".file/state", false);
  fs::remove(dir.path.string() + ".file");
  EXPECT_FALSE(bad);
}

// ---- kill -9 ----

bool write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// The child: takes seqnos of "t" (and saves a watermark with each), reporting each seqno over
// the pipe once next_seqno has returned it. Never returns: it is SIGKILLed, by itself after
// `count` seqnos, or by the parent at any moment (count 0: until killed). No gtest in here.
[[noreturn]] void crash_child(const std::string& dir, bool sync_writes, int fd, uint64_t count) {
  auto s = StateStore::open(dir, sync_writes);
  if (!s) ::_exit(10);
  for (uint64_t i = 1; count == 0 || i <= count; ++i) {
    auto seqno = (*s)->next_seqno("t");
    if (!seqno) ::_exit(11);
    if (!(*s)->save_watermarks({{"t", to_bytes("origin"), *seqno}})) ::_exit(12);
    if (!write_all(fd, &*seqno, sizeof *seqno)) ::_exit(13);
  }
  ::raise(SIGKILL);
  ::_exit(14);
}

struct CrashResult {
  std::vector<uint64_t> reported;
  int status = 0;
};

// Forks crash_child; with parent_kills_after > 0 the parent sends SIGKILL once it has read
// that many seqnos (so the child dies somewhere inside its loop, maybe mid-write).
CrashResult run_crash_child(const TempDir& dir, bool sync_writes, uint64_t count,
                            uint64_t parent_kills_after) {
  CrashResult out;
  int fds[2];
  if (::pipe(fds) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return out;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return out;
  }
  if (pid == 0) {
    ::close(fds[0]);
    crash_child(dir.str(), sync_writes, fds[1], count);
  }
  ::close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool killed = false;
  uint64_t value = 0;
  size_t have = 0;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      ADD_FAILURE() << "child did not finish in time";
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    ssize_t n = ::read(fds[0], reinterpret_cast<char*>(&value) + have, sizeof value - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child is gone
    have += static_cast<size_t>(n);
    if (have < sizeof value) continue;
    have = 0;
    out.reported.push_back(value);
    if (!killed && parent_kills_after > 0 && out.reported.size() >= parent_kills_after) {
      ::kill(pid, SIGKILL);
      killed = true;  // keep reading what is already in the pipe
    }
  }
  ::close(fds[0]);
  while (::waitpid(pid, &out.status, 0) < 0 && errno == EINTR) {
  }
  return out;
}

void check_after_crash(const TempDir& dir, const CrashResult& crash, uint64_t already) {
  ASSERT_TRUE(WIFSIGNALED(crash.status)) << "child exit status " << WEXITSTATUS(crash.status);
  EXPECT_EQ(WTERMSIG(crash.status), SIGKILL);
  ASSERT_FALSE(crash.reported.empty());
  for (size_t i = 0; i < crash.reported.size(); ++i)
    ASSERT_EQ(crash.reported[i], already + i + 1) << "contiguous from where the last run stopped";
  const uint64_t last_reported = crash.reported.back();

  auto s = open_store(dir);
  ASSERT_TRUE(s);
  // Everything the child saw returned was persisted first; the child may have got one more
  // written that it never reported (killed between the write and the report).
  EXPECT_GE(s->last_seqno("t"), last_reported);
  EXPECT_LE(s->last_seqno("t"), last_reported + 1);
  auto next = s->next_seqno("t");
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_GT(*next, last_reported) << "a seqno was reused after kill -9";
  // The watermark of every reported seqno was written before the report.
  auto marks = s->load_watermarks();
  ASSERT_EQ(marks.size(), 1u);
  EXPECT_EQ(marks[0].topic, "t");
  EXPECT_EQ(marks[0].origin, to_bytes("origin"));
  EXPECT_GE(marks[0].seqno, last_reported);
  EXPECT_LE(marks[0].seqno, s->last_seqno("t"));
}

TEST(StateStoreCrash, KilledByItselfAfterReporting) {
  for (bool sync_writes : {false, true}) {
    SCOPED_TRACE(sync_writes ? "sync_writes" : "WAL without fsync");
    TempDir dir;
    auto crash = run_crash_child(dir, sync_writes, 50, 0);
    ASSERT_EQ(crash.reported.size(), 50u);
    check_after_crash(dir, crash, 0);
    ASSERT_FALSE(HasFatalFailure());
    // Again, on top of the recovered database: the counter continues, never reuses.
    uint64_t before = 0;
    {
      auto s = open_store(dir);
      ASSERT_TRUE(s);
      before = s->last_seqno("t");
    }
    auto second = run_crash_child(dir, sync_writes, 20, 0);
    ASSERT_EQ(second.reported.size(), 20u);
    check_after_crash(dir, second, before);
  }
}

TEST(StateStoreCrash, KilledByTheParentMidLoop) {
  TempDir dir;
  auto crash = run_crash_child(dir, /*sync_writes=*/false, /*count=*/0, /*parent_kills_after=*/200);
  ASSERT_GE(crash.reported.size(), 200u);
  check_after_crash(dir, crash, 0);
}

}  // namespace
}  // namespace p2pmq::agent

namespace p2pmq::agent {
namespace {

TEST(StateStore, DeferredSyncCountersPersistOnceSynced) {
  TempDir dir;
  {
    auto s = open_store(dir, /*sync_writes=*/true);
    ASSERT_TRUE(s);
    for (uint64_t i = 1; i <= 3; ++i) EXPECT_EQ(*s->next_seqno("t", /*defer_sync=*/true), i);
    ASSERT_TRUE(s->sync_wal());
  }
  auto s = open_store(dir, true);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->last_seqno("t"), 3u);
}

// Finding 19: a corrupt state store is a clear error with a way out, not a dead end.
TEST(StateStore, CorruptStoreNamesTheRepairAndRepairKeepsTheCounters) {
  TempDir dir;
  {
    auto s = open_store(dir);
    ASSERT_TRUE(s);
    for (int i = 0; i < 7; ++i) take(*s, "news");
  }
  // Garbage over every MANIFEST: RocksDB cannot find its files any more.
  bool corrupted = false;
  for (const auto& entry : fs::directory_iterator(dir.path)) {
    if (entry.path().filename().string().rfind("MANIFEST-", 0) != 0) continue;
    std::ofstream(entry.path(), std::ios::binary | std::ios::trunc) << std::string(4096, '\x5a');
    corrupted = true;
  }
  ASSERT_TRUE(corrupted);
  auto broken = StateStore::open(dir.str(), false);
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find("--repair-state"), std::string::npos)
      << broken.error().message;
  ASSERT_TRUE(StateStore::repair(dir.str()));
  auto s = open_store(dir);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->last_seqno("news"), 7u) << "the counter survives: seqnos are never reused";
}

}  // namespace
}  // namespace p2pmq::agent
