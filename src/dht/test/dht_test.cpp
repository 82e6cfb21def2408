#include "dht/dht.hpp"

#include <gtest/gtest.h>

#include <random>

#include "core/cid.hpp"
#include "crypto/keys.hpp"
#include "helpers.hpp"

namespace p2pmq::dht {
namespace {

using test::addr;
using test::peer;

const Time t0{};

Dht server(int self = 0, DhtConfig cfg = {}) {
  Dht d(peer(self), cfg);
  for (int i = 1; i <= 100; ++i) d.on_peer_alive(peer(i), {addr(i)}, t0);
  return d;
}

KadMessage req(MessageType t, Bytes key = {}) {
  KadMessage m;
  m.type = t;
  m.key = std::move(key);
  return m;
}

TEST(DhtHandler, PingAndProtocolId) {
  Dht d = server();
  auto r = d.handle_request(peer(5), req(MessageType::ping), t0);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->type, MessageType::ping);
  EXPECT_EQ(d.protocol_id(), "/p2pmq/kad/1.0.0");
  DhtConfig ipfs;
  ipfs.protocol_prefix = "/ipfs";
  EXPECT_EQ(Dht(peer(0), ipfs).protocol_id(), "/ipfs/kad/1.0.0");
}

TEST(DhtHandler, FindNodeAnswersTheKClosestButNotTheRequester) {
  Dht d = server();
  Bytes key = peer(7).bytes();
  auto r = d.handle_request(peer(7), req(MessageType::find_node, key), t0);
  ASSERT_TRUE(r && *r);
  const auto& closer = (*r)->closer_peers;
  ASSERT_EQ(closer.size(), 20u);
  auto want = d.table().nearest(kad_key(key), 21);
  want.erase(want.begin());  // peer(7) itself, distance 0
  for (size_t i = 0; i < 20; ++i) {
    EXPECT_EQ(closer[i].id, want[i].id);
    EXPECT_EQ(closer[i].addrs, want[i].addrs);
  }
  EXPECT_FALSE(d.handle_request(peer(7), req(MessageType::find_node), t0));  // empty key
}

TEST(DhtHandler, AddProviderOnlyForTheSender) {
  Dht d = server();
  Bytes key = topic_key("orders");
  KadMessage add = req(MessageType::add_provider, key);
  add.provider_peers = {KadPeer{peer(2), {addr(2)}, {}}};
  auto refused = d.handle_request(peer(3), add, t0);  // peer 3 announcing peer 2
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::protocol_violation);
  EXPECT_EQ(d.providers().size(), 0u);

  add.provider_peers.push_back(KadPeer{peer(3), {addr(3)}, {}});
  auto ok = d.handle_request(peer(3), add, t0);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_FALSE(*ok);  // no response to ADD_PROVIDER
  EXPECT_EQ(d.providers().size(), 1u);

  auto got = d.handle_request(peer(4), req(MessageType::get_providers, key), t0);
  ASSERT_TRUE(got && *got);
  ASSERT_EQ((*got)->provider_peers.size(), 1u);
  EXPECT_EQ((*got)->provider_peers[0].id, peer(3));
  EXPECT_EQ((*got)->provider_peers[0].addrs, std::vector<Multiaddr>{addr(3)});
  EXPECT_EQ((*got)->closer_peers.size(), 20u);

  // The same key as a CIDv1 finds the same record; junk keys are refused.
  auto cid = d.handle_request(peer(4), req(MessageType::get_providers, topic_cid("orders")), t0);
  ASSERT_TRUE(cid && *cid);
  EXPECT_EQ((*cid)->provider_peers.size(), 1u);
  EXPECT_FALSE(d.handle_request(peer(4), req(MessageType::get_providers, to_bytes("xx")), t0));
  EXPECT_FALSE(d.handle_request(peer(4), req(MessageType::add_provider, Bytes(100, 0)), t0));
}

// Hostile-peers finding 11, end to end through the handler: ADD_PROVIDER is counted against the
// IP its connection comes from and its addresses are filtered by that IP's scope; GET_PROVIDERS
// answers at most k.
TEST(DhtHandler, AddProviderIsLimitedPerSourceIpAndFilteredByItsScope) {
  DhtConfig cfg;
  cfg.rate.burst = 1000;
  Dht d = server(0, cfg);
  Bytes key = topic_key("orders");
  auto sybil_ip = request_source(Multiaddr::parse("/ip4/203.0.113.5/tcp/4001").value());
  const std::vector<Multiaddr> announced{Multiaddr::parse("/ip4/127.0.0.1/tcp/1").value(),
                                         Multiaddr::parse("/ip4/10.0.0.9/tcp/1").value(),
                                         Multiaddr::parse("/ip4/203.0.113.5/tcp/1").value()};
  size_t accepted = 0;
  for (int i = 0; i < 30; ++i) {
    KadMessage add = req(MessageType::add_provider, key);
    add.provider_peers = {KadPeer{peer(500 + i), announced, {}}};
    if (d.handle_request(peer(500 + i), add, t0, sybil_ip)) ++accepted;
  }
  EXPECT_EQ(accepted, cfg.providers.max_providers_per_key_per_ip);
  for (int i = 0; i < 40; ++i) {
    KadMessage add = req(MessageType::add_provider, key);
    add.provider_peers = {KadPeer{peer(600 + i), {}, {}}};
    auto honest = request_source(
        Multiaddr::parse("/ip4/198.51." + std::to_string(i) + ".7/tcp/4001").value());
    ASSERT_TRUE(d.handle_request(peer(600 + i), add, t0, honest));
  }
  auto got = d.handle_request(peer(4), req(MessageType::get_providers, key), t0);
  ASSERT_TRUE(got && *got);
  EXPECT_EQ((*got)->provider_peers.size(), cfg.providers.max_returned);
  std::mt19937_64 rng(1);
  bool checked = false;
  for (const auto& p : d.providers().get(key, t0, 100, rng)) {
    if (p.id != peer(500)) continue;
    EXPECT_EQ(p.addrs, std::vector<Multiaddr>{announced[2]});  // public source: public only
    checked = true;
  }
  EXPECT_TRUE(checked);
}

TEST(DhtHandler, ProviderFloodIsBoundedPerPeer) {
  DhtConfig cfg;
  cfg.providers.max_records_per_peer = 5;
  cfg.rate.burst = 1000;
  Dht d = server(0, cfg);
  size_t accepted = 0;
  for (int i = 0; i < 50; ++i) {
    KadMessage add = req(MessageType::add_provider, topic_key(std::to_string(i)));
    add.provider_peers = {KadPeer{peer(9), {}, {}}};
    if (d.handle_request(peer(9), add, t0)) ++accepted;
  }
  EXPECT_EQ(accepted, 5u);
  EXPECT_EQ(d.providers().size(), 5u);
  EXPECT_EQ(d.counters().refused, 45u);
}

TEST(DhtHandler, ValuesOnlyInValidatedNamespaces) {
  Dht d = server();
  auto pk = crypto::PrivateKey::from_seed(crypto::PrivateKey::Seed{3}).public_key();
  Bytes key = to_bytes("/pk/");
  append(key, crypto::PeerId::from_public_key(pk).bytes());

  KadMessage put = req(MessageType::put_value, key);
  put.record = KadRecord{key, pk.encode(), ""};
  auto r = d.handle_request(peer(1), put, t0);
  ASSERT_TRUE(r && *r) << (r ? "" : r.error().to_string());
  EXPECT_EQ(**r, put);  // echoed

  auto get = d.handle_request(peer(2), req(MessageType::get_value, key), t0);
  ASSERT_TRUE(get && *get);
  ASSERT_TRUE((*get)->record);
  EXPECT_EQ((*get)->record->value, pk.encode());

  KadMessage open = req(MessageType::put_value, to_bytes("/data/x"));
  open.record = KadRecord{to_bytes("/data/x"), to_bytes("anything"), ""};
  EXPECT_EQ(d.handle_request(peer(1), open, t0).error().code, Errc::unsupported);
  KadMessage mismatch = put;
  mismatch.key = to_bytes("/pk/other");
  EXPECT_EQ(d.handle_request(peer(1), mismatch, t0).error().code, Errc::invalid_input);
  EXPECT_FALSE(d.handle_request(peer(1), req(MessageType::put_value, key), t0));  // no record
  auto none = d.handle_request(peer(2), req(MessageType::get_value, to_bytes("/pk/none")), t0);
  ASSERT_TRUE(none && *none);
  EXPECT_FALSE((*none)->record);
}

TEST(DhtHandler, RateLimitsPerPeer) {
  DhtConfig cfg;
  cfg.rate.requests_per_second = 2;
  cfg.rate.burst = 5;
  cfg.rate.max_tracked_peers = 3;
  Dht d = server(0, cfg);
  auto ping = req(MessageType::ping);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(d.handle_request(peer(1), ping, t0));
  auto limited = d.handle_request(peer(1), ping, t0);
  ASSERT_FALSE(limited);
  EXPECT_EQ(limited.error().code, Errc::limit_exceeded);
  EXPECT_TRUE(d.handle_request(peer(2), ping, t0));          // others unaffected
  EXPECT_TRUE(d.handle_request(peer(1), ping, t0 + 500ms));  // one token back
  EXPECT_FALSE(d.handle_request(peer(1), ping, t0 + 500ms));
  EXPECT_EQ(d.counters().rate_limited, 2u);
  // Tracking stays bounded with many requesters.
  for (int i = 10; i < 20; ++i) EXPECT_TRUE(d.handle_request(peer(i), ping, t0 + 1s));
}

TEST(DhtHandler, ClientModeServesNothing) {
  DhtConfig cfg;
  cfg.mode = Mode::client;
  Dht d(peer(0), cfg);
  EXPECT_EQ(d.handle_request(peer(1), req(MessageType::ping), t0).error().code, Errc::unsupported);
}

TEST(DhtMaintenance, BootstrapRefreshAndRepublish) {
  Dht d(peer(0));
  auto m = d.on_timer(t0);
  EXPECT_TRUE(m.dial_bootstrappers);  // empty table
  ASSERT_EQ(m.lookups.size(), 1u);
  EXPECT_EQ(m.lookups[0], peer(0).bytes());  // self lookup

  for (int i = 1; i <= 50; ++i) d.on_peer_alive(peer(i), {}, t0);
  ASSERT_TRUE(d.provide_topic("orders", t0));
  ASSERT_TRUE(d.next_deadline());
  EXPECT_LE(*d.next_deadline(), t0 + 1s);
  m = d.on_timer(t0 + 1s);
  EXPECT_FALSE(m.dial_bootstrappers);
  EXPECT_FALSE(m.lookups.empty());  // stale buckets, each with a key in that bucket
  for (const auto& k : m.lookups)
    EXPECT_LE(d.table().bucket_index(kad_key(k)), d.table().config().max_refresh_cpl);
  EXPECT_EQ(m.provides, std::vector<Bytes>{topic_key("orders")});
  EXPECT_EQ(d.stored_providers(topic_key("orders"), t0 + 1s, 20).size(), 1u);  // we serve ourselves

  m = d.on_timer(t0 + 2s);
  EXPECT_TRUE(m.lookups.empty());
  EXPECT_TRUE(m.provides.empty());
  m = d.on_timer(t0 + 5min + 1s);
  ASSERT_FALSE(m.lookups.empty());
  EXPECT_EQ(m.lookups[0], peer(0).bytes());
  m = d.on_timer(t0 + 22h + 1s);
  EXPECT_EQ(m.provides, std::vector<Bytes>{topic_key("orders")});
  d.unprovide_topic("orders");
  EXPECT_TRUE(d.on_timer(t0 + 45h).provides.empty());
  EXPECT_FALSE(d.start_providing(to_bytes("not a multihash"), t0));
}

TEST(DhtPeers, SybilsConnectingFromOneSlash16GetAtMostThreeTableSlots) {
  Dht d(peer(0));
  auto from = [](const std::string& ip) {
    return request_source(Multiaddr::parse("/ip4/" + ip + "/tcp/4001").value());
  };
  for (int i = 1; i <= 50; ++i)
    d.on_peer_alive(peer(i), {}, t0, from("203.0." + std::to_string(i) + ".9"));
  EXPECT_EQ(d.table().size(), 3u);
  for (int i = 51; i <= 60; ++i)
    d.on_peer_alive(peer(i), {}, t0, from(std::to_string(i) + ".1.2.3"));  // ten other /16s
  EXPECT_EQ(d.table().size(), 13u);
}

TEST(DhtConfig, ValidateNamesTheKey) {
  DhtConfig c;
  EXPECT_TRUE(validate(c));
  c.query.beta = 30;
  EXPECT_NE(validate(c).error().message.find("query.beta"), std::string::npos);
  c = {};
  c.protocol_prefix = "p2pmq";
  EXPECT_NE(validate(c).error().message.find("protocol_prefix"), std::string::npos);
  c = {};
  c.table.max_peers_per_ip_group_per_bucket = 4;  // more than the table's 3
  EXPECT_NE(validate(c).error().message.find("table.max_peers_per_ip_group_per_bucket"),
            std::string::npos);
  c.table.max_peers_per_ip_group = 0;  // no table limit: any bucket limit
  EXPECT_TRUE(validate(c));
}

}  // namespace
}  // namespace p2pmq::dht
