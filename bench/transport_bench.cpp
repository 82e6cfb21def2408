// One connection's per-byte CPU work, both ends, in memory: the application's write ->
// yamux framing -> Noise encrypt -> (wire) -> Noise decrypt -> yamux parse -> StreamData, with
// the window updates travelling back the same way. This is the ceiling for single-stream
// throughput over a real socket (target over loopback: >= 600 MB/s); the kernel, asio and the
// host's stream buffering come on top.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <variant>

#include "core/bytes.hpp"
#include "crypto/aead.hpp"
#include "net/noise.hpp"
#include "net/yamux.hpp"

namespace p2pmq {
namespace {

// As host/connection.cpp reads the socket: at most this many wire bytes per decrypt() call,
// so frames straddle reads just as they do over TCP.
constexpr size_t kReadChunk = 256 * 1024;

crypto::AeadKey key_of(uint8_t v) {
  crypto::AeadKey k{};
  k.fill(v);
  return k;
}

yamux::Config bench_config() {
  yamux::Config c;
  c.keepalive_interval = std::chrono::milliseconds(0);
  c.measure_rtt = false;  // in memory the RTT is ~0: no window auto-tuning
  return c;
}

// How an end moves bytes between yamux and Noise.
enum class Path {
  // As host/connection.cpp does: yamux output swapped into a reused buffer, sealed and opened
  // in place into buffers that only grow (no per-call allocation or zero-filling).
  kConnection,
  // The convenience calls: take_output() + encrypt(Bytes&), decrypt(Bytes&).
  kSimple,
};

// One end of the connection: its muxer, its Noise session and the buffers the host's read
// and write loops keep.
struct End {
  End(Path path, bool client, const crypto::AeadKey& send, const crypto::AeadKey& recv)
      : path(path), mux(client, bench_config(), {}), noise(send, recv) {}

  Path path;
  yamux::Session mux;
  noise::Session noise;
  Bytes out;   // write loop: yamux frames
  Bytes wire;  // write loop: this end's encrypted output
  size_t wire_len = 0;
  Bytes plaintext;  // read loop: decrypted input
  size_t received = 0;

  BytesView wire_bytes() const { return BytesView(wire).first(wire_len); }

  // Write loop: drain the muxer's frames into Noise frames.
  void write_out() {
    wire_len = 0;
    if (!mux.has_output()) return;
    if (path == Path::kConnection) {
      mux.swap_output(out);
      const size_t need = noise::Session::sealed_size(out.size());
      if (need > wire.size()) wire.resize(need);
      wire_len = noise.encrypt_into(out, wire.data());
    } else {
      wire.clear();
      noise.encrypt(mux.take_output(), wire);
      wire_len = wire.size();
    }
  }

  // Read loop: decrypt the peer's wire bytes in socket-sized reads, feed the muxer, consume
  // what arrives (an application that keeps up).
  bool read_in(BytesView in) {
    while (!in.empty()) {
      BytesView chunk = in.first(std::min(in.size(), kReadChunk));
      in = in.subspan(chunk.size());
      BytesView clear;
      if (path == Path::kConnection) {
        const size_t room = noise.max_plaintext(chunk.size());
        if (room > plaintext.size()) plaintext.resize(room);
        auto n = noise.decrypt_into(chunk, plaintext.data());
        if (!n) return false;
        clear = BytesView(plaintext).first(*n);
      } else {
        plaintext.clear();
        if (!noise.decrypt(chunk, plaintext)) return false;
        clear = plaintext;
      }
      if (!mux.feed(clear, {})) return false;
      yamux::Event e;
      while (mux.poll_event(e)) {
        if (auto* d = std::get_if<yamux::StreamData>(&e)) {
          received += d->data.size();
          mux.consumed(d->id, d->data.size());
        }
      }
    }
    return true;
  }
};

void run(benchmark::State& state, Path path) {
  const auto n = static_cast<size_t>(state.range(0));
  End client(path, true, key_of(1), key_of(2)), server(path, false, key_of(2), key_of(1));
  const yamux::StreamId id = *client.mux.open_stream();
  const Bytes data(n, 0x5a);
  for (auto _ : state) {
    const size_t target = server.received + n;
    BytesView rest(data);
    while (server.received < target) {
      if (!rest.empty()) rest = rest.subspan(client.mux.write(id, rest));
      client.write_out();
      bool ok = server.read_in(client.wire_bytes());
      server.write_out();
      ok = ok && client.read_in(server.wire_bytes());
      if (!ok) {
        state.SkipWithError("transport error");
        break;
      }
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}

void BM_TransportOneStream(benchmark::State& state) {
  run(state, Path::kConnection);
}
BENCHMARK(BM_TransportOneStream)->Arg(64 << 10)->Arg(1 << 20);

void BM_TransportOneStreamSimple(benchmark::State& state) {
  run(state, Path::kSimple);
}
BENCHMARK(BM_TransportOneStreamSimple)->Arg(64 << 10)->Arg(1 << 20);

}  // namespace
}  // namespace p2pmq
