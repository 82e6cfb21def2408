// Gossipsub at scale in virtual time. Deterministic: fixed seeds, no sleeps, no real clock in
// any assertion (wall times are printed only). Sizes are bounded so the whole binary runs in well
// under a minute on a busy 2-core machine.
#include "sim/network.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <sstream>
#include <string>

#include "pubsub/message.hpp"

namespace p2pmq::sim {
namespace {

const TopicId kTopic = "sim";

double ms(Duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

Bytes payload(const std::string& tag, size_t size = 64) {
  Bytes b = to_bytes(tag);
  if (b.size() < size) b.resize(size, 0x2e);
  return b;
}

std::string histogram(const std::map<size_t, size_t>& h) {
  std::ostringstream out;
  for (const auto& [degree, count] : h) out << degree << ":" << count << " ";
  return out.str();
}

class WallClock {
 public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// ---- Unit checks of the harness itself
// ------------------------------------------------------------

TEST(SimNetwork, LinkLatencyAndLossAreApplied) {
  NetworkConfig nc;
  nc.min_latency = nc.max_latency = 50ms;
  Network net(nc);
  NodeConfig cfg;
  cfg.score.topics[kTopic] = {};
  net.add_nodes(2, cfg);
  net.connect(0, 1);
  EXPECT_TRUE(net.connected(1, 0));
  EXPECT_NE(net.ip(0), net.ip(1));
  net.join(0, kTopic);
  net.join(1, kTopic);
  net.run_for(2s);  // subscriptions cross, heartbeats graft
  ASSERT_EQ(net.router(0).mesh(kTopic).size(), 1u);
  auto id = net.publish(0, kTopic, payload("one"));
  ASSERT_TRUE(id);
  net.run_for(1s);
  const MessageRecord* rec = net.message(*id);
  ASSERT_NE(rec, nullptr);
  ASSERT_TRUE(rec->delivered.contains(1));
  EXPECT_EQ(rec->delivered.at(1) - rec->published, 50ms);  // one hop, validation at once
  EXPECT_EQ(net.delivery_ratio(*id), 1.0);

  net.set_loss(0, 1, 1.0);
  auto lost = net.publish(0, kTopic, payload("two"));
  ASSERT_TRUE(lost);
  net.run_for(500ms);
  EXPECT_EQ(net.delivery_ratio(*lost), 0.0);
  EXPECT_GT(net.counters().rpcs_lost, 0u);
  EXPECT_EQ(net.counters().duplicate_deliveries, 0u);
  EXPECT_EQ(net.counters().timer_stalls, 0u);
}

TEST(SimNetwork, ValidatorDelayAndSendFilter) {
  NetworkConfig nc;
  nc.min_latency = nc.max_latency = 10ms;
  Network net(nc);
  NodeConfig cfg;
  cfg.score.topics[kTopic] = {};
  net.add_nodes(3, cfg);  // a line 0 - 1 - 2
  net.connect(0, 1);
  net.connect(1, 2);
  for (NodeId n = 0; n < 3; ++n) net.join(n, kTopic);
  net.set_validator(1, [](NodeId, const pubsub::ValidateMessage&) {
    return Validation{pubsub::Verdict::accept, 100ms};
  });
  net.run_for(2s);
  auto id = net.publish(0, kTopic, payload("slow"));
  ASSERT_TRUE(id);
  net.run_for(1s);
  const MessageRecord* rec = net.message(*id);
  ASSERT_TRUE(rec->delivered.contains(2));
  EXPECT_EQ(rec->delivered.at(1) - rec->published, 110ms);
  EXPECT_EQ(rec->delivered.at(2) - rec->published, 120ms);
  // Node 1 stops forwarding messages; control still flows.
  net.set_send_filter(1, [](NodeId, NodeId, pubsub::Rpc& rpc) {
    rpc.publish.clear();
    return !rpc.empty();
  });
  auto dropped = net.publish(0, kTopic, payload("dropped"));
  net.run_for(1s);
  EXPECT_FALSE(net.message(*dropped)->delivered.contains(2));
  EXPECT_GT(net.counters().rpcs_filtered, 0u);
}

// ---- 1, 2, 4: a large random network
// -------------------------------------------------------------

struct LargeRun {
  Counters counters;
  DeliveryStats stats;
  std::map<size_t, size_t> mesh;
  size_t mesh_out_of_bounds = 0;  // among routers with at least D_lo candidate peers
  size_t few_candidates = 0;      // routers with fewer than D_lo connected peers
  double average_degree = 0;
  std::vector<std::map<NodeId, Time>> deliveries;  // per published message
  uint64_t iwant_served = 0;
  double wall_seconds = 0;
};

// `nodes` routers with default gossipsub and score params (the topic scored with the default
// TopicScoreParams), each dialing `dials` random others (average degree ~2*dials), links
// uniform 20-80 ms with `loss`; 10 s of warm-up, then `messages` publications from random nodes
// 250 ms apart, then 5 s to settle. Messages are signed (StrictSign, default p2pmq ids) unless
// `no_sign` (StrictNoSign with content ids).
LargeRun run_large(size_t nodes, size_t dials, double loss, size_t messages, uint64_t seed,
                   bool no_sign = false) {
  WallClock wall;
  NetworkConfig nc;
  nc.seed = seed;
  nc.loss = loss;
  Network net(nc);
  NodeConfig cfg;
  cfg.score.topics[kTopic] = {};
  if (no_sign) {
    cfg.gossip.signature_policy = pubsub::SignaturePolicy::strict_no_sign;
    cfg.gossip.message_id_fn = pubsub::MessageIdFn::content;
  }
  net.add_nodes(nodes, cfg);
  net.connect_random(dials);
  for (NodeId n = 0; n < nodes; ++n) net.join(n, kTopic);
  net.run_for(10s);

  Rng rng(seed * 31 + 7);
  std::uniform_int_distribution<NodeId> pick(0, nodes - 1);
  for (size_t i = 0; i < messages; ++i) {
    auto id = net.publish(pick(rng), kTopic, payload("message " + std::to_string(i)));
    EXPECT_TRUE(id) << id.error().to_string();
    net.run_for(250ms);
  }
  net.run_for(5s);

  LargeRun out;
  out.counters = net.counters();
  out.stats = net.delivery(net.published());
  out.mesh = net.mesh_degrees(kTopic);
  const auto& gc = net.router(0).config();
  size_t degree_sum = 0;
  for (NodeId n = 0; n < nodes; ++n) {
    size_t candidates = net.neighbours(n).size();  // every node is subscribed
    degree_sum += candidates;
    if (candidates < gc.D_lo) {
      ++out.few_candidates;
      continue;
    }
    size_t m = net.router(n).mesh(kTopic).size();
    if (m < gc.D_lo || m > gc.D_hi) ++out.mesh_out_of_bounds;
  }
  out.average_degree = static_cast<double>(degree_sum) / static_cast<double>(nodes);
  for (const auto& id : net.published()) out.deliveries.push_back(net.message(id)->delivered);
  out.iwant_served = net.router_counters().iwant_served;
  out.wall_seconds = wall.seconds();
  return out;
}

void print(const char* name, const LargeRun& r) {
  std::cout << "[sim] " << name << ": delivery " << r.stats.delivered << "/" << r.stats.expected
            << " = " << r.stats.ratio() << " (worst message " << r.stats.worst_ratio << ")"
            << ", latency p50 " << ms(r.stats.percentile(50)) << " ms, p99 "
            << ms(r.stats.percentile(99)) << " ms, max " << ms(r.stats.percentile(100))
            << " ms; average degree " << r.average_degree << "; mesh sizes " << histogram(r.mesh)
            << "(out of bounds " << r.mesh_out_of_bounds << ", few candidates " << r.few_candidates
            << "); rpcs sent " << r.counters.rpcs_sent << ", lost " << r.counters.rpcs_lost
            << ", message copies " << r.counters.messages_sent << ", iwant served "
            << r.iwant_served << ", events " << r.counters.events << "; wall " << r.wall_seconds
            << " s\n";
}

void record(const LargeRun& r) {
  ::testing::Test::RecordProperty("delivery_ratio", std::to_string(r.stats.ratio()));
  ::testing::Test::RecordProperty("latency_p50_ms", std::to_string(ms(r.stats.percentile(50))));
  ::testing::Test::RecordProperty("latency_p99_ms", std::to_string(ms(r.stats.percentile(99))));
  ::testing::Test::RecordProperty("wall_seconds", std::to_string(r.wall_seconds));
}

// 1,000 signed-message routers (StrictSign: every router verifies each message once).
TEST(SimLarge, ThousandRoutersDeliverEveryMessageWithBoundedMeshes) {
  LargeRun r = run_large(1000, 10, 0.0, 20, 1);
  print("1000 routers, 0% loss, StrictSign", r);
  record(r);
  EXPECT_EQ(r.stats.messages, 20u);
  EXPECT_EQ(r.stats.expected, 20u * 999);
  EXPECT_EQ(r.stats.delivered, r.stats.expected);
  EXPECT_EQ(r.mesh_out_of_bounds, 0u) << histogram(r.mesh);
  EXPECT_EQ(r.counters.duplicate_deliveries, 0u);
  EXPECT_EQ(r.counters.timer_stalls, 0u);
}

TEST(SimLarge, ThousandRoutersOnePercentLossGossipRepairs) {
  LargeRun r = run_large(1000, 10, 0.01, 20, 2);
  print("1000 routers, 1% loss, StrictSign", r);
  record(r);
  EXPECT_GT(r.counters.rpcs_lost, 0u);
  EXPECT_GE(r.stats.ratio(), 0.999);
  EXPECT_EQ(r.counters.duplicate_deliveries, 0u);
}

TEST(SimLarge, SameSeedSameMetrics) {
  auto a = run_large(300, 8, 0.01, 10, 5);
  auto b = run_large(300, 8, 0.01, 10, 5);
  auto c = run_large(300, 8, 0.01, 10, 6);
  print("300 routers, 1% loss, seed 5", a);
  EXPECT_EQ(a.counters, b.counters);
  EXPECT_EQ(a.stats, b.stats);
  EXPECT_EQ(a.mesh, b.mesh);
  EXPECT_EQ(a.deliveries, b.deliveries);
  EXPECT_EQ(a.iwant_served, b.iwant_served);
  EXPECT_NE(a.counters, c.counters);  // and the seed matters
}

// ---- 3: REJECT-spam, then black-holing, by 400 Sybils around 100 honest routers
// ------------------
//
// StrictNoSign with content ids for this run: 500 routers and ~150 messages would spend most of
// the CPU on Ed25519, which this scenario does not exercise.
//
// Score parameters (the topic's TopicScoreParams; everything else default):
//   P1 time in mesh: default (+1 after an hour).
//   P2 first deliveries: weight 1, cap 20 (instead of 100), so positive credit an attacker can
//     bank while behaving is small next to one invalid message.
//   P3/P3b off: the no-forward phase starts after the spam phase, when every attacker is already
//     far below zero at every honest neighbour and out of its mesh (maintain_mesh prunes negative
//     peers), so honest meshes consist of honest peers. P3 would need a delivery window above
//     the 20-80 ms link latency and a threshold matched to the topic rate, or it punishes honest
//     mesh peers of a quiet topic.
//   P4 invalid messages: weight -1000 (as Lotus does for its message topics), default decay (to
//     1% in an hour): one REJECTed message takes the sender to -1000, far below the graylist
//     threshold (-80) whatever P1/P2 it earned, and it stays there for the rest of the run (the
//     squared counter decays by ~0.9974 a second).
//   Thresholds: defaults (gossip -10, publish -50, graylist -80).
pubsub::TopicScoreParams attack_topic_params() {
  pubsub::TopicScoreParams t;
  t.first_message_deliveries_cap = 20;
  t.invalid_message_deliveries_weight = -1000;
  return t;
}

bool is_spam(const pubsub::Message& m) {
  static const Bytes prefix = to_bytes("invalid");
  return m.data.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), m.data.begin());
}

TEST(SimAttack, SybilsSpamThenBlackholeHonestKeepDeliveringAndGraylistThem) {
  WallClock wall;
  constexpr size_t kHonest = 100, kAttackers = 400, kSpamPerAttacker = 5;
  NetworkConfig nc;
  nc.seed = 3;
  Network net(nc);
  NodeConfig cfg;
  cfg.gossip.signature_policy = pubsub::SignaturePolicy::strict_no_sign;
  cfg.gossip.message_id_fn = pubsub::MessageIdFn::content;
  cfg.score.topics[kTopic] = attack_topic_params();
  std::vector<NodeId> honest = net.add_nodes(kHonest, cfg);
  std::vector<NodeId> attackers = net.add_nodes(kAttackers, cfg);
  std::vector<NodeId> all;
  for (NodeId n = 0; n < net.size(); ++n) all.push_back(n);
  // Honest routers dial 4 honest ones (an honest subgraph of degree ~8); each Sybil dials 5
  // honest routers and 5 random ones, so an honest router has ~24 attacker neighbours and ~8
  // honest ones, and most of its initial mesh is attackers.
  net.connect_random(honest, honest, 4);
  net.connect_random(attackers, honest, 5);
  net.connect_random(attackers, all, 5);
  for (NodeId n : all) net.join(n, kTopic);

  // Honest validators REJECT spam. Attackers accept honest messages (they relay them normally
  // until the black-hole phase) and IGNORE each other's spam: each Sybil sends its own spam
  // straight to its neighbours by flood publishing, which keeps the run cheap.
  for (NodeId h : honest) {
    net.set_validator(h, [](NodeId, const pubsub::ValidateMessage& v) {
      return Validation{is_spam(v.message) ? pubsub::Verdict::reject : pubsub::Verdict::accept};
    });
  }
  for (NodeId a : attackers) {
    net.set_validator(a, [](NodeId, const pubsub::ValidateMessage& v) {
      return Validation{is_spam(v.message) ? pubsub::Verdict::ignore : pubsub::Verdict::accept};
    });
  }

  const Time t0 = net.now();
  const Time spam_start = t0 + 10s, blackhole_start = t0 + 20s, publish_end = t0 + 50s;
  const Time end = t0 + 60s;
  Rng rng(99);
  // Honest publications every 500 ms from 2 s to 50 s.
  std::vector<std::pair<Time, MessageId>> honest_messages;
  std::uniform_int_distribution<size_t> pick_honest(0, kHonest - 1);
  size_t count = 0;
  for (Time t = t0 + 2s; t < publish_end; t += 500ms) {
    NodeId from = honest[pick_honest(rng)];
    std::string tag = "honest " + std::to_string(count++);
    net.at(t, [&net, &honest_messages, from, tag] {
      auto id = net.publish(from, kTopic, payload(tag));
      ASSERT_TRUE(id) << id.error().to_string();
      honest_messages.emplace_back(net.now(), *id);
    });
  }
  // Phase 1: every Sybil publishes kSpamPerAttacker invalid messages at random times.
  std::uniform_int_distribution<int64_t> spam_offset(0, 9'999);
  for (NodeId a : attackers) {
    for (size_t i = 0; i < kSpamPerAttacker; ++i) {
      std::string tag = "invalid " + std::to_string(a) + " " + std::to_string(i);
      net.at(spam_start + std::chrono::milliseconds(spam_offset(rng)),
             [&net, a, tag] { (void)net.publish(a, kTopic, payload(tag)); });
    }
  }
  // Phase 2: Sybils forward nothing (every message dropped, even IWANT replies); control flows.
  net.at(blackhole_start, [&net, &attackers] {
    for (NodeId a : attackers) {
      net.set_send_filter(a, [](NodeId, NodeId, pubsub::Rpc& rpc) {
        rpc.publish.clear();
        return !rpc.empty();
      });
    }
  });
  net.run_until(end);

  auto ids_in = [&](Time from, Time to) {
    std::vector<MessageId> ids;
    for (const auto& [t, id] : honest_messages) {
      if (t >= from && t < to) ids.push_back(id);
    }
    return ids;
  };
  DeliveryStats warm = net.delivery(ids_in(t0, spam_start), honest);
  DeliveryStats spam = net.delivery(ids_in(spam_start, blackhole_start), honest);
  DeliveryStats hole = net.delivery(ids_in(blackhole_start, end), honest);
  DeliveryStats attack = net.delivery(ids_in(spam_start, end), honest);

  // Scores of attackers and honest peers at honest routers, and honest meshes.
  const double graylist = pubsub::PeerScoreThresholds{}.graylist_threshold;
  double highest_attacker = -1e300, lowest_attacker = 1e300, lowest_honest = 1e300;
  size_t attacker_pairs = 0, above_graylist = 0, honest_slots = 0, attacker_slots = 0;
  size_t thin_meshes = 0, thin_honest_peers = 0, thin_backing_off = 0;
  for (NodeId h : honest) {
    const pubsub::Router& r = net.router(h);
    for (NodeId n : net.neighbours(h)) {
      double s = *net.score(h, n);
      if (n >= kHonest) {
        ++attacker_pairs;
        highest_attacker = std::max(highest_attacker, s);
        lowest_attacker = std::min(lowest_attacker, s);
        if (s >= graylist) ++above_graylist;
      } else {
        lowest_honest = std::min(lowest_honest, s);
      }
    }
    for (const auto& p : r.mesh(kTopic))
      ++(*net.node_of(p) < kHonest ? honest_slots : attacker_slots);
    // Thin honest meshes: honest peers pruned while attackers crowded the mesh stay in backoff
    // (prune_backoff, 60 s) after the attackers are gone.
    if (r.mesh(kTopic).size() < r.config().D_lo) {
      ++thin_meshes;
      for (NodeId n : net.neighbours(h)) {
        if (n >= kHonest) continue;
        ++thin_honest_peers;
        if (r.in_backoff(net.peer_id(n), kTopic, net.now())) ++thin_backing_off;
      }
    }
  }
  auto rc = net.router_counters();
  std::cout << "[sim] attack (100 honest + 400 Sybils, StrictNoSign): honest delivery warm-up "
            << warm.ratio() << ", spam phase " << spam.ratio() << " (" << spam.messages
            << " msgs), black-hole phase " << hole.ratio() << " (" << hole.messages
            << " msgs), after attack start " << attack.delivered << "/" << attack.expected << " = "
            << attack.ratio() << "; latency p50 " << ms(attack.percentile(50)) << " ms, p99 "
            << ms(attack.percentile(99))
            << " ms; attacker scores at honest peers: " << attacker_pairs << " pairs, highest "
            << highest_attacker << ", lowest " << lowest_attacker << ", above graylist "
            << above_graylist << "; lowest honest-honest score " << lowest_honest
            << "; honest mesh slots: " << honest_slots << " honest, " << attacker_slots
            << " attackers; honest mesh sizes " << histogram(net.mesh_degrees(kTopic, honest))
            << "(" << thin_meshes << " under D_lo; " << thin_backing_off << " of their "
            << thin_honest_peers << " honest peers in backoff); rejected " << rc.rejected
            << ", graylisted rpcs " << rc.graylisted_rpcs << ", filtered rpcs "
            << net.counters().rpcs_filtered << ", events " << net.counters().events << "; wall "
            << wall.seconds() << " s\n";
  RecordProperty("honest_delivery_after_attack", std::to_string(attack.ratio()));
  RecordProperty("highest_attacker_score", std::to_string(highest_attacker));

  EXPECT_GT(spam.messages, 0u);
  EXPECT_GT(hole.messages, 0u);
  EXPECT_GE(attack.ratio(), 0.99);
  EXPECT_GT(attacker_pairs, 0u);
  EXPECT_EQ(above_graylist, 0u) << "highest attacker score " << highest_attacker;
  EXPECT_LT(highest_attacker, graylist);
  EXPECT_GT(lowest_honest, graylist);  // honest peers were not punished for the attack
  EXPECT_EQ(attacker_slots, 0u);       // no attacker left in an honest mesh
  EXPECT_EQ(net.counters().duplicate_deliveries, 0u);
}

}  // namespace
}  // namespace p2pmq::sim
