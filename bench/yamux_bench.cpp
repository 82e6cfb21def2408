// Yamux: two sessions back to back in memory, no IO. Pings and window auto-tuning are off so
// every run moves the same frames (the spec's fixed 256 KiB window per stream).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "net/yamux.hpp"

namespace p2pmq::yamux {
namespace {

using TimePoint = Session::TimePoint;

Config bench_config() {
  Config c;
  c.keepalive_interval = std::chrono::milliseconds(0);
  c.measure_rtt = false;
  return c;
}

struct Pair {
  TimePoint now{};
  Session client{true, bench_config(), now};
  Session server{false, bench_config(), now};
  size_t received = 0;  // StreamData bytes seen by the server

  // Moves frames both ways until neither side has output. The server consumes what it
  // receives at once (an application that keeps up), which returns window credit.
  bool pump() {
    while (client.has_output() || server.has_output()) {
      if (client.has_output() && !server.feed(client.take_output(), now)) return false;
      Event e;
      while (server.poll_event(e)) {
        if (auto* d = std::get_if<StreamData>(&e)) {
          received += d->data.size();
          server.consumed(d->id, d->data.size());
        }
      }
      if (server.has_output() && !client.feed(server.take_output(), now)) return false;
      while (client.poll_event(e)) {
      }
    }
    return true;
  }
};

// One stream, the application writing 1 MiB at a time: data frames out, window updates back.
void BM_YamuxOneStream(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  Pair p;
  const StreamId id = *p.client.open_stream();
  const Bytes data(n, 0x5a);
  for (auto _ : state) {
    const size_t target = p.received + n;
    BytesView rest(data);
    while (p.received < target) {
      if (!rest.empty()) rest = rest.subspan(p.client.write(id, rest));
      if (!p.pump()) {
        state.SkipWithError("yamux error");
        break;
      }
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_YamuxOneStream)->Arg(1 << 20);

// 64 streams interleaved: each writes range(0) bytes per round, round robin.
void BM_YamuxManyStreams(benchmark::State& state) {
  const auto chunk = static_cast<size_t>(state.range(0));
  constexpr size_t kStreams = 64;
  Pair p;
  std::vector<StreamId> ids;
  for (size_t i = 0; i < kStreams; ++i) ids.push_back(*p.client.open_stream());
  const Bytes data(chunk, 0x5a);
  for (auto _ : state) {
    const size_t target = p.received + kStreams * chunk;
    std::vector<BytesView> rest(kStreams, BytesView(data));
    while (p.received < target) {
      for (size_t i = 0; i < kStreams; ++i) {
        if (!rest[i].empty()) rest[i] = rest[i].subspan(p.client.write(ids[i], rest[i]));
      }
      if (!p.pump()) {
        state.SkipWithError("yamux error");
        break;
      }
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kStreams * chunk));
}
BENCHMARK(BM_YamuxManyStreams)->Arg(4 << 10)->Arg(64 << 10);

// Parsing small data frames: 1024 frames of range(0) payload bytes, round robin over 8 streams
// (so no two neighbours coalesce into one event, as with interleaved small messages).
void BM_YamuxParseSmallFrames(benchmark::State& state) {
  const auto payload = static_cast<uint32_t>(state.range(0));
  constexpr size_t kFrames = 1024;
  constexpr size_t kStreams = 8;
  Pair p;
  std::vector<StreamId> ids;
  for (size_t i = 0; i < kStreams; ++i) ids.push_back(*p.client.open_stream());
  // Write one payload per stream per round, taking the frames as the client emits them.
  const Bytes data(payload, 0x5a);
  Bytes wire;
  for (size_t f = 0; f < kFrames; ++f) {
    p.client.write(ids[f % kStreams], data);
    append(wire, p.client.take_output());
  }
  // The wire starts with the streams' SYNs: the server learns the streams once, outside the
  // loop, then parses the same data frames every iteration.
  Session& server = p.server;
  const size_t syn_bytes = kStreams * kHeaderSize;
  if (!server.feed(BytesView(wire).first(syn_bytes), p.now)) state.SkipWithError("bad SYNs");
  const BytesView frames = BytesView(wire).subspan(syn_bytes);
  Event e;
  while (server.poll_event(e)) {
  }
  for (auto _ : state) {
    if (!server.feed(frames, p.now)) {
      state.SkipWithError("yamux error");
      break;
    }
    size_t events = 0;
    while (server.poll_event(e)) {
      if (auto* d = std::get_if<StreamData>(&e)) server.consumed(d->id, d->data.size());
      ++events;
    }
    benchmark::DoNotOptimize(events);
    (void)server.take_output();  // window updates: nobody reads them
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kFrames));  // frames/s
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * frames.size()));
}
BENCHMARK(BM_YamuxParseSmallFrames)->Arg(16)->Arg(256);

}  // namespace
}  // namespace p2pmq::yamux
