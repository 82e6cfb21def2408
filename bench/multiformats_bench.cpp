// Multiformats: the parsing and printing done per dial, per identify and per log line.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "core/bytes.hpp"
#include "core/multiaddr.hpp"
#include "core/varint.hpp"
#include "crypto/keys.hpp"
#include "crypto/peer_id.hpp"

namespace p2pmq {
namespace {

std::string peer_text() {
  crypto::PrivateKey::Seed seed{};
  seed.fill(7);
  return crypto::PeerId::from_public_key(crypto::PrivateKey::from_seed(seed).public_key())
      .to_base58();  // "12D3KooW...": an inlined Ed25519 key
}

std::string addr_text(int which) {
  switch (which) {
    case 0:
      return "/ip4/127.0.0.1/tcp/4001";
    case 1:
      return "/ip4/192.168.10.20/tcp/4001/p2p/" + peer_text();
    default:
      return "/ip6/2001:db8::1/tcp/4001/p2p/" + peer_text();
  }
}

void set_label(benchmark::State& state) {
  static const char* const kLabels[] = {"ip4/tcp", "ip4/tcp/p2p", "ip6/tcp/p2p"};
  state.SetLabel(kLabels[state.range(0)]);
}

void BM_MultiaddrParse(benchmark::State& state) {
  const std::string text = addr_text(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto m = Multiaddr::parse(text);
    benchmark::DoNotOptimize(m);
  }
  set_label(state);
}
BENCHMARK(BM_MultiaddrParse)->DenseRange(0, 2);

void BM_MultiaddrDecode(benchmark::State& state) {
  const Bytes bytes = Multiaddr::parse(addr_text(static_cast<int>(state.range(0))))->bytes();
  for (auto _ : state) {
    auto m = Multiaddr::decode(bytes);
    benchmark::DoNotOptimize(m);
  }
  set_label(state);
}
BENCHMARK(BM_MultiaddrDecode)->DenseRange(0, 2);

void BM_MultiaddrToString(benchmark::State& state) {
  const Multiaddr m = *Multiaddr::parse(addr_text(static_cast<int>(state.range(0))));
  for (auto _ : state) benchmark::DoNotOptimize(m.to_string());
  set_label(state);
}
BENCHMARK(BM_MultiaddrToString)->DenseRange(0, 2);

void BM_PeerIdParse(benchmark::State& state) {
  const std::string text = peer_text();
  for (auto _ : state) {
    auto id = crypto::PeerId::parse(text);
    benchmark::DoNotOptimize(id);
  }
}
BENCHMARK(BM_PeerIdParse);

void BM_PeerIdToBase58(benchmark::State& state) {
  const crypto::PeerId id = *crypto::PeerId::parse(peer_text());
  for (auto _ : state) benchmark::DoNotOptimize(id.to_base58());
}
BENCHMARK(BM_PeerIdToBase58);

// Values of 1, 2, 5 and 9 encoded bytes.
void BM_VarintAppend(benchmark::State& state) {
  const auto v = static_cast<uint64_t>(state.range(0));
  Bytes out;
  out.reserve(16);
  for (auto _ : state) {
    out.clear();
    varint_append(out, v);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_VarintAppend)->Arg(100)->Arg(300)->Arg(int64_t{1} << 30)->Arg(INT64_MAX);

void BM_VarintDecode(benchmark::State& state) {
  const Bytes in = varint_bytes(static_cast<uint64_t>(state.range(0)));
  for (auto _ : state) {
    auto r = varint_decode(in);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_VarintDecode)->Arg(100)->Arg(300)->Arg(int64_t{1} << 30)->Arg(INT64_MAX);

}  // namespace
}  // namespace p2pmq
