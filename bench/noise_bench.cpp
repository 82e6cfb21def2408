// Noise: the XX handshake (every new connection) and the transport ciphers (every byte).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>

#include "core/bytes.hpp"
#include "crypto/keys.hpp"
#include "net/noise.hpp"

namespace p2pmq::noise {
namespace {

void check(bool ok, benchmark::State& state, const char* what) {
  if (!ok) state.SkipWithError(what);
}

// A complete XX handshake in memory: fresh static and ephemeral keys, identity signatures and
// their verification on both sides, as one real connection does.
void BM_NoiseHandshake(benchmark::State& state) {
  const auto init_id = crypto::PrivateKey::generate();
  const auto resp_id = crypto::PrivateKey::generate();
  for (auto _ : state) {
    Handshake init(true, init_id), resp(false, resp_id);
    init.set_stream_muxers({"/yamux/1.0.0"});
    resp.set_stream_muxers({"/yamux/1.0.0"});
    bool ok = init.start() && resp.start();
    ok = ok && resp.feed(init.take_output());  // -> e
    ok = ok && init.feed(resp.take_output());  // <- e, ee, s, es
    ok = ok && resp.feed(init.take_output());  // -> s, se
    ok = ok && init.complete() && resp.complete();
    check(ok, state, "handshake failed");
    Session a = init.into_session();
    Session b = resp.into_session();
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(b);
  }
  state.SetItemsProcessed(state.iterations());  // handshakes/s
}
BENCHMARK(BM_NoiseHandshake)->Unit(benchmark::kMicrosecond);

crypto::AeadKey key_of(uint8_t v) {
  crypto::AeadKey k{};
  k.fill(v);
  return k;
}

// Plaintext -> length-prefixed frames of at most 65519 bytes, sealed into one buffer.
void BM_NoiseEncrypt(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  Session a(key_of(1), key_of(2));
  Bytes plaintext(n, 0x5a), wire;
  for (auto _ : state) {
    wire.clear();
    a.encrypt(plaintext, wire);
    benchmark::DoNotOptimize(wire.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_NoiseEncrypt)->Arg(64 << 10)->Arg(1 << 20);

// The same wire bytes decrypted every iteration: the receive nonce is rewound (test hook), so
// only decryption is measured.
void BM_NoiseDecrypt(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  Session a(key_of(1), key_of(2)), b(key_of(2), key_of(1));
  Bytes plaintext(n, 0x5a), wire, out;
  a.encrypt(plaintext, wire);
  for (auto _ : state) {
    b.recv_cipher_for_test().set_nonce(0);
    out.clear();
    check(b.decrypt(wire, out).has_value(), state, "decrypt failed");
    benchmark::DoNotOptimize(out.data());
  }
  check(out == plaintext, state, "round trip mismatch");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_NoiseDecrypt)->Arg(64 << 10)->Arg(1 << 20);

// Encrypt on one side and decrypt on the other: the CPU both ends of a connection spend.
void BM_NoiseRoundTrip(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  Session a(key_of(1), key_of(2)), b(key_of(2), key_of(1));
  Bytes plaintext(n, 0x5a), wire, out;
  for (auto _ : state) {
    wire.clear();
    out.clear();
    a.encrypt(plaintext, wire);
    check(b.decrypt(wire, out).has_value(), state, "decrypt failed");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_NoiseRoundTrip)->Arg(64 << 10)->Arg(1 << 20);

}  // namespace
}  // namespace p2pmq::noise
