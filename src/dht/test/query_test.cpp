#include "dht/query.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <random>
#include <set>

#include "dht/dht.hpp"
#include "helpers.hpp"

namespace p2pmq::dht {
namespace {

using test::peer;

const Time t0{};

// ~1,000 in-memory DHT servers, each answering from its own routing table (filled with every
// other peer, so buckets hold what Kademlia would keep). Responses arrive after a per-request
// latency; dead peers never answer, flaky ones fail at once.
class Network {
 public:
  explicit Network(int n, uint64_t seed = 1) : rng_(seed) {
    for (int i = 0; i < n; ++i) ids_.push_back(peer(i));
    DhtConfig cfg;
    cfg.rate.burst = 1e6;
    for (int i = 0; i < n; ++i) nodes_.push_back(std::make_unique<Dht>(ids_[i], cfg));
    std::vector<int> order(n);
    for (int i = 0; i < n; ++i) order[i] = i;
    for (int i = 0; i < n; ++i) {
      std::shuffle(order.begin(), order.end(), rng_);
      for (int j : order)
        if (j != i) nodes_[i]->on_peer_alive(ids_[j], {}, t0);
    }
  }

  int index(const PeerId& id) const {
    return int(std::find(ids_.begin(), ids_.end(), id) - ids_.begin());
  }
  Dht& node(int i) { return *nodes_[i]; }
  const PeerId& id(int i) const { return ids_[i]; }
  std::set<int> dead, flaky;

  // True k closest live peers to `key`, other than `origin`.
  std::vector<PeerId> truth(BytesView key, int origin, size_t k) const {
    std::vector<PeerId> live;
    for (int i = 0; i < int(ids_.size()); ++i)
      if (i != origin && !dead.contains(i) && !flaky.contains(i)) live.push_back(ids_[i]);
    KadKey t = kad_key(key);
    std::sort(live.begin(), live.end(), [&](const PeerId& a, const PeerId& b) {
      return xor_distance(t, kad_key(a)) < xor_distance(t, kad_key(b));
    });
    if (live.size() > k) live.erase(live.begin() + static_cast<std::ptrdiff_t>(k), live.end());
    return live;
  }

  // Drives `q` for `origin` until done, with virtual time. Returns the finishing time.
  Time run(Query& q, int origin, Time now) {
    struct Pending {
      Time at;
      PeerId from;
      std::optional<KadMessage> response;  // nullopt: failure
    };
    std::vector<Pending> pending;
    std::uniform_int_distribution<int> latency(5, 50);
    for (int guard = 0; guard < 100'000 && !q.done(); ++guard) {
      for (const KadPeer& p : q.poll(now)) {
        EXPECT_NE(p.id, id(origin));
        EXPECT_LE(q.in_flight(), alpha_seen_max);
        int i = index(p.id);
        if (dead.contains(i)) continue;  // never answers: only the timer notices
        Time at = now + std::chrono::milliseconds(latency(rng_));
        if (flaky.contains(i)) {
          pending.push_back({at, p.id, std::nullopt});
          continue;
        }
        auto r = node(i).handle_request(id(origin), q.request(), now);
        EXPECT_TRUE(r && *r);
        if (!r || !*r) continue;
        pending.push_back({at, p.id, **r});
      }
      // Next event: the earliest response or the query's own deadline.
      auto next = std::min_element(pending.begin(), pending.end(),
                                   [](const auto& a, const auto& b) { return a.at < b.at; });
      auto deadline = q.next_deadline();
      if (next != pending.end() && (!deadline || next->at <= *deadline)) {
        now = next->at;
        Pending ev = std::move(*next);
        pending.erase(next);
        if (ev.response)
          q.on_response(ev.from, *ev.response, now);
        else
          q.on_failure(ev.from, now);
      } else if (deadline) {
        now = *deadline;
        q.on_timer(now);
      }
    }
    return now;
  }

  size_t alpha_seen_max = 10;

 private:
  std::mt19937_64 rng_;
  std::vector<PeerId> ids_;
  std::vector<std::unique_ptr<Dht>> nodes_;
};

std::vector<PeerId> ids_of(const std::vector<KadPeer>& peers) {
  std::vector<PeerId> out;
  for (const auto& p : peers) out.push_back(p.id);
  return out;
}

Network& network() {
  static Network net(1000);
  return net;
}

TEST(Query, ConvergesToTheTrueKClosest) {
  Network& net = network();
  for (int t = 0; t < 10; ++t) {
    int origin = t * 97 % 1000;
    Bytes key = peer(100'000 + t).bytes();  // a peer not in the network
    Query q = net.node(origin).find_node(key, t0);
    net.run(q, origin, t0);
    EXPECT_EQ(q.state(), QueryState::completed);
    EXPECT_EQ(ids_of(q.closest()), net.truth(key, origin, 20)) << "lookup " << t;
    EXPECT_LE(q.stats().max_in_flight, 10u);
    EXPECT_EQ(q.stats().max_in_flight, 10u);  // there was always enough to ask
    EXPECT_LT(q.stats().requests, 200u);
  }
}

TEST(Query, RespectsAlphaAndFindsAnExistingPeer) {
  Network& net = network();
  QueryConfig cfg;
  cfg.alpha = 3;
  net.alpha_seen_max = 3;
  Bytes key = net.id(500).bytes();
  auto seeds = net.node(1).table().nearest(kad_key(key), 20);
  std::vector<KadPeer> s;
  for (const auto& e : seeds) s.push_back(KadPeer{e.id, e.addrs, {}});
  Query q(QueryKind::find_node, key, net.id(1), s, cfg, t0);
  net.run(q, 1, t0);
  net.alpha_seen_max = 10;
  EXPECT_EQ(q.stats().max_in_flight, 3u);
  ASSERT_FALSE(q.closest().empty());
  EXPECT_EQ(q.closest().front().id, net.id(500));
  EXPECT_EQ(ids_of(q.closest()), net.truth(key, 1, 20));
}

TEST(Query, BetaThreeStopsSoonerWithTheClosestPeers) {
  Network& net = network();
  QueryConfig full, fast;
  fast.beta = 3;
  Bytes key = peer(200'000).bytes();
  auto seed_entries = net.node(7).table().nearest(kad_key(key), 20);
  std::vector<KadPeer> seeds;
  for (const auto& e : seed_entries) seeds.push_back(KadPeer{e.id, e.addrs, {}});
  Query a(QueryKind::find_node, key, net.id(7), seeds, full, t0);
  Query b(QueryKind::find_node, key, net.id(7), seeds, fast, t0);
  net.run(a, 7, t0);
  net.run(b, 7, t0);
  EXPECT_EQ(b.state(), QueryState::completed);
  EXPECT_LE(b.stats().responses, a.stats().responses);
  auto truth = net.truth(key, 7, 3);
  auto got = ids_of(b.closest());
  ASSERT_GE(got.size(), 3u);
  EXPECT_EQ(std::vector<PeerId>(got.begin(), got.begin() + 3), truth);
}

TEST(Query, SurvivesDeadAndFailingPeers) {
  Network net(300, 7);
  std::mt19937_64 rng(3);
  for (int i = 1; i < 300; ++i) {
    if (rng() % 10 == 0)
      net.dead.insert(i);
    else if (rng() % 10 == 0)
      net.flaky.insert(i);
  }
  net.dead.erase(0), net.flaky.erase(0);
  Bytes key = peer(300'000).bytes();
  Query q = net.node(0).find_node(key, t0);
  Time end = net.run(q, 0, t0);
  EXPECT_EQ(q.state(), QueryState::completed);
  EXPECT_EQ(ids_of(q.closest()), net.truth(key, 0, 20));
  EXPECT_GT(q.stats().failures, 0u);
  EXPECT_LT(end - t0, 60s);  // finished by request timeouts, not the query timeout
}

TEST(Query, TimesOutAndStarves) {
  std::vector<KadPeer> seeds{{peer(1), {}, {}}, {peer(2), {}, {}}};
  QueryConfig cfg;
  cfg.request_timeout = 10s;
  cfg.query_timeout = 5s;
  Query q(QueryKind::find_node, peer(9).bytes(), peer(0), seeds, cfg, t0);
  EXPECT_EQ(q.poll(t0).size(), 2u);
  EXPECT_EQ(q.next_deadline(), t0 + 5s);
  q.on_timer(t0 + 5s);
  EXPECT_EQ(q.state(), QueryState::timed_out);
  EXPECT_FALSE(q.next_deadline());
  EXPECT_TRUE(q.poll(t0 + 6s).empty());

  Query r(QueryKind::find_node, peer(9).bytes(), peer(0), seeds, QueryConfig{}, t0);
  r.poll(t0);
  r.on_failure(peer(1), t0);
  EXPECT_FALSE(r.done());
  r.on_timer(t0 + 10s);  // peer(2)'s request timeout
  EXPECT_EQ(r.state(), QueryState::starved);
  EXPECT_TRUE(r.closest().empty());

  Query empty(QueryKind::find_node, peer(9).bytes(), peer(0), {}, QueryConfig{}, t0);
  EXPECT_EQ(empty.state(), QueryState::starved);
}

TEST(Query, IgnoresUnsolicitedAndLateAnswersAndSelf) {
  std::vector<KadPeer> seeds{{peer(0), {}, {}}, {peer(1), {}, {}}};
  Query q(QueryKind::find_node, peer(9).bytes(), peer(0), seeds, QueryConfig{}, t0);
  KadMessage resp;
  resp.type = MessageType::find_node;
  EXPECT_FALSE(q.on_response(peer(1), resp, t0));  // not asked yet
  auto asked = q.poll(t0);
  ASSERT_EQ(asked.size(), 1u);  // never ourselves
  EXPECT_EQ(asked[0].id, peer(1));
  EXPECT_FALSE(q.on_response(peer(5), resp, t0));
  resp.closer_peers = {{peer(0), {}, {}}};  // naming us does not make us a candidate
  EXPECT_TRUE(q.on_response(peer(1), resp, t0));
  EXPECT_EQ(q.state(), QueryState::completed);
  EXPECT_FALSE(q.on_response(peer(1), resp, t0));
}

TEST(Query, WrongResponseTypeIsAFailure) {
  std::vector<KadPeer> seeds{{peer(1), {}, {}}};
  Query q(QueryKind::get_providers, topic_key("t"), peer(0), seeds, QueryConfig{}, t0);
  q.poll(t0);
  KadMessage resp;
  resp.type = MessageType::find_node;
  EXPECT_TRUE(q.on_response(peer(1), resp, t0));
  EXPECT_EQ(q.state(), QueryState::starved);
  EXPECT_EQ(q.stats().failures, 1u);
}

TEST(Query, BoundsCandidates) {
  QueryConfig cfg;
  cfg.max_candidates = 30;
  std::vector<KadPeer> seeds{{peer(1), {}, {}}};
  Query q(QueryKind::find_node, peer(9).bytes(), peer(0), seeds, cfg, t0);
  q.poll(t0);
  KadMessage resp;
  resp.type = MessageType::find_node;
  for (int i = 10; i < 110; ++i) resp.closer_peers.push_back({peer(i), {}, {}});
  q.on_response(peer(1), resp, t0);
  size_t asked = 0;
  // Every peer asked is among the 30 closest remembered.
  std::vector<PeerId> all;
  for (int i = 10; i < 110; ++i) all.push_back(peer(i));
  std::sort(all.begin(), all.end(), [&](const PeerId& a, const PeerId& b) {
    return xor_distance(q.target(), kad_key(a)) < xor_distance(q.target(), kad_key(b));
  });
  std::set<PeerId> closest29(all.begin(), all.begin() + 29);
  for (const auto& p : q.poll(t0)) {
    ++asked;
    EXPECT_TRUE(closest29.contains(p.id));
  }
  EXPECT_EQ(asked, 10u);
}

TEST(Query, GetProvidersStopsWhenEnoughAndGetValueFilters) {
  Network& net = network();
  Bytes key = topic_key("orders");
  // Three providers announce to the 20 closest peers.
  for (int p : {11, 22, 33}) {
    Query q = net.node(p).find_node(key, t0);
    net.run(q, p, t0);
    for (const auto& c : q.closest()) {
      auto r = net.node(net.index(c.id))
                   .handle_request(net.id(p), net.node(p).add_provider_message(key, {}), t0);
      ASSERT_TRUE(r) << r.error().to_string();
    }
  }
  Query all = net.node(444).get_providers(key, t0, 0);
  net.run(all, 444, t0);
  EXPECT_EQ(all.state(), QueryState::completed);
  std::set<PeerId> got;
  for (const auto& p : all.providers()) got.insert(p.id);
  EXPECT_EQ(got, (std::set<PeerId>{net.id(11), net.id(22), net.id(33)}));

  Query two = net.node(444).get_providers(key, t0, 2);
  net.run(two, 444, t0);
  EXPECT_EQ(two.state(), QueryState::stopped);
  EXPECT_GE(two.providers().size(), 2u);
  EXPECT_LT(two.stats().requests, all.stats().requests);

  // GET_VALUE keeps only records its filter accepts.
  std::vector<KadPeer> seeds{{peer(1), {}, {}}, {peer(2), {}, {}}};
  Bytes vkey = to_bytes("/x/1");
  Query v(QueryKind::get_value, vkey, peer(0), seeds, QueryConfig{}, t0,
          [](const KadRecord& r) { return r.value == to_bytes("good"); });
  v.poll(t0);
  KadMessage a;
  a.type = MessageType::get_value;
  a.record = KadRecord{vkey, to_bytes("bad"), ""};
  KadMessage b = a;
  b.record->value = to_bytes("good");
  v.on_response(peer(1), a, t0);
  v.on_response(peer(2), b, t0);
  ASSERT_EQ(v.records().size(), 1u);
  EXPECT_EQ(v.records()[0].first, peer(2));
}

}  // namespace
}  // namespace p2pmq::dht
