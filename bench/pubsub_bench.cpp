// Gossipsub hot paths, sans-IO and in memory (no sockets, no asio, one thread):
//
//   BM_RouterAccept/<signed>   one message from a mesh peer through the router: handle_rpc ->
//                              ValidateMessage -> report_validation(accept) -> DeliverMessage and
//                              the forward decisions (one SendRpc per mesh peer), actions drained.
//                              20 peers subscribed, D = 6. signed=1: StrictSign (the Ed25519
//                              verification is in the loop); signed=0: StrictNoSign (content ids).
//   BM_RouterDuplicate         a copy of a message already seen (the common case in a mesh: each
//                              message arrives up to D times)
//   BM_ScorePeer               PeerScore::score() of one peer (one scored topic, in the mesh,
//                              with delivery counters); BM_ScoreRefresh: refresh() of 20 peers
//   BM_Mcache*                 put (with a shift every 1000 puts), get, get_for_peer,
//                              gossip_ids and shift of a 1000-message window
//   BM_Seen*                   SeenCache add (new ids, expiring) and contains (hit, miss)
//   BM_Rpc{Encode,Decode}      one signed 256-byte message in an RPC, protobuf encode / decode
//   BM_Message{Sign,Verify}    make_message(StrictSign) and check_message(StrictSign), 256 bytes
//   BM_MessageId               the p2pmq message id (SHA-256 of topic, from, seqno)
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "pubsub/mcache.hpp"
#include "pubsub/message.hpp"
#include "pubsub/router.hpp"
#include "pubsub/rpc.hpp"
#include "pubsub/score.hpp"
#include "pubsub/seen_cache.hpp"

namespace p2pmq::pubsub {
namespace {

const TopicId kTopic = "bench-topic";
constexpr size_t kPeers = 20;
constexpr size_t kDataSize = 256;

struct Identity {
  crypto::PrivateKey key;
  PeerId id;
};

Identity identity(int i) {
  crypto::PrivateKey::Seed seed{};
  seed[0] = static_cast<uint8_t>(i);
  seed[1] = static_cast<uint8_t>(i >> 8);
  seed[2] = 0x5b;
  auto key = crypto::PrivateKey::from_seed(seed);
  return {key, PeerId::from_public_key(key.public_key())};
}

const std::vector<Identity>& peers() {
  static const std::vector<Identity> v = [] {
    std::vector<Identity> out;
    for (size_t i = 0; i < kPeers; ++i) out.push_back(identity(100 + static_cast<int>(i)));
    return out;
  }();
  return v;
}

const Identity& self_identity() {
  static const Identity self = identity(1);
  return self;
}

Time t0() {
  return Time{} + std::chrono::hours(1);
}

Bytes payload(uint64_t n) {
  Bytes data(kDataSize, 0xab);
  for (size_t i = 0; i < 8; ++i) data[i] = static_cast<uint8_t>(n >> (8 * i));
  return data;
}

PeerScoreParams score_params() {
  PeerScoreParams p;
  p.topics[kTopic] = TopicScoreParams{};
  return p;
}

// A router joined to kTopic with kPeers gossipsub v1.2 peers, all subscribed, mesh built
// (D = 6) by a heartbeat.
std::unique_ptr<Router> make_router(SignaturePolicy policy, Time now) {
  GossipsubConfig config;
  config.signature_policy = policy;
  config.seed = 7;
  auto r = std::make_unique<Router>(self_identity().id, self_identity().key, config, score_params(),
                                    PeerScoreThresholds{}, now);
  for (const auto& p : peers()) {
    r->add_peer(p.id, PeerKind::gossipsub_v1_2, false, "127.0.0.1", now);
    r->handle_rpc(p.id, Rpc{{SubOpts{true, kTopic}}, {}, {}}, now);
  }
  r->join(kTopic, now);
  r->heartbeat(now + std::chrono::milliseconds(100));
  while (r->poll_action()) {
  }
  return r;
}

// `count` messages, origins round-robin over the peers, seqnos from `first_seqno`.
std::vector<Message> make_messages(SignaturePolicy policy, size_t count, uint64_t first_seqno) {
  std::vector<Message> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const auto& origin = peers()[i % kPeers];
    uint64_t seqno = first_seqno + i / kPeers;
    out.push_back(make_message(origin.key, kTopic, payload(first_seqno + i), seqno, policy));
  }
  return out;
}

// Messages per iteration of BM_RouterAccept: each iteration runs a fresh router through a
// batch of never-seen messages (router set-up is excluded from the timing).
constexpr size_t kBatch = 2048;

void BM_RouterAccept(benchmark::State& state) {
  const auto policy =
      state.range(0) ? SignaturePolicy::strict_sign : SignaturePolicy::strict_no_sign;
  const std::vector<Message> messages = make_messages(policy, kBatch, 1);
  Time now = t0();
  size_t sends = 0, delivered = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto router = make_router(policy, now);
    std::vector<Rpc> rpcs;
    rpcs.reserve(kBatch);
    for (const auto& m : messages) rpcs.push_back(Rpc{{}, {m}, {}});
    Time t = now + std::chrono::milliseconds(200);
    state.ResumeTiming();
    for (size_t i = 0; i < kBatch; ++i) {
      // arrives from a peer other than the origin
      const PeerId& from = peers()[(i + 1) % kPeers].id;
      router->handle_rpc(from, std::move(rpcs[i]), t);
      while (auto a = router->poll_action()) {
        if (auto* v = std::get_if<ValidateMessage>(&*a)) {
          router->report_validation(v->id, Verdict::accept, t);
        } else if (std::holds_alternative<SendRpc>(*a)) {
          ++sends;
        } else if (std::holds_alternative<DeliverMessage>(*a)) {
          ++delivered;
        }
      }
    }
    state.PauseTiming();
    router.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBatch));
  state.counters["sends_per_msg"] =
      static_cast<double>(sends) / static_cast<double>(state.iterations() * kBatch);
  state.counters["delivered_per_msg"] =
      static_cast<double>(delivered) / static_cast<double>(state.iterations() * kBatch);
}
BENCHMARK(BM_RouterAccept)->ArgName("signed")->Arg(1)->Arg(0);

void BM_RouterDuplicate(benchmark::State& state) {
  const auto messages = make_messages(SignaturePolicy::strict_sign, 256, 1);
  Time now = t0();
  auto router = make_router(SignaturePolicy::strict_sign, now);
  Time t = now + std::chrono::milliseconds(200);
  for (size_t i = 0; i < messages.size(); ++i) {
    router->handle_rpc(peers()[(i + 1) % kPeers].id, Rpc{{}, {messages[i]}, {}}, t);
    while (auto a = router->poll_action()) {
      if (auto* v = std::get_if<ValidateMessage>(&*a))
        router->report_validation(v->id, Verdict::accept, t);
    }
  }
  // copies made ahead in batches (not timed), moved in as a decoded RPC would be
  constexpr size_t kCopies = 4096;
  std::vector<Rpc> rpcs;
  size_t i = 0, next = kCopies;
  for (auto _ : state) {
    if (next == kCopies) {
      state.PauseTiming();
      rpcs.clear();
      for (size_t k = 0; k < kCopies; ++k)
        rpcs.push_back(Rpc{{}, {messages[(i + k) % messages.size()]}, {}});
      next = 0;
      state.ResumeTiming();
    }
    router->handle_rpc(peers()[(i + 2) % kPeers].id, std::move(rpcs[next++]), t);
    while (auto a = router->poll_action()) benchmark::DoNotOptimize(a);
    ++i;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_RouterDuplicate);

// ---- scoring ---------------------------------------------------------------------------------

struct ScoreFixture {
  ScoreFixture() : score(score_params(), t0()) {
    Time now = t0();
    for (const auto& p : peers()) {
      score.add_peer(p.id, now);
      score.add_ip(p.id, "127.0.0.1");
      score.graft(p.id, kTopic, now);
    }
    // some first deliveries and duplicates so the counters are not all zero
    for (int m = 0; m < 200; ++m) {
      MessageId id = to_bytes("m" + std::to_string(m));
      const PeerId& from = peers()[static_cast<size_t>(m) % kPeers].id;
      score.validate_message(from, id, kTopic, now);
      score.deliver_message(from, id, kTopic, now);
      score.duplicate_message(peers()[static_cast<size_t>(m + 1) % kPeers].id, id, kTopic, now);
    }
  }
  PeerScore score;
};

void BM_ScorePeer(benchmark::State& state) {
  ScoreFixture f;
  Time now = t0() + std::chrono::minutes(5);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.score.score(peers()[i++ % kPeers].id, now));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ScorePeer);

void BM_ScoreRefresh(benchmark::State& state) {
  ScoreFixture f;
  Time now = t0();
  for (auto _ : state) {
    now += std::chrono::seconds(1);
    f.score.refresh(now);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kPeers));  // peers refreshed
}
BENCHMARK(BM_ScoreRefresh);

// ---- mcache ----------------------------------------------------------------------------------

constexpr size_t kWindow = 1000;  // messages per heartbeat window in the mcache benchmarks

std::vector<MessageId> ids(size_t n, uint64_t salt = 0) {
  std::vector<MessageId> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    Bytes id = seqno_bytes(i ^ (salt << 40));
    id.resize(32, 0x11);  // message ids are 32-byte SHA-256 digests
    out.push_back(std::move(id));
  }
  return out;
}

Message cached_message() {
  return make_message(peers()[0].key, kTopic, payload(0), 1, SignaturePolicy::strict_sign);
}

// put, with a shift after every kWindow puts (steady state: 5 windows of kWindow messages).
void BM_McachePut(benchmark::State& state) {
  const auto keys = ids(kWindow * 16);
  const Message m = cached_message();
  MessageCache cache(5, 3, 100'000);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache.put(keys[i % keys.size()], m));
    if (++i % kWindow == 0) cache.shift();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_McachePut);

void fill(MessageCache& cache, const std::vector<MessageId>& keys, const Message& m) {
  for (size_t i = 0; i < keys.size(); ++i) {
    cache.put(keys[i], m);
    if ((i + 1) % kWindow == 0 && i + 1 < keys.size()) cache.shift();
  }
}

void BM_McacheGet(benchmark::State& state) {
  const auto keys = ids(kWindow * 5);
  const Message m = cached_message();
  MessageCache cache(5, 3, 100'000);
  fill(cache, keys, m);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache.get(keys[(i++ * 7919) % keys.size()]));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_McacheGet);

void BM_McacheGetForPeer(benchmark::State& state) {
  const auto keys = ids(kWindow * 5);
  const Message m = cached_message();
  MessageCache cache(5, 3, 100'000);
  fill(cache, keys, m);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        cache.get_for_peer(keys[(i * 7919) % keys.size()], peers()[i % kPeers].id));
    ++i;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_McacheGetForPeer);

// IHAVE material: the ids of the 3 gossip windows (3 * kWindow ids).
void BM_McacheGossipIds(benchmark::State& state) {
  const auto keys = ids(kWindow * 5);
  const Message m = cached_message();
  MessageCache cache(5, 3, 100'000);
  fill(cache, keys, m);
  for (auto _ : state) benchmark::DoNotOptimize(cache.gossip_ids(kTopic));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_McacheGossipIds);

// One shift() dropping a full window of kWindow messages (the refill is not timed).
void BM_McacheShift(benchmark::State& state) {
  const Message m = cached_message();
  std::vector<std::vector<MessageId>> windows;
  for (uint64_t w = 0; w < 8; ++w) windows.push_back(ids(kWindow, w + 1));
  MessageCache cache(5, 3, 100'000);
  size_t w = 0;
  for (; w < 5; ++w) {
    for (const auto& id : windows[w]) cache.put(id, m);
    cache.shift();
  }
  for (auto _ : state) {
    state.PauseTiming();
    for (const auto& id : windows[w % windows.size()]) cache.put(id, m);
    ++w;
    state.ResumeTiming();
    cache.shift();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_McacheShift);

// ---- seen cache ------------------------------------------------------------------------------

// add() of new ids at 10k ids/s of simulated time, so expire() keeps ~ttl * 10k = 20k ids.
void BM_SeenAdd(benchmark::State& state) {
  const auto keys = ids(1 << 16);
  SeenCache seen(std::chrono::seconds(2), 1'000'000);
  Time now = t0();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(seen.add(keys[i % keys.size()], now));
    if (++i % 100 == 0) {
      now += std::chrono::milliseconds(10);
      seen.expire(now);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_SeenAdd);

void BM_SeenContains(benchmark::State& state) {
  const bool hit = state.range(0) != 0;
  const auto keys = ids(20'000);
  const auto others = ids(20'000, 99);
  SeenCache seen(std::chrono::seconds(120), 1'000'000);
  for (const auto& k : keys) seen.add(k, t0());
  const auto& probe = hit ? keys : others;
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(seen.contains(probe[(i++ * 7919) % probe.size()]));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_SeenContains)->ArgName("hit")->Arg(1)->Arg(0);

// ---- codec and messages ----------------------------------------------------------------------

void BM_RpcEncode(benchmark::State& state) {
  Rpc rpc{{}, {cached_message()}, {}};
  size_t bytes = 0;
  for (auto _ : state) {
    Bytes b = encode_rpc(rpc);
    bytes += b.size();
    benchmark::DoNotOptimize(b);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_RpcEncode);

void BM_RpcDecode(benchmark::State& state) {
  const Bytes wire = encode_rpc(Rpc{{}, {cached_message()}, {}});
  const RpcLimits limits;
  for (auto _ : state) {
    auto r = decode_rpc(wire, limits);
    if (!r) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire.size()));
  state.counters["rpc_bytes"] = static_cast<double>(wire.size());
}
BENCHMARK(BM_RpcDecode);

void BM_MessageSign(benchmark::State& state) {
  const auto& origin = peers()[0];
  uint64_t seqno = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        make_message(origin.key, kTopic, payload(seqno), seqno, SignaturePolicy::strict_sign));
    ++seqno;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_MessageSign);

void BM_MessageVerify(benchmark::State& state) {
  const Message m = cached_message();
  for (auto _ : state) {
    auto r = check_message(m, SignaturePolicy::strict_sign);
    if (!r) state.SkipWithError("verification failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_MessageVerify);

void BM_MessageId(benchmark::State& state) {
  const Message m = cached_message();
  for (auto _ : state) benchmark::DoNotOptimize(message_id(m, MessageIdFn::p2pmq));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_MessageId);

}  // namespace
}  // namespace p2pmq::pubsub
