// Kademlia lookups in virtual time (sim/dht_sim.hpp). Deterministic: fixed seeds, no sleeps, no
// real clock in any assertion (wall times are printed only). Sized for CI under ASan: the DhtSim*
// suite takes ~3 s in a release build and ~20 s under ASan+UBSan (the 500-node test ~14 s).
#include "sim/dht_sim.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "sim/network.hpp"

namespace p2pmq::sim {
namespace {

using namespace std::chrono_literals;

double wall_seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string topic_name(size_t t) {
  return "topic-" + std::to_string(t);
}

// ---- The harness itself ------------------------------------------------------------------------

TEST(DhtSim, BootstrapIdentifyAndOneRoundTripPerRequest) {
  DhtSimConfig c;
  c.min_latency = c.max_latency = 30ms;
  DhtNetwork net(c);
  const DhtNodeId b = net.add_node(dht::Mode::bootstrapper);
  const DhtNodeId x = net.add_node();
  const DhtNodeId y = net.add_node();
  EXPECT_EQ(net.bootstrappers(), std::vector<DhtNodeId>{b});
  net.start(b);
  net.start(y);
  net.run_for(1s);
  net.start(x);
  net.run_for(1s);
  // Identify added the bootstrapper and the joiners to each other's tables; x's self lookup
  // (asking b) named y, and y's answer put it in x's table.
  EXPECT_TRUE(net.bootstrapped(x));
  EXPECT_TRUE(net.dht(x).table().contains(net.peer_id(b)));
  EXPECT_TRUE(net.dht(b).table().contains(net.peer_id(x)));
  EXPECT_TRUE(net.dht(x).table().contains(net.peer_id(y)));
  EXPECT_TRUE(net.dht(y).table().contains(net.peer_id(x)));  // identify on x's connection

  const LookupId id = net.find_node(x, net.peer_id(y).bytes());
  net.run_for(5s);
  const LookupRecord& r = net.lookup(id);
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.state, dht::QueryState::completed);
  ASSERT_FALSE(r.closest.empty());
  EXPECT_EQ(r.closest.front(), net.peer_id(y));
  EXPECT_EQ(r.target, net.peer_id(y));
  // y was in x's table: found at once; both peers asked in parallel, one round trip.
  EXPECT_EQ(r.found_at, r.started);
  EXPECT_EQ(r.found_hops, 0u);
  EXPECT_EQ(r.closest_hops, 1u);
  EXPECT_EQ(*r.finished - r.started, 60ms);
  EXPECT_EQ(r.stats.requests, 2u);
  EXPECT_EQ(net.counters().refused, 0u);
}

TEST(DhtSim, ConnectionSetupDialFailuresAndLoss) {
  DhtSimConfig c;
  c.min_latency = c.max_latency = 25ms;
  c.connect_rtts = 2;
  DhtNetwork net(c);
  const DhtNodeId b = net.add_node(dht::Mode::bootstrapper);
  const DhtNodeId x = net.add_node();
  const DhtNodeId y = net.add_node();
  const DhtNodeId z = net.add_node();
  for (DhtNodeId n : {b, x, y, z}) net.start(n);
  net.run_for(2s);
  EXPECT_TRUE(net.connected(x, b));
  // Bootstrap took connect (2 RTT) + identify (1 RTT); everyone knows everyone by now.
  ASSERT_TRUE(net.dht(x).table().contains(net.peer_id(z)));

  // z leaves: x's lookup of it dials z (fails after dial_timeout) and asks the others.
  net.go_offline(z);
  EXPECT_FALSE(net.connected(x, z));
  const uint64_t failures_before = net.counters().dial_failures;
  const LookupId id = net.find_node(x, net.peer_id(z).bytes());
  net.run_for(30s);
  const LookupRecord& r = net.lookup(id);
  ASSERT_TRUE(r.done());
  EXPECT_GT(net.counters().dial_failures, failures_before);
  EXPECT_GE(r.stats.failures, 1u);
  EXPECT_GE(*r.finished - r.started, c.dial_timeout);
  EXPECT_TRUE(std::find(r.closest.begin(), r.closest.end(), net.peer_id(z)) == r.closest.end());

  // A fresh network with every message lost: requests fail at request_timeout.
  DhtSimConfig lossy = c;
  lossy.loss = 1.0;
  DhtNetwork dead(lossy);
  const DhtNodeId b2 = dead.add_node(dht::Mode::bootstrapper);
  const DhtNodeId x2 = dead.add_node();
  dead.start(b2);
  dead.start(x2);
  dead.run_for(30s);
  EXPECT_GT(dead.counters().identify_adds, 0u);  // identify is not lost (then timeouts evict)
  EXPECT_GT(dead.counters().lost, 0u);
  EXPECT_GT(dead.counters().timeouts, 0u);
  EXPECT_EQ(dead.counters().answers, 0u);
}

// ---- Discovery of topic peers for gossipsub ------------------------------------------------

struct Scenario {
  size_t subscribers = 500;
  size_t bootstrappers = 2;
  size_t topics = 5;
  size_t find_node_lookups = 100;
  uint64_t seed = 11;
  double loss = 0;
  double offline = 0;  // fraction of subscribers leaving before the lookups
  bool through_codec = false;
  // true: Dht::start_providing when the node starts (the maintenance loop announces it, as an
  // agent subscribed at start-up does); false: one announcement (provide_once) per node once
  // every node has joined.
  bool provide_at_join = true;
  bool with_gossip = false;  // also build the gossipsub Network (its identities are the DHT's)
  // GET_PROVIDERS stops once this many providers are known: gossipsub's D + D_lo, what the
  // agent's topic discovery asks for (apps/p2pmq/discovery.cpp).
  size_t wanted_providers = 6 + 5;
};

struct ScenarioRun {
  std::unique_ptr<Network> gossip;  // with_gossip: same identities, index for index
  std::unique_ptr<DhtNetwork> dht;
  std::vector<size_t> topic_of;            // per node; SIZE_MAX for bootstrappers
  std::vector<LookupId> provider_lookups;  // per node; only subscribers
  std::vector<LookupId> find_node_lookups;
  std::vector<DhtNodeId> find_node_targets;
  double wall_seconds = 0;
};

// Bootstrappers start first; subscribers join 100 ms apart, each knowing only the bootstrappers,
// and announce topic_key(their topic) (see Scenario::provide_at_join); then each online
// subscriber looks up the providers of its topic (GET_PROVIDERS, up to wanted_providers) and
// `find_node_lookups` FIND_NODEs of random online peers run from random online nodes.
ScenarioRun run_scenario(const Scenario& s) {
  auto wall = std::chrono::steady_clock::now();
  ScenarioRun run;
  const size_t total = s.bootstrappers + s.subscribers;
  if (s.with_gossip) {
    NetworkConfig nc;
    nc.seed = s.seed;
    run.gossip = std::make_unique<Network>(nc);
    NodeConfig gc;
    // Content ids without signatures: Ed25519 is not what this checks, and it is slow under ASan.
    gc.gossip.signature_policy = pubsub::SignaturePolicy::strict_no_sign;
    gc.gossip.message_id_fn = pubsub::MessageIdFn::content;
    for (size_t t = 0; t < s.topics; ++t) gc.score.topics[topic_name(t)] = {};
    run.gossip->add_nodes(total, gc);
  }

  DhtSimConfig dc;
  dc.seed = s.seed;
  dc.loss = s.loss;
  dc.through_codec = s.through_codec;
  run.dht = std::make_unique<DhtNetwork>(dc);
  DhtNetwork& net = *run.dht;
  for (size_t i = 0; i < total; ++i)
    net.add_node(i < s.bootstrappers ? dht::Mode::bootstrapper : dht::Mode::server,
                 run.gossip ? std::optional<dht::PeerId>(run.gossip->peer_id(i)) : std::nullopt);
  run.topic_of.assign(total, SIZE_MAX);
  for (size_t i = s.bootstrappers; i < total; ++i) run.topic_of[i] = i % s.topics;

  const dht::Time t0 = net.now();
  for (size_t i = 0; i < s.bootstrappers; ++i) net.start(i);
  std::mt19937_64 rng(s.seed * 7919 + 1);
  std::uniform_int_distribution<int64_t> offset_ms(0, 9'999);
  const dht::Time joined = t0 + 1s + s.subscribers * 100ms + 10s;
  for (size_t i = s.bootstrappers; i < total; ++i) {
    const Bytes key = dht::topic_key(topic_name(run.topic_of[i]));
    net.at(t0 + 1s + (i - s.bootstrappers) * 100ms, [&net, &s, i, key] {
      if (s.provide_at_join) {
        auto ok = net.provide(i, key);
        EXPECT_TRUE(ok) << ok.error().to_string();
      }
      net.start(i);
    });
    if (!s.provide_at_join)
      net.at(joined + std::chrono::milliseconds(offset_ms(rng)),
             [&net, i, key] { net.provide_once(i, key); });
  }
  const dht::Time provided = joined + 10s + 30s;
  net.run_until(provided);

  std::vector<DhtNodeId> leaving;
  for (size_t i = s.bootstrappers; i < total; ++i)
    if (std::uniform_real_distribution<double>(0, 1)(rng) < s.offline) leaving.push_back(i);
  for (DhtNodeId n : leaving) net.go_offline(n);

  run.provider_lookups.assign(total, SIZE_MAX);
  for (size_t i = s.bootstrappers; i < total; ++i) {
    if (!net.online(i)) continue;
    const Bytes key = dht::topic_key(topic_name(run.topic_of[i]));
    net.at(provided + std::chrono::milliseconds(offset_ms(rng)), [&net, &run, &s, i, key] {
      run.provider_lookups[i] = net.get_providers(i, key, s.wanted_providers);
    });
  }
  std::vector<DhtNodeId> online;
  for (DhtNodeId i = 0; i < total; ++i)
    if (net.online(i)) online.push_back(i);
  std::uniform_int_distribution<size_t> pick(0, online.size() - 1);
  run.find_node_lookups.assign(s.find_node_lookups, SIZE_MAX);
  for (size_t l = 0; l < s.find_node_lookups; ++l) {
    DhtNodeId from = online[pick(rng)], to = online[pick(rng)];
    while (to == from) to = online[pick(rng)];
    run.find_node_targets.push_back(to);
    net.at(provided + std::chrono::milliseconds(offset_ms(rng)), [&net, &run, l, from, to] {
      run.find_node_lookups[l] = net.find_node(from, net.peer_id(to).bytes());
    });
  }
  net.run_until(provided + 10s + 70s);  // every lookup ends within query_timeout (60 s)
  run.wall_seconds = wall_seconds_since(wall);
  return run;
}

TEST(DhtSim, FiveHundredNodesTwoBootstrappersFiveTopicsFindTheirTopicPeers) {
  Scenario s;
  s.with_gossip = true;
  ScenarioRun run = run_scenario(s);
  DhtNetwork& net = *run.dht;
  const size_t total = s.bootstrappers + s.subscribers;
  constexpr size_t kDlo = 5;  // gossipsub's D_lo: what a node needs to fill its mesh

  // Every subscriber found at least D_lo other subscribers of its topic.
  size_t fewest = SIZE_MAX, sum = 0, wrong_topic = 0;
  std::vector<std::set<DhtNodeId>> found(total);
  for (size_t i = s.bootstrappers; i < total; ++i) {
    ASSERT_NE(run.provider_lookups[i], SIZE_MAX);
    const LookupRecord& r = net.lookup(run.provider_lookups[i]);
    ASSERT_TRUE(r.done()) << "node " << i;
    EXPECT_TRUE(r.state == dht::QueryState::stopped || r.state == dht::QueryState::completed)
        << "node " << i << ": " << dht::query_state_name(r.state);
    for (const auto& p : r.providers) {
      auto n = net.node_of(p);
      ASSERT_TRUE(n);
      if (*n == i) continue;
      if (run.topic_of[*n] != run.topic_of[i]) ++wrong_topic;
      found[i].insert(*n);
    }
    fewest = std::min(fewest, found[i].size());
    sum += found[i].size();
    EXPECT_GE(found[i].size(), kDlo) << "node " << i;
  }
  EXPECT_EQ(wrong_topic, 0u);

  // FIND_NODE of random peers ends at the exact target.
  size_t exact = 0, hops_max = 0;
  for (size_t l = 0; l < run.find_node_lookups.size(); ++l) {
    const LookupRecord& r = net.lookup(run.find_node_lookups[l]);
    ASSERT_TRUE(r.done());
    ASSERT_FALSE(r.closest.empty());
    if (r.closest.front() == net.peer_id(run.find_node_targets[l])) ++exact;
    hops_max = std::max(hops_max, r.found_hops);
  }
  EXPECT_EQ(exact, run.find_node_lookups.size());

  // Gossipsub over the discovered peers: every subscriber dials the providers it found, joins its
  // topic; one message per topic reaches every subscriber of that topic.
  Network& g = *run.gossip;
  for (size_t i = s.bootstrappers; i < total; ++i)
    for (DhtNodeId p : found[i]) g.connect(i, p);
  for (size_t i = s.bootstrappers; i < total; ++i) g.join(i, topic_name(run.topic_of[i]));
  g.run_for(3s);  // heartbeats graft the meshes
  std::mt19937_64 rng(s.seed);
  std::vector<MessageId> ids;
  for (size_t t = 0; t < s.topics; ++t) {
    auto subs = g.subscribers(topic_name(t));
    ASSERT_FALSE(subs.empty());
    NodeId from = subs[std::uniform_int_distribution<size_t>(0, subs.size() - 1)(rng)];
    auto id = g.publish(from, topic_name(t), to_bytes("hello " + topic_name(t)));
    ASSERT_TRUE(id) << id.error().to_string();
    ids.push_back(*id);
  }
  g.run_for(5s);
  for (const auto& id : ids) {
    DeliveryStats d = g.delivery({id});
    EXPECT_EQ(d.delivered, d.expected) << "topic " << g.message(id)->topic;
  }
  std::map<size_t, size_t> mesh;
  for (size_t t = 0; t < s.topics; ++t)
    for (const auto& [size, count] : g.mesh_degrees(topic_name(t))) mesh[size] += count;
  std::map<size_t, size_t> degree;
  for (size_t i = s.bootstrappers; i < total; ++i) ++degree[g.neighbours(i).size()];

  const auto& c = net.counters();
  std::cout << "[dht-sim] " << s.subscribers << " subscribers + " << s.bootstrappers
            << " bootstrappers, " << s.topics << " topics: topic peers found min " << fewest
            << ", mean " << static_cast<double>(sum) / static_cast<double>(s.subscribers)
            << "; FIND_NODE exact " << exact << "/" << run.find_node_lookups.size() << ", max hops "
            << hops_max << "; requests " << c.requests << ", lookups " << c.lookups << ", probes "
            << c.probes << ", connections " << c.connections << "; gossip degree:count ";
  for (const auto& [d, n] : degree) std::cout << d << ":" << n << " ";
  std::cout << "mesh size:count ";
  for (const auto& [m, n] : mesh) std::cout << m << ":" << n << " ";
  std::cout << "; wall " << run.wall_seconds << " s\n";
}

// Announced once the network has formed, a topic's record sits on all 20 nodes closest to its
// key, and every lookup of it finds topic peers.
TEST(DhtSim, ProvidesAfterJoiningReachTheTrueClosestNodes) {
  Scenario s;
  s.subscribers = 100;
  s.seed = 17;
  s.provide_at_join = false;
  s.find_node_lookups = 50;
  ScenarioRun run = run_scenario(s);
  DhtNetwork& net = *run.dht;
  const size_t total = s.bootstrappers + s.subscribers;
  for (size_t t = 0; t < s.topics; ++t) {
    const Bytes key = dht::topic_key(topic_name(t));
    size_t holders = 0;
    for (DhtNodeId n : net.closest_nodes(key, 20))
      if (!net.dht(n).stored_providers(key, net.now(), SIZE_MAX).empty()) ++holders;
    EXPECT_EQ(holders, 20u) << "topic " << t;
  }
  size_t announcements = 0;
  for (LookupId id = 0; id < net.lookups(); ++id) {
    const LookupRecord& r = net.lookup(id);
    if (r.purpose != LookupPurpose::provide) continue;
    ++announcements;
    EXPECT_EQ(r.state, dht::QueryState::completed);
    EXPECT_EQ(r.add_providers, 20u);
  }
  EXPECT_EQ(announcements, s.subscribers);
  for (size_t i = s.bootstrappers; i < total; ++i) {
    const LookupRecord& r = net.lookup(run.provider_lookups[i]);
    ASSERT_TRUE(r.done());
    size_t others = 0;
    for (const auto& p : r.providers) {
      auto n = net.node_of(p);
      ASSERT_TRUE(n);
      EXPECT_EQ(run.topic_of[*n], run.topic_of[i]);
      others += *n != i;
    }
    EXPECT_GE(others, 5u) << "node " << i;
  }
  for (size_t l = 0; l < run.find_node_lookups.size(); ++l) {
    const LookupRecord& r = net.lookup(run.find_node_lookups[l]);
    ASSERT_FALSE(r.closest.empty());
    EXPECT_EQ(r.closest.front(), net.peer_id(run.find_node_targets[l]));
  }
  std::cout << "[dht-sim] " << s.subscribers << " subscribers, provides after joining: requests "
            << net.counters().requests << ", lookups " << net.counters().lookups << "; wall "
            << run.wall_seconds << " s\n";
}

TEST(DhtSim, LossAndDepartedNodesStillFindTargetsAndTopicPeers) {
  Scenario s;
  s.subscribers = 120;
  s.seed = 23;
  s.loss = 0.02;
  s.offline = 0.1;
  s.find_node_lookups = 60;
  ScenarioRun run = run_scenario(s);
  DhtNetwork& net = *run.dht;
  const size_t total = s.bootstrappers + s.subscribers;
  // The target's record always arrives; the target's own answer may be lost (then the lookup
  // counts it as failed and it is missing from closest()).
  size_t exact = 0, found = 0;
  for (size_t l = 0; l < run.find_node_lookups.size(); ++l) {
    const LookupRecord& r = net.lookup(run.find_node_lookups[l]);
    ASSERT_TRUE(r.done());
    found += r.found_at.has_value();
    if (!r.closest.empty() && r.closest.front() == net.peer_id(run.find_node_targets[l])) ++exact;
  }
  size_t lookups = 0, with_dlo = 0;
  for (size_t i = s.bootstrappers; i < total; ++i) {
    if (run.provider_lookups[i] == SIZE_MAX) continue;
    const LookupRecord& r = net.lookup(run.provider_lookups[i]);
    ASSERT_TRUE(r.done());
    ++lookups;
    size_t others = 0;
    for (const auto& p : r.providers)
      if (p != net.peer_id(i)) ++others;
    if (others >= 5) ++with_dlo;
  }
  const auto& c = net.counters();
  std::cout << "[dht-sim] " << s.subscribers
            << " subscribers, 2% loss, 10% departed: FIND_NODE found " << found << ", exact "
            << exact << "/" << run.find_node_lookups.size() << ", topic lookups with >= 5 peers "
            << with_dlo << "/" << lookups << "; lost " << c.lost << ", timeouts " << c.timeouts
            << ", dial failures " << c.dial_failures << "; wall " << run.wall_seconds << " s\n";
  EXPECT_GT(c.lost, 0u);
  EXPECT_GT(c.dial_failures, 0u);
  EXPECT_GT(c.timeouts, 0u);
  // Lost answers and departed peers cost time, not results: other peers know the same targets.
  EXPECT_EQ(found, run.find_node_lookups.size());
  EXPECT_GE(exact * 100, run.find_node_lookups.size() * 90);
  EXPECT_EQ(with_dlo, lookups);
}

TEST(DhtSim, SameSeedSameLookups) {
  auto summary = [](uint64_t seed) {
    Scenario s;
    s.subscribers = 40;
    s.topics = 2;
    s.find_node_lookups = 20;
    s.seed = seed;
    s.loss = 0.01;
    s.through_codec = true;  // and every message survives the codec
    ScenarioRun run = run_scenario(s);
    std::vector<std::tuple<int64_t, int64_t, size_t, size_t, std::vector<dht::PeerId>>> out;
    for (LookupId id = 0; id < run.dht->lookups(); ++id) {
      const LookupRecord& r = run.dht->lookup(id);
      out.emplace_back(r.finished ? (*r.finished - r.started).count() : -1,
                       r.found_at ? (*r.found_at - r.started).count() : -1, r.stats.requests,
                       r.found_hops, r.closest);
    }
    return std::make_pair(out, run.dht->counters());
  };
  auto a = summary(5), b = summary(5), c = summary(6);
  EXPECT_GT(a.second.bytes, 0u);
  EXPECT_EQ(a.first, b.first);
  EXPECT_EQ(a.second.events, b.second.events);
  EXPECT_EQ(a.second.requests, b.second.requests);
  EXPECT_EQ(a.second.lost, b.second.lost);
  EXPECT_NE(a.second.requests, c.second.requests);  // and the seed matters
}

}  // namespace
}  // namespace p2pmq::sim
