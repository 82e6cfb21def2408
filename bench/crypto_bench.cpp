// Crypto hot paths: ChaCha20-Poly1305 (every Noise byte), SHA-256, Ed25519 sign and verify.
#include <benchmark/benchmark.h>

#include "crypto/aead.hpp"
#include "crypto/hash.hpp"
#include "crypto/keys.hpp"

namespace p2pmq::crypto {
namespace {

void BM_AeadSeal(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  AeadKey key{1};
  AeadNonce nonce{};
  Bytes buf(n + kAeadTag, 0x5a);
  for (auto _ : state) {
    ++nonce[0];
    aead_seal(key, nonce, {}, BytesView(buf).first(n), buf.data());
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_AeadSeal)->Arg(64)->Arg(1024)->Arg(16 * 1024)->Arg(64 * 1024);

void BM_AeadOpen(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  AeadKey key{1};
  AeadNonce nonce{};
  Bytes pt(n, 0x5a), sealed(n + kAeadTag), out(n);
  aead_seal(key, nonce, {}, pt, sealed.data());
  for (auto _ : state) {
    bool ok = aead_open(key, nonce, {}, sealed, out.data());
    benchmark::DoNotOptimize(ok);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_AeadOpen)->Arg(64)->Arg(1024)->Arg(16 * 1024)->Arg(64 * 1024);

void BM_Sha256(benchmark::State& state) {
  Bytes data(static_cast<size_t>(state.range(0)), 0x5a);
  for (auto _ : state) benchmark::DoNotOptimize(sha256(data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Sha256)->Arg(64)->Arg(64 * 1024);

void BM_Ed25519Verify(benchmark::State& state) {
  PrivateKey key = PrivateKey::generate();
  PublicKey pub = key.public_key();
  Bytes msg(256, 1);
  Bytes sig = key.sign(msg);
  for (auto _ : state) benchmark::DoNotOptimize(pub.verify(msg, sig));
}
BENCHMARK(BM_Ed25519Verify);

void BM_Ed25519Sign(benchmark::State& state) {
  PrivateKey key = PrivateKey::generate();
  Bytes msg(256, 1);
  for (auto _ : state) benchmark::DoNotOptimize(key.sign(msg));
}
BENCHMARK(BM_Ed25519Sign);

}  // namespace
}  // namespace p2pmq::crypto
