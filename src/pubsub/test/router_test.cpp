// Gossipsub router rules, one test each. Deterministic: manual clock, seeded RNG, no sockets.
// Two styles: a single router under test driven by scripted "fake" peers (RPCs injected by hand,
// actions inspected), and a few real routers wired in memory by Net.
#include "pubsub/router.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "crypto/peer_record.hpp"
#include "pubsub/message.hpp"

namespace p2pmq::pubsub {
namespace {

const TopicId kTopic = "t";

struct Identity {
  crypto::PrivateKey key;
  PeerId id;
};

Identity identity(int i) {
  crypto::PrivateKey::Seed seed{};
  seed[0] = static_cast<uint8_t>(i);
  seed[1] = static_cast<uint8_t>(i >> 8);
  seed[2] = 0x42;
  auto key = crypto::PrivateKey::from_seed(seed);
  return {key, PeerId::from_public_key(key.public_key())};
}

PeerScoreParams score_params() {
  PeerScoreParams p;
  p.topics[kTopic] = TopicScoreParams{};
  p.behaviour_penalty_threshold = 0;  // every P7 penalty counts at once
  return p;
}

Time start() {
  return Time{} + std::chrono::hours(1);
}

Rpc subscribe(const TopicId& topic = kTopic) {
  return Rpc{{SubOpts{true, topic}}, {}, {}};
}
Rpc graft(const TopicId& topic = kTopic) {
  Rpc rpc;
  rpc.control.graft.push_back(ControlGraft{topic});
  return rpc;
}
Rpc prune(std::optional<uint64_t> backoff = 60, std::vector<PeerRecord> px = {}) {
  Rpc rpc;
  rpc.control.prune.push_back(ControlPrune{kTopic, std::move(px), backoff});
  return rpc;
}
Rpc publish(Message m) {
  return Rpc{{}, {std::move(m)}, {}};
}

bool contains(const std::vector<PeerId>& v, const PeerId& p) {
  return std::find(v.begin(), v.end(), p) != v.end();
}

// One router under test plus scripted peers.
class RouterTest : public ::testing::Test {
 protected:
  void make(GossipsubConfig config = {}, PeerScoreThresholds thresholds = {}) {
    config.seed = 7;
    router = std::make_unique<Router>(self.id, self.key, config, score_params(), thresholds, now);
  }
  // Adds `n` gossipsub peers (ids 100..) subscribed to kTopic.
  std::vector<Identity> add_peers(int n, bool outbound = false,
                                  PeerKind kind = PeerKind::gossipsub_v1_2) {
    std::vector<Identity> out;
    for (int i = 0; i < n; ++i) {
      Identity p = identity(next_id++);
      router->add_peer(p.id, kind, outbound, "", now);
      router->handle_rpc(p.id, subscribe(), now);
      out.push_back(p);
    }
    drain();
    return out;
  }
  std::vector<Action> drain() {
    std::vector<Action> out;
    while (auto a = router->poll_action()) out.push_back(std::move(*a));
    return out;
  }
  // RPCs sent to `peer` among `actions`.
  static std::vector<Rpc> sent_to(const std::vector<Action>& actions, const PeerId& peer) {
    std::vector<Rpc> out;
    for (const auto& a : actions) {
      if (auto* s = std::get_if<SendRpc>(&a); s && s->peer == peer) out.push_back(s->rpc);
    }
    return out;
  }
  static size_t messages_sent_to(const std::vector<Action>& actions, const PeerId& peer) {
    size_t n = 0;
    for (const auto& rpc : sent_to(actions, peer)) n += rpc.publish.size();
    return n;
  }
  template <class T>
  static std::vector<T> of(const std::vector<Action>& actions) {
    std::vector<T> out;
    for (const auto& a : actions) {
      if (auto* x = std::get_if<T>(&a)) out.push_back(*x);
    }
    return out;
  }
  Message message_from(const Identity& origin, uint64_t seqno, size_t size = 10) {
    return make_message(origin.key, kTopic, Bytes(size, 0xab), seqno, SignaturePolicy::strict_sign);
  }
  void beat(Duration d = std::chrono::seconds(1)) {
    now += d;
    router->heartbeat(now);
  }

  Time now = start();
  Identity self = identity(1);
  int next_id = 100;
  std::unique_ptr<Router> router;
};

// ---- Config ------------------------------------------------------------------------------------

TEST(RouterConfig, ValidateNamesTheKey) {
  GossipsubConfig c;
  EXPECT_TRUE(validate(c));
  c.D_lo = 7;
  auto r = validate(c);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("gossip.D_lo"), std::string::npos) << r.error().message;
  c = {};
  c.mcache_gossip = 6;
  EXPECT_NE(validate(c).error().message.find("gossip.mcache_gossip"), std::string::npos);
  c = {};
  c.D_out = 5;
  EXPECT_NE(validate(c).error().message.find("gossip.D_out"), std::string::npos);
}

// ---- Mesh --------------------------------------------------------------------------------------

TEST_F(RouterTest, MeshSizeWithinBoundsAfterHeartbeat) {
  make();
  auto peers = add_peers(30);
  router->join(kTopic, now);
  auto actions = drain();
  EXPECT_EQ(router->mesh(kTopic).size(), 6u);
  size_t grafts = 0;
  for (const auto& p : peers) {
    for (const auto& rpc : sent_to(actions, p.id)) grafts += rpc.control.graft.size();
  }
  EXPECT_EQ(grafts, 6u);
  // Everyone else grafts us: inbound grafts fill the mesh up to D_hi only.
  for (const auto& p : peers) router->handle_rpc(p.id, graft(), now);
  EXPECT_EQ(router->mesh(kTopic).size(), 12u);
  beat();
  size_t size = router->mesh(kTopic).size();
  EXPECT_GE(size, 5u);
  EXPECT_LE(size, 12u);
  // A mesh under D_lo is refilled to D.
  auto mesh = router->mesh(kTopic);
  for (size_t i = 0; i + 2 < mesh.size(); ++i) router->remove_peer(mesh[i], now);
  EXPECT_LT(router->mesh(kTopic).size(), 5u);
  add_peers(10);  // the others are backing off: their grafts were refused while the mesh was full
  beat();
  EXPECT_EQ(router->mesh(kTopic).size(), 6u);
}

TEST_F(RouterTest, PruneOverDhiKeepsBestScoresAndOutboundQuota) {
  make();
  router->join(kTopic, now);
  auto inbound = add_peers(12, false);
  auto outbound = add_peers(3, true);
  for (const auto& p : inbound) router->handle_rpc(p.id, graft(), now);
  for (const auto& p : outbound) router->handle_rpc(p.id, graft(), now);  // accepted past D_hi
  ASSERT_EQ(router->mesh(kTopic).size(), 15u);
  // Four inbound peers earn a better score by delivering first.
  for (int i = 0; i < 4; ++i) {
    Identity origin = identity(900 + i);
    router->handle_rpc(inbound[i].id, publish(message_from(origin, 1)), now);
  }
  for (const auto& v : of<ValidateMessage>(drain())) {
    router->report_validation(v.id, Verdict::accept, now);
  }
  for (int i = 0; i < 4; ++i) ASSERT_GT(router->score(inbound[i].id, now), 0.5);
  drain();
  beat();
  auto mesh = router->mesh(kTopic);
  EXPECT_EQ(mesh.size(), 6u);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(contains(mesh, inbound[i].id)) << i;
  size_t kept_outbound = 0;
  for (const auto& p : outbound) kept_outbound += contains(mesh, p.id) ? 1 : 0;
  EXPECT_GE(kept_outbound, 2u);
  // The pruned ones are backed off and got a PRUNE with a backoff.
  auto actions = drain();
  for (const auto& p : inbound) {
    if (contains(mesh, p.id)) continue;
    EXPECT_TRUE(router->in_backoff(p.id, kTopic, now));
    auto rpcs = sent_to(actions, p.id);
    ASSERT_EQ(rpcs.size(), 1u);
    ASSERT_EQ(rpcs[0].control.prune.size(), 1u);
    EXPECT_EQ(rpcs[0].control.prune[0].backoff_seconds, 60u);
  }
}

TEST_F(RouterTest, GraftDuringBackoffIsPenalisedAndPruned) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  router->handle_rpc(p.id, graft(), now);
  ASSERT_TRUE(contains(router->mesh(kTopic), p.id));
  router->handle_rpc(p.id, prune(60), now);
  EXPECT_FALSE(contains(router->mesh(kTopic), p.id));
  drain();
  now += std::chrono::seconds(1);
  router->handle_rpc(p.id, graft(), now);  // within the backoff, and a graft flood
  EXPECT_FALSE(contains(router->mesh(kTopic), p.id));
  auto rpcs = sent_to(drain(), p.id);
  ASSERT_EQ(rpcs.size(), 1u);
  ASSERT_EQ(rpcs[0].control.prune.size(), 1u);
  EXPECT_TRUE(rpcs[0].control.prune[0].peers.empty());  // no PX for misbehaving peers
  EXPECT_LT(router->score(p.id, now), 0);
}

TEST_F(RouterTest, BackoffHonouredAfterPrune) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  router->handle_rpc(p.id, graft(), now);
  router->handle_rpc(p.id, prune(30), now);
  for (int i = 0; i < 30; ++i) {
    beat();
    ASSERT_FALSE(contains(router->mesh(kTopic), p.id)) << "regrafted after " << i + 1 << "s";
  }
  drain();
  beat();
  beat();
  EXPECT_TRUE(contains(router->mesh(kTopic), p.id));
  bool grafted = false;
  for (const auto& rpc : sent_to(drain(), p.id)) grafted |= !rpc.control.graft.empty();
  EXPECT_TRUE(grafted);
}

TEST_F(RouterTest, PxAcceptedOnlyFromWellScoredPeers) {
  std::vector<PeerRecord> px{{identity(500).id.bytes(), std::nullopt},
                             {identity(501).id.bytes(), std::nullopt}};
  make();  // accept_px_threshold = 100: a fresh peer (score 0) is not trusted
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  router->handle_rpc(p.id, graft(), now);
  router->handle_rpc(p.id, prune(60, px), now);
  EXPECT_TRUE(of<ConnectPeers>(drain()).empty());

  PeerScoreThresholds trusting;
  trusting.accept_px_threshold = 0;
  make({}, trusting);
  router->join(kTopic, now);
  p = add_peers(1)[0];
  router->handle_rpc(p.id, graft(), now);
  router->handle_rpc(p.id, prune(60, px), now);
  auto connects = of<ConnectPeers>(drain());
  ASSERT_EQ(connects.size(), 1u);
  EXPECT_EQ(connects[0].peers.size(), 2u);
}

TEST_F(RouterTest, PruneCarriesPxWhenEnabled) {
  GossipsubConfig c;
  c.do_px = true;
  make(c);
  router->join(kTopic, now);
  auto peers = add_peers(12);
  auto outbound = add_peers(3, true);
  for (const auto& p : peers) router->handle_rpc(p.id, graft(), now);
  for (const auto& p : outbound) router->handle_rpc(p.id, graft(), now);
  drain();
  beat();  // prunes 15 -> 6 with PX
  size_t with_px = 0;
  for (const auto& a : of<SendRpc>(drain())) {
    for (const auto& pr : a.rpc.control.prune) with_px += pr.peers.empty() ? 0 : 1;
  }
  EXPECT_EQ(with_px, 9u);
}

// go-libp2p-pubsub makePrune: each PX entry carries the signed peer record we hold for that
// peer (from identify), so the pruned peer can dial it without knowing its addresses.
TEST_F(RouterTest, PrunePxCarriesTheSignedPeerRecordWeHold) {
  GossipsubConfig c;
  c.do_px = true;
  make(c);
  router->join(kTopic, now);
  auto peers = add_peers(2);
  router->handle_rpc(peers[1].id, graft(), now);
  drain();
  const Identity& named = peers[0];
  Bytes record = crypto::seal_peer_record(
      named.key, crypto::PeerRecord{named.id, 1, {*Multiaddr::parse("/ip4/10.0.0.7/tcp/4001")}});
  router->set_peer_record_lookup(
      [&](const PeerId& p) -> const Bytes* { return p == named.id ? &record : nullptr; });
  router->leave(kTopic, now);  // PRUNE with PX to every mesh peer
  auto rpcs = sent_to(drain(), peers[1].id);
  ASSERT_EQ(rpcs.size(), 1u);
  ASSERT_EQ(rpcs[0].control.prune.size(), 1u);
  const auto& px = rpcs[0].control.prune[0].peers;
  ASSERT_EQ(px.size(), 1u);
  EXPECT_EQ(px[0].peer_id, named.id.bytes());
  EXPECT_EQ(px[0].signed_peer_record, record);
}

// go-libp2p-pubsub pxConnect: a PX entry whose record does not verify, or is another peer's, is
// dropped (never dialed); an entry without a record and a valid one are kept.
TEST_F(RouterTest, PxEntryWithAnInvalidOrForeignSignedRecordIsDropped) {
  PeerScoreThresholds trusting;
  trusting.accept_px_threshold = 0;
  make({}, trusting);
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  router->handle_rpc(p.id, graft(), now);
  Identity good = identity(500), foreign = identity(501), bad = identity(502), bare = identity(503);
  auto seal = [](const Identity& who) {
    return crypto::seal_peer_record(
        who.key, crypto::PeerRecord{who.id, 1, {*Multiaddr::parse("/ip4/10.0.0.7/tcp/4001")}});
  };
  Bytes tampered = seal(bad);
  tampered.back() ^= 0x01;  // the signature's last byte
  std::vector<PeerRecord> px{{good.id.bytes(), seal(good)},
                             {foreign.id.bytes(), seal(good)},  // good's record under another id
                             {bad.id.bytes(), tampered},
                             {bare.id.bytes(), std::nullopt},
                             {identity(504).id.bytes(), Bytes{0xff, 0x00}}};
  router->handle_rpc(p.id, prune(60, px), now);
  auto connects = of<ConnectPeers>(drain());
  ASSERT_EQ(connects.size(), 1u);
  std::vector<Bytes> ids;
  for (const auto& r : connects[0].peers) ids.push_back(r.peer_id);
  EXPECT_EQ(ids.size(), 2u);
  EXPECT_TRUE(std::find(ids.begin(), ids.end(), good.id.bytes()) != ids.end());
  EXPECT_TRUE(std::find(ids.begin(), ids.end(), bare.id.bytes()) != ids.end());
  EXPECT_EQ(router->counters().px_invalid_records, 3u);
}

TEST_F(RouterTest, OpportunisticGraftAddsPeersAboveLowMedian) {
  GossipsubConfig c;
  c.opportunistic_graft_ticks = 3;
  make(c);
  add_peers(6);
  router->join(kTopic, now);
  ASSERT_EQ(router->mesh(kTopic).size(), 6u);
  auto good = add_peers(1)[0];
  ASSERT_FALSE(contains(router->mesh(kTopic), good.id));
  router->handle_rpc(good.id, publish(message_from(identity(900), 1)), now);
  for (const auto& v : of<ValidateMessage>(drain())) {
    router->report_validation(v.id, Verdict::accept, now);
  }
  ASSERT_GT(router->score(good.id, now), 0.5);  // above the mesh median (~0)
  beat();
  beat();
  EXPECT_FALSE(contains(router->mesh(kTopic), good.id));
  beat();  // tick 3
  EXPECT_TRUE(contains(router->mesh(kTopic), good.id));
}

TEST_F(RouterTest, DirectPeersGetEveryMessageButNeverJoinTheMesh) {
  Identity direct = identity(300);
  GossipsubConfig c;
  c.flood_publish = false;
  c.direct_peers = {direct.id, identity(301).id};
  make(c);
  router->join(kTopic, now);
  router->add_peer(direct.id, PeerKind::gossipsub_v1_1, true, "", now);
  router->handle_rpc(direct.id, subscribe(), now);
  add_peers(3);
  beat();
  EXPECT_FALSE(contains(router->mesh(kTopic), direct.id));
  auto connects = of<ConnectPeers>(drain());  // the missing direct peer is dialled
  ASSERT_EQ(connects.size(), 1u);
  ASSERT_EQ(connects[0].peers.size(), 1u);
  EXPECT_EQ(connects[0].peers[0].peer_id, identity(301).id.bytes());
  router->handle_rpc(direct.id, graft(), now);
  EXPECT_FALSE(contains(router->mesh(kTopic), direct.id));
  auto rpcs = sent_to(drain(), direct.id);
  ASSERT_EQ(rpcs.size(), 1u);
  EXPECT_EQ(rpcs[0].control.prune.size(), 1u);
  ASSERT_TRUE(router->publish(kTopic, to_bytes("x"), 1, now));
  EXPECT_EQ(messages_sent_to(drain(), direct.id), 1u);
}

// ---- Gossip ------------------------------------------------------------------------------------

TEST_F(RouterTest, BrokenIWantPromiseIsPenalised) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  Rpc ihave;
  ihave.control.ihave.push_back(ControlIHave{kTopic, {Bytes{1, 2, 3}}});
  router->handle_rpc(p.id, ihave, now);
  auto rpcs = sent_to(drain(), p.id);
  ASSERT_EQ(rpcs.size(), 1u);
  ASSERT_EQ(rpcs[0].control.iwant.size(), 1u);
  EXPECT_EQ(rpcs[0].control.iwant[0].message_ids, std::vector<MessageId>{Bytes({1, 2, 3})});
  beat(std::chrono::seconds(1));
  EXPECT_EQ(router->counters().broken_promises, 0u);  // still within iwant_followup_time
  beat(std::chrono::seconds(3));
  EXPECT_EQ(router->counters().broken_promises, 1u);
  EXPECT_LT(router->score(p.id, now), 0);
}

TEST_F(RouterTest, KeptIWantPromiseIsNotPenalised) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  Message m = message_from(identity(900), 1);
  MessageId id = message_id(m, MessageIdFn::p2pmq);
  Rpc ihave;
  ihave.control.ihave.push_back(ControlIHave{kTopic, {id}});
  router->handle_rpc(p.id, ihave, now);
  router->handle_rpc(p.id, publish(m), now);
  beat(std::chrono::seconds(5));
  EXPECT_EQ(router->counters().broken_promises, 0u);
}

TEST_F(RouterTest, IHaveFloodIsCapped) {
  GossipsubConfig c;
  c.max_ihave_messages = 2;
  make(c);
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  size_t iwants = 0;
  for (uint8_t i = 0; i < 5; ++i) {
    Rpc ihave;
    ihave.control.ihave.push_back(ControlIHave{kTopic, {Bytes{i}}});
    router->handle_rpc(p.id, ihave, now);
    for (const auto& rpc : sent_to(drain(), p.id)) iwants += rpc.control.iwant.size();
  }
  EXPECT_EQ(iwants, 2u);
}

// go answers an IWANT in one RPC, and we take at most 5000 messages from one: asking for more
// in a heartbeat would lose the rest (go.test.mjs, the 3000-message burst).
TEST_F(RouterTest, IWantAsksAtMostMaxIWantLengthPerHeartbeat) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  Rpc ihave;
  ihave.control.ihave.push_back(ControlIHave{kTopic, {}});
  for (uint32_t i = 0; i < 7000; ++i) {
    Bytes id(4);
    for (int b = 0; b < 4; ++b) id[size_t(b)] = uint8_t(i >> (8 * b));
    ihave.control.ihave[0].message_ids.push_back(id);
  }
  router->handle_rpc(p.id, ihave, now);
  size_t asked = 0;
  for (const auto& rpc : sent_to(drain(), p.id))
    for (const auto& w : rpc.control.iwant) asked += w.message_ids.size();
  EXPECT_EQ(asked, GossipsubConfig{}.max_iwant_length);
}

TEST_F(RouterTest, GossipGoesToNonMeshPeersAndIWantIsServed) {
  make();
  router->join(kTopic, now);
  auto peers = add_peers(10);
  drain();
  beat();  // mesh of 6; 4 peers outside it
  drain();
  Message m = message_from(identity(900), 1);
  router->handle_rpc(router->mesh(kTopic)[0], publish(m), now);
  for (const auto& v : of<ValidateMessage>(drain())) {
    router->report_validation(v.id, Verdict::accept, now);
  }
  drain();
  beat();
  auto actions = drain();
  auto mesh = router->mesh(kTopic);
  MessageId id = message_id(m, MessageIdFn::p2pmq);
  size_t ihaves = 0;
  for (const auto& p : peers) {
    for (const auto& rpc : sent_to(actions, p.id)) {
      for (const auto& ih : rpc.control.ihave) {
        EXPECT_FALSE(contains(mesh, p.id));
        EXPECT_EQ(ih.message_ids, std::vector<MessageId>{id});
        ++ihaves;
      }
    }
  }
  EXPECT_EQ(ihaves, 4u);
  const PeerId* outsider = nullptr;
  for (const auto& p : peers) {
    if (!contains(mesh, p.id)) outsider = &p.id;
  }
  ASSERT_NE(outsider, nullptr);
  Rpc iwant;
  iwant.control.iwant.push_back(ControlIWant{{id}});
  router->handle_rpc(*outsider, iwant, now);
  auto rpcs = sent_to(drain(), *outsider);
  ASSERT_EQ(rpcs.size(), 1u);
  ASSERT_EQ(rpcs[0].publish.size(), 1u);
  EXPECT_EQ(rpcs[0].publish[0], m);
  // Retransmissions are bounded (gossip_retransmission = 3).
  for (int i = 0; i < 5; ++i) router->handle_rpc(*outsider, iwant, now);
  size_t served = 0;
  for (const auto& rpc : sent_to(drain(), *outsider)) served += rpc.publish.size();
  EXPECT_EQ(served, 2u);
}

// ---- Conformance with go-libp2p-pubsub (wire-conformance review) -----------------------------

// M2: go never answers an accepted GRAFT with a GRAFT; an echo that crosses a PRUNE of the
// peer's would land in its backoff and cost us P7.
TEST_F(RouterTest, AcceptedGraftIsNotEchoed) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  router->handle_rpc(p.id, graft(), now);
  ASSERT_TRUE(contains(router->mesh(kTopic), p.id));
  auto actions = drain();
  beat();
  for (const auto& a : {actions, drain()})
    for (const auto& rpc : sent_to(a, p.id)) EXPECT_TRUE(rpc.control.graft.empty());
}

// M1: a message refused because the validation queue is full leaves no delivery record, so a
// later copy that is validated and rejected still penalises its sender (P4).
TEST_F(RouterTest, ThrottledMessageStillCostsP4WhenLaterRejected) {
  GossipsubConfig c;
  c.max_pending_validations_per_topic = 1;
  make(c);
  router->join(kTopic, now);
  auto peers = add_peers(2);
  Identity origin = identity(900);
  router->handle_rpc(peers[0].id, publish(message_from(origin, 1)), now);
  Message bad = message_from(origin, 2);
  router->handle_rpc(peers[1].id, publish(bad), now);  // throttled
  EXPECT_EQ(router->counters().throttled, 1u);
  for (const auto& v : of<ValidateMessage>(drain()))
    router->report_validation(v.id, Verdict::accept, now);
  router->handle_rpc(peers[1].id, publish(bad), now);
  auto validations = of<ValidateMessage>(drain());
  ASSERT_EQ(validations.size(), 1u);
  router->report_validation(validations[0].id, Verdict::reject, now);
  EXPECT_LT(router->score(peers[1].id, now), 0);
}

// M3: the score decides retention before the router forgets the peer, and a retained peer
// keeps counting for IP colocation (P6), so reconnecting from a crowded IP sheds nothing.
TEST_F(RouterTest, RetainedPeerKeepsItsIpForColocation) {
  make();
  router->join(kTopic, now);
  std::vector<Identity> crowd;
  for (int i = 0; i < 6; ++i) {  // one over ip_colocation_factor_threshold (5)
    crowd.push_back(identity(next_id++));
    router->add_peer(crowd.back().id, PeerKind::gossipsub_v1_2, false, "10.0.0.1", now);
  }
  ASSERT_LT(router->score(crowd[0].id, now), 0);
  router->remove_peer(crowd[5].id, now);
  EXPECT_LT(router->score(crowd[0].id, now), 0);
}

// L1: an IWANT is answered whatever the requester's subscriptions (go does), except for ids it
// said it does not want.
TEST_F(RouterTest, IWantServedToUnsubscribedRequesterUnlessUnwanted) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  Message m = message_from(identity(900), 1);
  router->handle_rpc(p.id, publish(m), now);
  for (const auto& v : of<ValidateMessage>(drain()))
    router->report_validation(v.id, Verdict::accept, now);
  drain();
  Identity stranger = identity(next_id++);
  router->add_peer(stranger.id, PeerKind::gossipsub_v1_2, false, "", now);
  drain();
  MessageId id = message_id(m, MessageIdFn::p2pmq);
  Rpc iwant;
  iwant.control.iwant.push_back(ControlIWant{{id}});
  router->handle_rpc(stranger.id, iwant, now);
  EXPECT_EQ(messages_sent_to(drain(), stranger.id), 1u);
  Rpc idontwant;
  idontwant.control.idontwant.push_back(ControlIDontWant{{id}});
  router->handle_rpc(stranger.id, idontwant, now);
  router->handle_rpc(stranger.id, iwant, now);
  EXPECT_EQ(messages_sent_to(drain(), stranger.id), 0u);
}

TEST(RouterConfig, DZeroIsTheBootstrapperSetting) {
  GossipsubConfig c;
  c.D = c.D_lo = c.D_hi = c.D_score = c.D_out = 0;
  EXPECT_TRUE(validate(c));
}

// ---- Peers on another message id function ----------------------------------------------------

// A go or js peer on its default id (from || seqno) names the message we hold by another id:
// its IHAVE must not make us fetch it again.
TEST_F(RouterTest, IHaveUnderStockIdOfAHeldMessageIsNotRequested) {
  make();
  router->join(kTopic, now);
  auto peers = add_peers(2);
  Message m = message_from(identity(900), 1);
  router->handle_rpc(peers[0].id, publish(m), now);
  for (const auto& v : of<ValidateMessage>(drain()))
    router->report_validation(v.id, Verdict::accept, now);
  drain();
  Rpc ihave;
  ihave.control.ihave.push_back(ControlIHave{kTopic, {message_id(m, MessageIdFn::stock)}});
  router->handle_rpc(peers[1].id, ihave, now);
  for (const auto& rpc : sent_to(drain(), peers[1].id)) EXPECT_TRUE(rpc.control.iwant.empty());
}

// What we IWANT by a peer's stock (or rust) id arrives and is known by our id: the promise is
// kept, not charged as broken (the -185 score an honest js peer got).
TEST_F(RouterTest, PromiseMadeUnderForeignIdIsKept) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  Identity origin = identity(900);
  Message a = message_from(origin, 1), b = message_from(origin, 2);
  Rpc ihave;
  ihave.control.ihave.push_back(
      ControlIHave{kTopic, {message_id(a, MessageIdFn::stock), message_id(b, MessageIdFn::rust)}});
  router->handle_rpc(p.id, ihave, now);
  drain();
  router->handle_rpc(p.id, publish(a), now);
  router->handle_rpc(p.id, publish(b), now);
  drain();
  beat(std::chrono::seconds(5));
  EXPECT_EQ(router->counters().broken_promises, 0u);
}

// Once a peer shows it names messages the stock way, our IHAVE to it does too, and its IWANT
// by stock id is served: its promise tracking then sees what it asked for arrive.
TEST_F(RouterTest, GossipToAStockIdPeerUsesStockIds) {
  make();
  router->join(kTopic, now);
  auto peers = add_peers(10);
  beat();
  drain();
  auto mesh = router->mesh(kTopic);
  const Identity* outsider = nullptr;
  for (const auto& p : peers)
    if (!contains(mesh, p.id)) outsider = &p;
  ASSERT_NE(outsider, nullptr);
  Identity origin = identity(900);
  Message first = message_from(origin, 1), second = message_from(origin, 2);
  for (const Message& m : {first, second}) {
    router->handle_rpc(mesh[0], publish(m), now);
    for (const auto& v : of<ValidateMessage>(drain()))
      router->report_validation(v.id, Verdict::accept, now);
  }
  drain();
  Rpc ihave;  // the outsider gossips `first` by its stock id
  ihave.control.ihave.push_back(ControlIHave{kTopic, {message_id(first, MessageIdFn::stock)}});
  router->handle_rpc(outsider->id, ihave, now);
  drain();
  beat();
  std::vector<MessageId> advertised;
  for (const auto& rpc : sent_to(drain(), outsider->id))
    for (const auto& ih : rpc.control.ihave) advertised = ih.message_ids;
  EXPECT_TRUE(std::find(advertised.begin(), advertised.end(),
                        message_id(second, MessageIdFn::stock)) != advertised.end());
  Rpc iwant;
  iwant.control.iwant.push_back(ControlIWant{{message_id(second, MessageIdFn::stock)}});
  router->handle_rpc(outsider->id, iwant, now);
  EXPECT_EQ(messages_sent_to(drain(), outsider->id), 1u);
}

// ---- Scoring -----------------------------------------------------------------------------------

TEST_F(RouterTest, GraylistedPeersRpcsAreIgnored) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  Identity origin = identity(900);
  for (uint64_t s = 1; s <= 3; ++s) {
    Message bad = message_from(origin, s);
    bad.data.push_back(1);  // breaks the signature: P4
    router->handle_rpc(p.id, publish(bad), now);
  }
  EXPECT_EQ(router->counters().rejected, 3u);
  ASSERT_LT(router->score(p.id, now), -80);
  router->handle_rpc(p.id, subscribe("other"), now);
  EXPECT_EQ(router->peer_topics(p.id), std::vector<TopicId>{kTopic});
  EXPECT_EQ(router->counters().graylisted_rpcs, 1u);
  // And a graylisted peer's valid message is not even looked at.
  router->handle_rpc(p.id, publish(message_from(origin, 9)), now);
  EXPECT_TRUE(of<ValidateMessage>(drain()).empty());
}

TEST_F(RouterTest, NegativeScorePeerLeavesMeshAtHeartbeat) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  router->handle_rpc(p.id, graft(), now);
  Message bad = message_from(identity(900), 1);
  bad.data.push_back(1);
  router->handle_rpc(p.id, publish(bad), now);
  ASSERT_LT(router->score(p.id, now), 0);
  beat();
  EXPECT_FALSE(contains(router->mesh(kTopic), p.id));
}

// ---- Messages ----------------------------------------------------------------------------------

TEST_F(RouterTest, SeenCacheDropsDuplicates) {
  make();
  router->join(kTopic, now);
  auto peers = add_peers(3);
  for (const auto& p : peers) router->handle_rpc(p.id, graft(), now);
  Message m = message_from(identity(900), 1);
  router->handle_rpc(peers[0].id, publish(m), now);
  router->handle_rpc(peers[1].id, publish(m), now);
  auto validations = of<ValidateMessage>(drain());
  ASSERT_EQ(validations.size(), 1u);
  EXPECT_EQ(router->counters().duplicates, 1u);
  router->report_validation(validations[0].id, Verdict::accept, now);
  auto actions = drain();
  EXPECT_EQ(of<DeliverMessage>(actions).size(), 1u);
  // Neither sender gets it back: one sent it, the other sent a duplicate meanwhile.
  EXPECT_EQ(messages_sent_to(actions, peers[0].id), 0u);
  EXPECT_EQ(messages_sent_to(actions, peers[1].id), 0u);
  EXPECT_EQ(messages_sent_to(actions, peers[2].id), 1u);
  router->handle_rpc(peers[1].id, publish(m), now);
  EXPECT_TRUE(drain().empty());
  EXPECT_EQ(router->counters().duplicates, 2u);
}

TEST_F(RouterTest, AcceptDeliversAndForwardsToMesh) {
  make();
  auto peers = add_peers(8);
  router->join(kTopic, now);
  drain();
  Message m = message_from(identity(900), 1);
  auto mesh = router->mesh(kTopic);
  router->handle_rpc(mesh[0], publish(m), now);
  auto v = of<ValidateMessage>(drain());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].received_from, mesh[0]);
  router->report_validation(v[0].id, Verdict::accept, now);
  auto actions = drain();
  auto delivered = of<DeliverMessage>(actions);
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(delivered[0].message, m);
  for (const auto& p : peers) {
    bool expect = contains(mesh, p.id) && p.id != mesh[0];
    EXPECT_EQ(messages_sent_to(actions, p.id), expect ? 1u : 0u);
  }
  EXPECT_GT(router->score(mesh[0], now), 0);  // P2 first delivery
}

TEST_F(RouterTest, ValidationRejectIsNotDeliveredNorForwardedAndPenalised) {
  make();
  auto peers = add_peers(8);
  router->join(kTopic, now);
  drain();
  router->handle_rpc(router->mesh(kTopic)[0], publish(message_from(identity(900), 1)), now);
  auto v = of<ValidateMessage>(drain());
  ASSERT_EQ(v.size(), 1u);
  router->report_validation(v[0].id, Verdict::reject, now);
  auto actions = drain();
  EXPECT_TRUE(of<DeliverMessage>(actions).empty());
  EXPECT_TRUE(of<SendRpc>(actions).empty());
  EXPECT_LT(router->score(router->mesh(kTopic)[0], now), 0);  // P4
  EXPECT_EQ(router->counters().rejected, 1u);
}

TEST_F(RouterTest, ValidationIgnoreHasNoPenalty) {
  make();
  auto peers = add_peers(8);
  router->join(kTopic, now);
  drain();
  router->handle_rpc(router->mesh(kTopic)[0], publish(message_from(identity(900), 1)), now);
  auto v = of<ValidateMessage>(drain());
  ASSERT_EQ(v.size(), 1u);
  router->report_validation(v[0].id, Verdict::ignore, now);
  auto actions = drain();
  EXPECT_TRUE(of<DeliverMessage>(actions).empty());
  EXPECT_TRUE(of<SendRpc>(actions).empty());
  EXPECT_GE(router->score(router->mesh(kTopic)[0], now), 0);
  EXPECT_EQ(router->counters().ignored, 1u);
}

TEST_F(RouterTest, ValidationTimeoutActsAsIgnore) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  router->handle_rpc(p.id, publish(message_from(identity(900), 1)), now);
  auto v = of<ValidateMessage>(drain());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_LE(router->next_deadline(), now + std::chrono::seconds(5));
  now += std::chrono::seconds(6);
  router->on_timer(now);
  EXPECT_EQ(router->pending_validations(), 0u);
  EXPECT_EQ(router->counters().validation_timeouts, 1u);
  router->report_validation(v[0].id, Verdict::accept, now);  // too late: ignored
  EXPECT_TRUE(of<DeliverMessage>(drain()).empty());
  EXPECT_GE(router->score(p.id, now), 0);
}

TEST_F(RouterTest, PendingValidationsAreBounded) {
  GossipsubConfig c;
  c.max_pending_validations_per_topic = 2;
  make(c);
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  for (uint64_t s = 1; s <= 4; ++s) {
    router->handle_rpc(p.id, publish(message_from(identity(900), s)), now);
  }
  EXPECT_EQ(of<ValidateMessage>(drain()).size(), 2u);
  EXPECT_EQ(router->counters().throttled, 2u);
  EXPECT_GE(router->score(p.id, now), 0);  // throttling is not the sender's fault
}

TEST_F(RouterTest, OversizedMessageIsRejected) {
  GossipsubConfig c;
  c.max_message_size_per_topic[kTopic] = 200;
  make(c);
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  router->handle_rpc(p.id, publish(message_from(identity(900), 1, 500)), now);
  EXPECT_TRUE(of<ValidateMessage>(drain()).empty());
  EXPECT_EQ(router->counters().too_large, 1u);
  EXPECT_FALSE(router->publish(kTopic, Bytes(500, 1), 1, now));
}

TEST_F(RouterTest, IDontWantSuppressesSend) {
  make();
  router->join(kTopic, now);
  auto peers = add_peers(3);
  for (const auto& p : peers) router->handle_rpc(p.id, graft(), now);
  drain();
  Message m = message_from(identity(900), 1);
  MessageId id = message_id(m, MessageIdFn::p2pmq);
  Rpc idw;
  idw.control.idontwant.push_back(ControlIDontWant{{id}});
  router->handle_rpc(peers[1].id, idw, now);
  router->handle_rpc(peers[0].id, publish(m), now);
  for (const auto& v : of<ValidateMessage>(drain())) {
    router->report_validation(v.id, Verdict::accept, now);
  }
  auto actions = drain();
  EXPECT_EQ(messages_sent_to(actions, peers[1].id), 0u);
  EXPECT_EQ(messages_sent_to(actions, peers[2].id), 1u);
  EXPECT_EQ(router->counters().idontwant_suppressed, 1u);
}

TEST_F(RouterTest, LargeMessageTriggersIDontWantToV12MeshPeers) {
  make();
  router->join(kTopic, now);
  auto v12 = add_peers(2, false, PeerKind::gossipsub_v1_2);
  auto v11 = add_peers(1, false, PeerKind::gossipsub_v1_1);
  for (const auto& p : v12) router->handle_rpc(p.id, graft(), now);
  router->handle_rpc(v11[0].id, graft(), now);
  drain();
  router->handle_rpc(v12[0].id, publish(message_from(identity(900), 1, 2000)), now);
  auto actions = drain();
  auto idontwants = [&](const PeerId& p) {
    size_t n = 0;
    for (const auto& rpc : sent_to(actions, p)) n += rpc.control.idontwant.size();
    return n;
  };
  EXPECT_EQ(idontwants(v12[0].id), 0u);  // the sender has it
  EXPECT_EQ(idontwants(v12[1].id), 1u);
  EXPECT_EQ(idontwants(v11[0].id), 0u);  // v1.1 would not understand
}

// ---- Publishing --------------------------------------------------------------------------------

TEST_F(RouterTest, FloodPublishReachesEveryPeerAboveThreshold) {
  make();
  router->join(kTopic, now);
  auto peers = add_peers(20);
  drain();
  auto id = router->publish(kTopic, to_bytes("hello"), 1, now);
  ASSERT_TRUE(id);
  auto actions = drain();
  for (const auto& p : peers) EXPECT_EQ(messages_sent_to(actions, p.id), 1u);
  auto delivered = of<DeliverMessage>(actions);
  ASSERT_EQ(delivered.size(), 1u);  // subscribed: delivered locally, not validated
  EXPECT_EQ(delivered[0].id, *id);
  EXPECT_TRUE(of<ValidateMessage>(actions).empty());
  EXPECT_FALSE(router->publish(kTopic, to_bytes("hello"), 1, now));  // same id: refused
}

TEST_F(RouterTest, WithoutFloodPublishOnlyMeshPeersGetIt) {
  GossipsubConfig c;
  c.flood_publish = false;
  make(c);
  router->join(kTopic, now);
  auto peers = add_peers(20);
  beat();
  drain();
  ASSERT_TRUE(router->publish(kTopic, to_bytes("hello"), 1, now));
  auto actions = drain();
  auto mesh = router->mesh(kTopic);
  for (const auto& p : peers) {
    EXPECT_EQ(messages_sent_to(actions, p.id), contains(mesh, p.id) ? 1u : 0u);
  }
}

TEST_F(RouterTest, FanoutThenJoin) {
  GossipsubConfig c;
  c.flood_publish = false;
  make(c);
  auto peers = add_peers(10);
  ASSERT_TRUE(router->publish(kTopic, to_bytes("a"), 1, now));
  auto actions = drain();
  auto fanout = router->fanout(kTopic);
  ASSERT_EQ(fanout.size(), 6u);
  EXPECT_TRUE(of<DeliverMessage>(actions).empty());  // not subscribed
  for (const auto& p : peers) {
    EXPECT_EQ(messages_sent_to(actions, p.id), contains(fanout, p.id) ? 1u : 0u);
  }
  // Publishing again reuses the same fanout peers.
  ASSERT_TRUE(router->publish(kTopic, to_bytes("b"), 2, now));
  EXPECT_EQ(router->fanout(kTopic), fanout);
  drain();
  router->join(kTopic, now);
  EXPECT_EQ(router->mesh(kTopic), fanout);
  EXPECT_TRUE(router->fanout(kTopic).empty());
  actions = drain();
  for (const auto& p : fanout) {
    auto rpcs = sent_to(actions, p);
    ASSERT_EQ(rpcs.size(), 1u);
    EXPECT_EQ(rpcs[0].control.graft.size(), 1u);
  }
}

TEST_F(RouterTest, FanoutExpiresAfterTtl) {
  GossipsubConfig c;
  c.flood_publish = false;
  c.fanout_ttl = std::chrono::seconds(5);
  make(c);
  add_peers(10);
  ASSERT_TRUE(router->publish(kTopic, to_bytes("a"), 1, now));
  beat(std::chrono::seconds(3));
  EXPECT_EQ(router->fanout(kTopic).size(), 6u);
  beat(std::chrono::seconds(3));
  EXPECT_TRUE(router->fanout(kTopic).empty());
}

// ---- Floodsub, subscriptions ----------------------------------------------------------------

TEST_F(RouterTest, FloodsubPeerReceivesMessagesButIsNeverGrafted) {
  GossipsubConfig c;
  c.flood_publish = false;
  make(c);
  router->join(kTopic, now);
  auto flood = add_peers(1, false, PeerKind::floodsub)[0];
  auto gossip = add_peers(2);
  router->handle_rpc(flood.id, graft(), now);  // nonsense from a floodsub peer: ignored
  for (int i = 0; i < 3; ++i) beat();
  EXPECT_FALSE(contains(router->mesh(kTopic), flood.id));
  EXPECT_EQ(router->mesh(kTopic).size(), 2u);
  drain();
  ASSERT_TRUE(router->publish(kTopic, to_bytes("x"), 1, now));
  EXPECT_EQ(messages_sent_to(drain(), flood.id), 1u);
  // Forwarded messages reach it too.
  router->handle_rpc(gossip[0].id, publish(message_from(identity(900), 1)), now);
  for (const auto& v : of<ValidateMessage>(drain())) {
    router->report_validation(v.id, Verdict::accept, now);
  }
  EXPECT_EQ(messages_sent_to(drain(), flood.id), 1u);
}

TEST_F(RouterTest, SubscriptionLimits) {
  GossipsubConfig c;
  c.max_subscriptions_per_peer = 2;
  c.allowed_topics = std::set<TopicId>{"a", "b", "c", kTopic};
  make(c);
  Identity p = identity(200);
  router->add_peer(p.id, PeerKind::gossipsub_v1_1, false, "", now);
  router->handle_rpc(p.id, subscribe("forbidden"), now);
  router->handle_rpc(p.id, Rpc{{{true, "a"}, {true, "b"}, {true, "c"}}, {}, {}}, now);
  EXPECT_EQ(router->peer_topics(p.id), (std::vector<TopicId>{"a", "b"}));
  EXPECT_EQ(router->counters().subscriptions_refused, 2u);
  router->handle_rpc(p.id, Rpc{{{false, "a"}, {true, "c"}}, {}, {}}, now);
  EXPECT_EQ(router->peer_topics(p.id), (std::vector<TopicId>{"b", "c"}));
  EXPECT_EQ(router->topic_peers("a").size(), 0u);
}

// Issue 10: a peer subscribed to thousands of topics still gets what we publish on a topic
// we share, however many others it announced first.
TEST_F(RouterTest, SharedTopicsAreTakenBeyondTheSubscriptionLimit) {
  GossipsubConfig c;
  c.max_subscriptions_per_peer = 10;
  make(c);
  router->join(kTopic, now);
  Identity p = identity(200);
  router->add_peer(p.id, PeerKind::gossipsub_v1_2, false, "", now);
  Rpc many;
  for (int i = 0; i < 2000; ++i) many.subscriptions.push_back({true, "other-" + std::to_string(i)});
  many.subscriptions.push_back({true, kTopic});
  router->handle_rpc(p.id, many, now);
  EXPECT_EQ(router->topic_peers(kTopic), std::vector<PeerId>{p.id});
  EXPECT_EQ(router->peer_topics(p.id).size(), 11u);
  drain();
  beat();
  EXPECT_TRUE(contains(router->mesh(kTopic), p.id));
}

TEST_F(RouterTest, UnsubscribedPeerLeavesMesh) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  router->handle_rpc(p.id, graft(), now);
  ASSERT_TRUE(contains(router->mesh(kTopic), p.id));
  router->handle_rpc(p.id, Rpc{{{false, kTopic}}, {}, {}}, now);
  EXPECT_FALSE(contains(router->mesh(kTopic), p.id));
}

TEST_F(RouterTest, LeaveSendsPruneWithUnsubscribeBackoff) {
  make();
  router->join(kTopic, now);
  auto p = add_peers(1)[0];
  router->handle_rpc(p.id, graft(), now);
  drain();
  router->leave(kTopic, now);
  auto rpcs = sent_to(drain(), p.id);
  ASSERT_EQ(rpcs.size(), 1u);
  ASSERT_EQ(rpcs[0].control.prune.size(), 1u);
  EXPECT_EQ(rpcs[0].control.prune[0].backoff_seconds, 10u);
  EXPECT_EQ(rpcs[0].subscriptions, (std::vector<SubOpts>{{false, kTopic}}));
  EXPECT_FALSE(router->is_subscribed(kTopic));
}

TEST_F(RouterTest, TimerDrivesHeartbeat) {
  make();
  EXPECT_EQ(router->next_deadline(), now + std::chrono::milliseconds(100));
  router->on_timer(now + std::chrono::milliseconds(100));
  EXPECT_EQ(router->heartbeat_ticks(), 1u);
  EXPECT_LE(router->next_deadline(), now + std::chrono::milliseconds(1100));
  router->on_timer(now + std::chrono::milliseconds(1100));
  EXPECT_EQ(router->heartbeat_ticks(), 2u);
}

// ---- Real routers wired in memory --------------------------------------------------------------

// Routers that deliver each SendRpc to the target's handle_rpc and accept every validation.
class Net {
 public:
  explicit Net(int n, GossipsubConfig config = {}) {
    for (int i = 0; i < n; ++i) {
      Identity id = identity(10 + i);
      config.seed = static_cast<uint64_t>(i);
      nodes_.push_back(Node{id.id,
                            std::make_unique<Router>(id.id, id.key, config, score_params(),
                                                     PeerScoreThresholds{}, now),
                            {}});
    }
  }
  void connect(int a, int b) {
    node(a).router->add_peer(node(b).id, PeerKind::gossipsub_v1_2, true, "", now);
    node(b).router->add_peer(node(a).id, PeerKind::gossipsub_v1_2, false, "", now);
    pump();
  }
  void connect_all() {
    for (int a = 0; a < size(); ++a)
      for (int b = a + 1; b < size(); ++b) connect(a, b);
  }
  // Delivers actions until the network is quiet.
  void pump() {
    bool busy = true;
    while (busy) {
      busy = false;
      for (auto& n : nodes_) {
        while (auto a = n.router->poll_action()) {
          busy = true;
          handle(n, std::move(*a));
        }
      }
    }
  }
  // Advances virtual time in 100 ms steps, firing due timers.
  void run_for(Duration d) {
    Time end = now + d;
    while (now < end) {
      now += std::chrono::milliseconds(100);
      for (auto& n : nodes_) {
        if (n.router->next_deadline() <= now) n.router->on_timer(now);
      }
      pump();
    }
  }
  Router& router(int i) { return *node(i).router; }
  const std::vector<DeliverMessage>& delivered(int i) { return node(i).delivered; }
  int size() const { return static_cast<int>(nodes_.size()); }
  Time now = start();

 private:
  struct Node {
    PeerId id;
    std::unique_ptr<Router> router;
    std::vector<DeliverMessage> delivered;
  };
  Node& node(int i) { return nodes_[static_cast<size_t>(i)]; }
  Node* find(const PeerId& id) {
    for (auto& n : nodes_) {
      if (n.id == id) return &n;
    }
    return nullptr;
  }
  void handle(Node& from, Action a) {
    if (auto* s = std::get_if<SendRpc>(&a)) {
      if (Node* to = find(s->peer)) to->router->handle_rpc(from.id, std::move(s->rpc), now);
    } else if (auto* v = std::get_if<ValidateMessage>(&a)) {
      from.router->report_validation(v->id, Verdict::accept, now);
    } else if (auto* d = std::get_if<DeliverMessage>(&a)) {
      from.delivered.push_back(std::move(*d));
    }
  }
  std::vector<Node> nodes_;
};

TEST(RouterNet, EveryoneDeliversEachMessageOnce) {
  GossipsubConfig c;
  c.flood_publish = false;
  Net net(12, c);
  net.connect_all();
  for (int i = 0; i < net.size(); ++i) net.router(i).join(kTopic, net.now);
  net.pump();
  net.run_for(std::chrono::seconds(3));
  for (int i = 0; i < net.size(); ++i) {
    size_t m = net.router(i).mesh(kTopic).size();
    EXPECT_GE(m, 5u) << i;
    EXPECT_LE(m, 12u) << i;
  }
  for (uint64_t s = 1; s <= 5; ++s) {
    ASSERT_TRUE(net.router(static_cast<int>(s) % 12).publish(kTopic, to_bytes("m"), s, net.now));
  }
  net.pump();
  for (int i = 0; i < net.size(); ++i) EXPECT_EQ(net.delivered(i).size(), 5u) << i;
}

TEST(RouterNet, IHaveIWantDeliversToNonMeshPeer) {
  GossipsubConfig c;
  c.flood_publish = false;
  Net net(2, c);
  net.connect(0, 1);
  net.router(0).join(kTopic, net.now);
  net.router(1).join(kTopic, net.now);
  net.pump();
  net.run_for(std::chrono::seconds(1));  // each learns the other's subscription, then grafts
  ASSERT_EQ(net.router(0).mesh(kTopic).size(), 1u);
  // B leaves and rejoins at once: both sides back off, so A and B are not in each other's mesh.
  net.router(1).leave(kTopic, net.now);
  net.router(1).join(kTopic, net.now);
  net.pump();
  ASSERT_TRUE(net.router(0).mesh(kTopic).empty());
  ASSERT_TRUE(net.router(1).mesh(kTopic).empty());
  ASSERT_TRUE(net.router(0).publish(kTopic, to_bytes("gossip me"), 1, net.now));
  net.pump();
  EXPECT_TRUE(net.delivered(1).empty());  // no mesh: not pushed
  net.run_for(std::chrono::seconds(1));   // heartbeat: IHAVE -> IWANT -> message
  ASSERT_EQ(net.delivered(1).size(), 1u);
  EXPECT_EQ(net.delivered(1)[0].message.data, to_bytes("gossip me"));
  EXPECT_EQ(net.router(0).counters().iwant_served, 1u);
}

// The metrics endpoint's per-topic series: counted for joined topics, with the validation
// latency from receipt to verdict; a topic's counters go when it is left.
TEST_F(RouterTest, TopicCountersCountJoinedTopicsAndGoOnLeave) {
  make();
  router->join(kTopic, now);
  auto peers = add_peers(2);
  ASSERT_TRUE(router->publish(kTopic, Bytes{1}, 1, now));
  Identity origin = identity(900);
  for (uint64_t seqno = 1; seqno <= 3; ++seqno)
    router->handle_rpc(peers[0].id, publish(message_from(origin, seqno)), now);
  router->handle_rpc(peers[1].id, publish(message_from(origin, 1)), now);  // a duplicate
  EXPECT_EQ(router->pending_validations(kTopic), 3u);
  now += std::chrono::milliseconds(20);
  const Verdict verdicts[] = {Verdict::accept, Verdict::reject, Verdict::ignore};
  auto validations = of<ValidateMessage>(drain());
  ASSERT_EQ(validations.size(), 3u);
  for (size_t i = 0; i < 3; ++i) router->report_validation(validations[i].id, verdicts[i], now);

  const TopicCounters* c = router->topic_counters(kTopic);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->published, 1u);
  EXPECT_EQ(c->delivered, 2u);  // ours and the accepted one
  EXPECT_EQ(c->duplicates, 1u);
  EXPECT_EQ(c->rejected, 1u);
  EXPECT_EQ(c->ignored, 1u);
  EXPECT_EQ(c->validation_seconds.count(), 3u);
  EXPECT_NEAR(c->validation_seconds.sum(), 0.06, 1e-9);
  EXPECT_EQ(router->pending_validations(kTopic), 0u);
  EXPECT_EQ(router->topic_counters("not-joined"), nullptr);
  router->leave(kTopic, now);
  EXPECT_EQ(router->topic_counters(kTopic), nullptr);
}

}  // namespace
}  // namespace p2pmq::pubsub
