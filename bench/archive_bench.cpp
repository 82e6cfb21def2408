// The RocksDB archive store (src/sync/store/archive_store.hpp), on disk, one thread:
//
//   BM_Put/<bytes>/<topics>/<durability>   ArchiveStore::put of new messages (increasing seqnos
//                                          of one origin per topic, round robin over the topics),
//                                          default retention (10 000 per topic, so once a topic
//                                          is full each put also deletes its oldest message in
//                                          the same write batch). durability 0: process_crash
//                                          (WAL write(2), no fsync), 1: power_loss (fsync per put)
//   BM_Since/<bytes>                       a full `since` with no watermarks (what a fresh
//                                          subscriber asks) of a 10 000-message topic from 4
//                                          origins, paged as the sync server pages it
//                                          (kMaxBatchBytes per answer, continuing after the last
//                                          Position); one iteration reads the whole topic
//   BM_SinceTail/<bytes>                   `since` with every origin's watermark 100 below its
//                                          head (a subscriber that missed 400 messages)
//   BM_Range/<bytes>                       `range` of one origin's 2 500 seqnos, paged
//   BM_Latest/<bytes>                      `latest` 1 000 (one read, as the server does it)
//
// The databases live under $ARCHIVE_BENCH_DIR (default: the temporary directory); each
// benchmark run opens a fresh one and removes it afterwards. The filesystem under that
// directory decides what an fsync costs: power_loss numbers are the disk's, not the store's.
#include <benchmark/benchmark.h>

#include <unistd.h>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "sync/codec.hpp"
#include "sync/store/archive_store.hpp"

namespace p2pmq::sync {
namespace {

std::filesystem::path base_dir() {
  const char* env = std::getenv("ARCHIVE_BENCH_DIR");
  return env && *env ? std::filesystem::path(env) : std::filesystem::temp_directory_path();
}

// A fresh database directory, removed with the object.
class TempStore {
 public:
  explicit TempStore(ArchiveOptions options) {
    static std::atomic<int> counter{0};
    path_ = base_dir() /
            ("p2pmq-archive-bench-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    auto opened = ArchiveStore::open(path_.string(), options);
    if (opened) store_ = std::move(*opened);
  }
  ~TempStore() {
    if (store_) (void)store_->close();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempStore(const TempStore&) = delete;
  TempStore& operator=(const TempStore&) = delete;
  ArchiveStore* get() const { return store_.get(); }

 private:
  std::filesystem::path path_;
  std::unique_ptr<ArchiveStore> store_;
};

// A peer-id-sized origin (38 bytes, as an Ed25519 identity multihash), distinct per index.
Bytes origin(size_t i) {
  Bytes o(38, 0x5a);
  o[0] = 0x00;
  o[1] = 0x24;
  o[36] = static_cast<uint8_t>(i >> 8);
  o[37] = static_cast<uint8_t>(i);
  return o;
}

Bytes payload(size_t size) {
  Bytes b(size);
  for (size_t i = 0; i < size; ++i) b[i] = static_cast<uint8_t>(i * 131 + 7);
  return b;
}

TopicId topic_name(size_t i) {
  return "bench-topic-" + std::to_string(i);
}

void BM_Put(benchmark::State& state) {
  const auto size = static_cast<size_t>(state.range(0));
  const auto topics = static_cast<size_t>(state.range(1));
  ArchiveOptions options;
  options.durability = state.range(2) ? Durability::power_loss : Durability::process_crash;
  TempStore store(options);
  if (!store.get()) {
    state.SkipWithError("cannot open the archive store");
    return;
  }
  std::vector<TopicId> names;
  std::vector<Bytes> origins;
  for (size_t t = 0; t < topics; ++t) {
    names.push_back(topic_name(t));
    origins.push_back(origin(t));
  }
  std::vector<uint64_t> seqno(topics, 0);
  const Bytes message = payload(size);
  const WallTime now = WallClock::now();
  size_t t = 0;
  for (auto _ : state) {
    auto r = store.get()->put(names[t], origins[t], ++seqno[t], message, now);
    if (!r || !*r) {
      state.SkipWithError("put failed");
      break;
    }
    if (++t == topics) t = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}
BENCHMARK(BM_Put)
    ->ArgNames({"bytes", "topics", "power_loss"})
    ->ArgsProduct({{256, 4096}, {1, 16}, {0}})
    ->ArgsProduct({{256, 4096}, {1, 16}, {1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();  // fsync waits are real time, not CPU time

constexpr size_t kOrigins = 4;
constexpr uint64_t kPerOrigin = 2'500;  // 10 000 messages: the default retention
const TopicId kReadTopic = "bench-read";

// A store holding kOrigins x kPerOrigin messages of `size` bytes in kReadTopic, interleaved by
// arrival as live traffic from 4 publishers would be.
std::unique_ptr<TempStore> filled(size_t size) {
  auto store = std::make_unique<TempStore>(ArchiveOptions{});
  if (!store->get()) return nullptr;
  const Bytes message = payload(size);
  const WallTime now = WallClock::now();
  for (uint64_t s = 1; s <= kPerOrigin; ++s)
    for (size_t o = 0; o < kOrigins; ++o)
      if (!store->get()->put(kReadTopic, origin(o), s, message, now)) return nullptr;
  return store;
}

// Pages through since(watermarks) as the sync server does; returns the messages read.
size_t read_since(ArchiveStore& a, const std::vector<Watermark>& watermarks) {
  size_t n = 0;
  std::optional<Position> after;
  for (;;) {
    auto page = a.since(kReadTopic, watermarks, after, kMaxBatchBytes);
    if (!page || page->messages.empty()) return n;
    n += page->messages.size();
    benchmark::DoNotOptimize(page->messages.back().message.data());
    if (page->complete) return n;
    after = Position{page->messages.back().origin, page->messages.back().seqno};
  }
}

void report_reads(benchmark::State& state, size_t messages, size_t size) {
  state.SetItemsProcessed(static_cast<int64_t>(messages));
  state.SetBytesProcessed(static_cast<int64_t>(messages * size));
}

void BM_Since(benchmark::State& state) {
  const auto size = static_cast<size_t>(state.range(0));
  auto store = filled(size);
  if (!store) {
    state.SkipWithError("cannot fill the archive store");
    return;
  }
  size_t total = 0;
  for (auto _ : state) {
    size_t n = read_since(*store->get(), {});
    if (n != kOrigins * kPerOrigin) {
      state.SkipWithError("since returned the wrong count");
      break;
    }
    total += n;
  }
  report_reads(state, total, size);
}
BENCHMARK(BM_Since)->ArgName("bytes")->Arg(256)->Arg(4096)->Unit(benchmark::kMillisecond);

void BM_SinceTail(benchmark::State& state) {
  const auto size = static_cast<size_t>(state.range(0));
  auto store = filled(size);
  if (!store) {
    state.SkipWithError("cannot fill the archive store");
    return;
  }
  std::vector<Watermark> marks;
  for (size_t o = 0; o < kOrigins; ++o) marks.push_back({origin(o), kPerOrigin - 100});
  size_t total = 0;
  for (auto _ : state) {
    size_t n = read_since(*store->get(), marks);
    if (n != kOrigins * 100) {
      state.SkipWithError("since returned the wrong count");
      break;
    }
    total += n;
  }
  report_reads(state, total, size);
}
BENCHMARK(BM_SinceTail)->ArgName("bytes")->Arg(256)->Arg(4096)->Unit(benchmark::kMicrosecond);

void BM_Range(benchmark::State& state) {
  const auto size = static_cast<size_t>(state.range(0));
  auto store = filled(size);
  if (!store) {
    state.SkipWithError("cannot fill the archive store");
    return;
  }
  const Bytes o = origin(1);
  size_t total = 0;
  for (auto _ : state) {
    uint64_t from = 1;
    size_t n = 0;
    while (from <= kPerOrigin) {
      auto page = store->get()->range(kReadTopic, o, from, kPerOrigin, kMaxBatchBytes);
      if (!page || page->messages.empty()) break;
      n += page->messages.size();
      from = page->messages.back().seqno + 1;
      if (page->complete) break;
    }
    if (n != kPerOrigin) {
      state.SkipWithError("range returned the wrong count");
      break;
    }
    total += n;
  }
  report_reads(state, total, size);
}
BENCHMARK(BM_Range)->ArgName("bytes")->Arg(256)->Arg(4096)->Unit(benchmark::kMillisecond);

void BM_Latest(benchmark::State& state) {
  const auto size = static_cast<size_t>(state.range(0));
  auto store = filled(size);
  if (!store) {
    state.SkipWithError("cannot fill the archive store");
    return;
  }
  size_t total = 0;
  for (auto _ : state) {
    auto r = store->get()->latest(kReadTopic, 1'000, size_t{64} << 20);
    if (!r || r->messages.size() != 1'000) {
      state.SkipWithError("latest returned the wrong count");
      break;
    }
    total += r->messages.size();
  }
  report_reads(state, total, size);
}
BENCHMARK(BM_Latest)->ArgName("bytes")->Arg(256)->Arg(4096)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace p2pmq::sync
