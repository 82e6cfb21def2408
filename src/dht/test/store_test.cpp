#include "dht/store.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "crypto/keys.hpp"
#include "dht/key.hpp"
#include "helpers.hpp"

namespace p2pmq::dht {
namespace {

using test::addr;
using test::peer;

const Time t0{};

Multiaddr ma(const std::string& text) {
  return Multiaddr::parse(text).value();
}

RequestSource from_ip(const std::string& ip) {
  return request_source(ma("/ip4/" + ip + "/tcp/4001"));
}

const KadPeer* find(const std::vector<KadPeer>& peers, const PeerId& id) {
  for (const auto& p : peers)
    if (p.id == id) return &p;
  return nullptr;
}

TEST(ProviderStore, ExpiresAfterTtlAndRepublishRefreshes) {
  ProviderStore store;
  std::mt19937_64 rng(1);
  Bytes key = topic_key("a");
  ASSERT_TRUE(store.add(key, peer(1), {addr(1)}, t0));
  ASSERT_TRUE(store.add(key, peer(2), {}, t0 + 1h));
  auto got = store.get(key, t0 + 1h, rng);
  ASSERT_EQ(got.size(), 2u);
  ASSERT_TRUE(find(got, peer(1)));
  EXPECT_TRUE(find(got, peer(1))->addrs.empty());  // addresses only served for addr_ttl (30 min)
  auto early = store.get(key, t0 + 10min, rng);
  ASSERT_TRUE(find(early, peer(1)));
  EXPECT_EQ(find(early, peer(1))->addrs, std::vector<Multiaddr>{addr(1)});

  EXPECT_EQ(store.get(key, t0 + 47h, rng).size(), 2u);
  EXPECT_EQ(store.get(key, t0 + 48h, rng).size(), 1u);  // peer(1) expired at 48 h
  ASSERT_TRUE(store.add(key, peer(2), {}, t0 + 40h));   // republish: no double count
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.count_for(peer(2)), 1u);
  EXPECT_EQ(store.expire(t0 + 50h), 1u);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.count_for(peer(1)), 0u);
  EXPECT_EQ(store.get(key, t0 + 87h, rng).size(), 1u);
  EXPECT_EQ(store.expire(t0 + 88h), 1u);
  EXPECT_EQ(store.keys(), 0u);
}

TEST(ProviderStore, BoundsPerPeerPerKeyAndTotal) {
  ProviderStoreConfig cfg;
  cfg.max_records_per_peer = 3;
  cfg.max_providers_per_key = 2;
  cfg.max_keys = 5;
  cfg.max_total = 7;
  ProviderStore store(cfg);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store.add(topic_key(std::to_string(i)), peer(1), {}, t0));
  EXPECT_EQ(store.add(topic_key("x"), peer(1), {}, t0).error().code, Errc::limit_exceeded);

  // A full key replaces its record closest to expiry.
  Bytes k = topic_key("0");
  ASSERT_TRUE(store.add(k, peer(2), {}, t0 + 1s));
  ASSERT_TRUE(store.add(k, peer(3), {}, t0 + 2s));
  std::mt19937_64 rng(1);
  auto got = store.get(k, t0 + 3s, rng);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(store.count_for(peer(1)), 2u);

  ASSERT_TRUE(store.add(topic_key("3"), peer(4), {}, t0));
  ASSERT_TRUE(store.add(topic_key("4"), peer(4), {}, t0));
  EXPECT_EQ(store.add(topic_key("5"), peer(5), {}, t0).error().code, Errc::limit_exceeded);  // keys
  ASSERT_TRUE(store.add(topic_key("4"), peer(5), {}, t0));
  EXPECT_EQ(store.size(), 7u);
  EXPECT_EQ(store.add(topic_key("3"), peer(6), {}, t0).error().code,
            Errc::limit_exceeded);  // total
}

// Hostile-peers finding 11: 30 Sybil ids on one IP announce a key that honest providers on
// other subnets announce too. Only max_providers_per_key_per_ip of them get in, and each answer
// is a random subset of k, so the honest providers are in the answers.
TEST(ProviderStore, SybilsFromOneIpCannotFillAKeysProviderSet) {
  ProviderStore store;  // defaults: 4 per key per IP, k = 20 per answer
  Bytes key = topic_key("orders");
  size_t refused = 0;
  for (int i = 0; i < 30; ++i)
    if (!store.add(key, peer(1000 + i), {ma("/ip4/203.0.113.9/tcp/4001")}, t0 + 1s * i,
                   from_ip("203.0.113.9")))
      ++refused;
  EXPECT_EQ(refused, 26u);
  EXPECT_EQ(store.records_from(from_ip("203.0.113.9").ip), 4u);
  for (int i = 0; i < 30; ++i)
    ASSERT_TRUE(store.add(key, peer(i), {}, t0, from_ip("198.51." + std::to_string(i) + ".1")));
  EXPECT_EQ(store.size(), 34u);

  std::mt19937_64 rng(7);
  std::set<PeerId> honest_seen;
  for (int round = 0; round < 50; ++round) {
    auto got = store.get(key, t0 + 1min, rng);
    ASSERT_EQ(got.size(), 20u);
    size_t sybils = 0;
    for (int i = 0; i < 30; ++i) sybils += find(got, peer(1000 + i)) ? 1 : 0;
    EXPECT_LE(sybils, 4u);
    for (int i = 0; i < 30; ++i)
      if (find(got, peer(i))) honest_seen.insert(peer(i));
  }
  EXPECT_EQ(honest_seen.size(), 30u);  // every honest provider is in some answer
}

// Answers are drawn at random, not newest-first: the newest announcers (republishing Sybils)
// get no better place, and every provider shows up in some answer.
TEST(ProviderStore, AnswersAreARandomSubsetNotTheNewest) {
  ProviderStore store;
  Bytes key = topic_key("t");
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(store.add(key, peer(i), {}, t0 + 1s * i));
  std::mt19937_64 rng(3);
  std::map<PeerId, int> seen;
  size_t newest_in_answer = 0;
  for (int round = 0; round < 30; ++round) {
    auto got = store.get(key, t0 + 2min, rng);
    ASSERT_EQ(got.size(), 20u);
    std::set<PeerId> distinct;
    for (const auto& p : got) distinct.insert(p.id), ++seen[p.id];
    EXPECT_EQ(distinct.size(), 20u);
    for (int i = 40; i < 60; ++i) newest_in_answer += find(got, peer(i)) ? 1 : 0;
  }
  EXPECT_EQ(seen.size(), 60u);             // everyone is served sometimes
  EXPECT_LT(newest_in_answer, 20u * 30u);  // newest-first would be all 600
  // Deterministic with the same seed.
  std::mt19937_64 a(5), b(5);
  EXPECT_EQ(store.get(key, t0 + 2min, a), store.get(key, t0 + 2min, b));
}

TEST(ProviderStore, RecordsAndKeysPerIpAndPerSubnetAreBounded) {
  ProviderStoreConfig cfg;
  cfg.max_records_per_ip = 5;
  cfg.max_keys_per_ip = 3;
  cfg.max_records_per_subnet = 8;
  cfg.max_keys_per_subnet = 100;
  ProviderStore store(cfg);
  auto ip1 = from_ip("203.0.113.1");
  // Keys per IP: three keys, the fourth is refused; more providers of a held key are fine.
  for (int k = 0; k < 3; ++k)
    ASSERT_TRUE(store.add(topic_key(std::to_string(k)), peer(k), {}, t0, ip1));
  auto fourth = store.add(topic_key("3"), peer(9), {}, t0, ip1);
  ASSERT_FALSE(fourth);
  EXPECT_NE(fourth.error().message.find("max_keys_per_ip"), std::string::npos);
  EXPECT_EQ(store.keys(), 3u);  // the refused key left nothing behind
  ASSERT_TRUE(store.add(topic_key("0"), peer(10), {}, t0, ip1));
  ASSERT_TRUE(store.add(topic_key("1"), peer(11), {}, t0, ip1));
  // Records per IP: 5 held.
  auto sixth = store.add(topic_key("2"), peer(12), {}, t0, ip1);
  ASSERT_FALSE(sixth);
  EXPECT_NE(sixth.error().message.find("max_records_per_ip"), std::string::npos);
  EXPECT_EQ(store.records_from(ip1.ip), 5u);
  EXPECT_EQ(store.keys_from(ip1.ip), 3u);
  // Another IP of the same /24 shares the subnet's 8.
  auto ip2 = from_ip("203.0.113.2");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store.add(topic_key("s"), peer(20 + i), {}, t0, ip2));
  auto subnet = store.add(topic_key("s"), peer(30), {}, t0, from_ip("203.0.113.3"));
  ASSERT_FALSE(subnet);
  EXPECT_NE(subnet.error().message.find("max_records_per_subnet"), std::string::npos);
  // Another subnet is not affected; expiry gives the source its room back.
  ASSERT_TRUE(store.add(topic_key("s"), peer(31), {}, t0, from_ip("198.51.100.1")));
  EXPECT_EQ(store.size(), 9u);
  EXPECT_EQ(store.expire(t0 + 49h), 9u);
  EXPECT_EQ(store.records_from(ip1.ip), 0u);
  EXPECT_EQ(store.keys_from(ip1.ip), 0u);
  EXPECT_TRUE(store.add(topic_key("3"), peer(9), {}, t0 + 49h, ip1));
}

TEST(ProviderStore, AnnouncedAddressesAreFilteredByTheSourcesScopeAndBounded) {
  ProviderStore store;
  std::mt19937_64 rng(1);
  const std::vector<Multiaddr> addrs{
      ma("/ip4/0.0.0.0/tcp/1"),     ma("/ip6/::/tcp/1"),           ma("/ip4/224.0.0.1/tcp/1"),
      ma("/ip4/127.0.0.1/tcp/1"),   ma("/ip6/::1/tcp/1"),          ma("/dns4/localhost/tcp/1"),
      ma("/ip4/192.168.1.5/tcp/1"), ma("/ip4/10.1.2.3/tcp/1"),     ma("/ip6/fd00::1/tcp/1"),
      ma("/ip4/203.0.113.7/tcp/1"), ma("/dns4/example.org/tcp/1"),
  };
  auto stored = [&](const std::string& topic, const PeerId& p) {
    auto got = store.get(topic_key(topic), t0, rng);
    return got.size() == 1 && got[0].id == p ? got[0].addrs : std::vector<Multiaddr>{};
  };
  const std::vector<Multiaddr> public_only{addrs[9], addrs[10]};
  const std::vector<Multiaddr> private_and_public{addrs[6], addrs[7], addrs[8], addrs[9],
                                                  addrs[10]};
  ASSERT_TRUE(store.add(topic_key("pub"), peer(1), addrs, t0, from_ip("198.51.100.1")));
  EXPECT_EQ(stored("pub", peer(1)), public_only);
  ASSERT_TRUE(store.add(topic_key("lan"), peer(2), addrs, t0, from_ip("192.168.1.9")));
  EXPECT_EQ(stored("lan", peer(2)), private_and_public);
  ASSERT_TRUE(store.add(topic_key("lo"), peer(3), addrs, t0, from_ip("127.0.0.1")));
  auto lo = stored("lo", peer(3));
  EXPECT_EQ(lo.size(), store.config().max_addrs_per_record);  // 8 usable of the 11, all kept
  EXPECT_EQ(lo.front(), addrs[3]);                            // loopback from loopback: yes
  // Bounded per record.
  std::vector<Multiaddr> many;
  for (int i = 0; i < 30; ++i) many.push_back(ma("/ip4/203.0.113.8/tcp/" + std::to_string(i + 1)));
  ASSERT_TRUE(store.add(topic_key("many"), peer(4), many, t0, from_ip("198.51.100.2")));
  EXPECT_EQ(stored("many", peer(4)).size(), store.config().max_addrs_per_record);
}

TEST(AddrScope, ClassifiesAddressesAsGoLibp2pDoes) {
  EXPECT_EQ(addr_scope(ma("/ip4/0.0.0.0/tcp/1")), AddrScope::unusable);
  EXPECT_EQ(addr_scope(ma("/ip4/255.255.255.255/tcp/1")), AddrScope::unusable);
  EXPECT_EQ(addr_scope(ma("/ip6/ff02::1/tcp/1")), AddrScope::unusable);
  EXPECT_EQ(addr_scope(ma("/ip4/127.8.0.1/tcp/1")), AddrScope::loopback);
  EXPECT_EQ(addr_scope(ma("/ip6/::ffff:127.0.0.1/tcp/1")), AddrScope::loopback);
  EXPECT_EQ(addr_scope(ma("/dns/a.localhost/tcp/1")), AddrScope::loopback);
  EXPECT_EQ(addr_scope(ma("/ip4/172.20.0.1/tcp/1")), AddrScope::private_net);
  EXPECT_EQ(addr_scope(ma("/ip4/172.32.0.1/tcp/1")), AddrScope::public_net);
  EXPECT_EQ(addr_scope(ma("/ip4/100.64.0.1/tcp/1")), AddrScope::private_net);
  EXPECT_EQ(addr_scope(ma("/ip6/fe80::1/tcp/1")), AddrScope::private_net);
  EXPECT_EQ(addr_scope(ma("/ip6/2001:db8::1/tcp/1")), AddrScope::public_net);
  EXPECT_FALSE(may_announce(AddrScope::loopback, AddrScope::unusable));
  EXPECT_FALSE(may_announce(AddrScope::private_net, AddrScope::loopback));
  EXPECT_FALSE(may_announce(AddrScope::public_net, AddrScope::private_net));
  auto v6 = request_source(ma("/ip6/2001:db8::1/tcp/1"));
  auto v6b = request_source(ma("/ip6/2001:db8::2/tcp/1"));
  EXPECT_NE(v6.ip, v6b.ip);
  EXPECT_EQ(v6.subnet, v6b.subnet);  // one /64
  EXPECT_FALSE(request_source(Multiaddr{}).known());
}

TEST(RecordStore, OnlyRegisteredNamespaces) {
  RecordStore store;
  EXPECT_EQ(store.put(peer(1), {to_bytes("/ipns/x"), to_bytes("v"), ""}, t0).error().code,
            Errc::unsupported);
  EXPECT_EQ(store.put(peer(1), {to_bytes("nope"), to_bytes("v"), ""}, t0).error().code,
            Errc::unsupported);
  EXPECT_EQ(record_namespace(to_bytes("/pk/abc")), "pk");
  EXPECT_FALSE(record_namespace(to_bytes("//x")));
  EXPECT_FALSE(record_namespace(to_bytes("/pk")));
}

TEST(RecordStore, PublicKeyNamespace) {
  RecordStore store;
  store.register_namespace("pk", public_key_validator());
  auto key = crypto::PrivateKey::from_seed(crypto::PrivateKey::Seed{1}).public_key();
  auto other = crypto::PrivateKey::from_seed(crypto::PrivateKey::Seed{2}).public_key();
  // Ed25519 ids inline the key; a sha256 id exercises the hashing path too.
  for (const auto& id : {crypto::PeerId::from_public_key(key)}) {
    Bytes k = to_bytes("/pk/");
    append(k, id.bytes());
    EXPECT_TRUE(store.put(peer(1), {k, key.encode(), ""}, t0));
    EXPECT_EQ(store.get(k, t0)->value, key.encode());
    EXPECT_EQ(store.put(peer(1), {k, other.encode(), ""}, t0).error().code, Errc::peer_id_mismatch);
    EXPECT_EQ(store.put(peer(1), {k, to_bytes("junk"), ""}, t0).error().code, Errc::invalid_input);
    EXPECT_FALSE(store.get(k, t0 + 36h));  // record_ttl
    EXPECT_EQ(store.expire(t0 + 36h), 1u);
  }
  EXPECT_EQ(store.put(peer(1), {to_bytes("/pk/zz"), key.encode(), ""}, t0).error().code,
            Errc::invalid_input);
}

TEST(RecordStore, BoundsPerPeerAndSelectsTheBest) {
  RecordStoreConfig cfg;
  cfg.max_records_per_peer = 2;
  cfg.max_records = 3;
  cfg.max_value_size = 8;
  RecordStore store(cfg);
  RecordValidator v;
  v.validate = [](BytesView, BytesView) -> Result<void> { return {}; };
  v.select = [](BytesView, const std::vector<Bytes>& vs) -> size_t { return vs[1] > vs[0]; };
  store.register_namespace("n", v);
  auto rec = [](std::string k, std::string val) {
    return KadRecord{to_bytes(k), to_bytes(val), ""};
  };
  ASSERT_TRUE(store.put(peer(1), rec("/n/a", "5"), t0));
  ASSERT_TRUE(store.put(peer(1), rec("/n/b", "5"), t0));
  EXPECT_EQ(store.put(peer(1), rec("/n/c", "5"), t0).error().code, Errc::limit_exceeded);
  ASSERT_TRUE(store.put(peer(1), rec("/n/a", "6"), t0));  // replacing its own: allowed
  EXPECT_EQ(store.get(to_bytes("/n/a"), t0)->value, to_bytes("6"));
  ASSERT_TRUE(store.put(peer(2), rec("/n/a", "1"), t0));  // worse: kept the old, no error
  EXPECT_EQ(store.get(to_bytes("/n/a"), t0)->value, to_bytes("6"));
  ASSERT_TRUE(store.put(peer(2), rec("/n/a", "9"), t0));  // better: now counted for peer 2
  EXPECT_EQ(store.count_for(peer(1)), 1u);
  EXPECT_EQ(store.count_for(peer(2)), 1u);
  ASSERT_TRUE(store.put(peer(3), rec("/n/c", "1"), t0));
  EXPECT_EQ(store.put(peer(3), rec("/n/d", "1"), t0).error().code, Errc::limit_exceeded);
  EXPECT_EQ(store.put(peer(3), rec("/n/c", "123456789"), t0).error().code, Errc::limit_exceeded);
  // An expired value no longer wins select().
  ASSERT_TRUE(store.put(peer(1), rec("/n/a", "0"), t0 + 36h));
  EXPECT_EQ(store.get(to_bytes("/n/a"), t0 + 36h)->value, to_bytes("0"));
}

// go-libp2p-kad-dht stamps a stored record with time.Now().UTC() in RFC3339Nano.
TEST(KadRecordTime, TimeReceivedIsGosRfc3339Nano) {
  using namespace std::chrono;
  auto t = sys_days{year{2026} / 12 / 3} + hours{13} + minutes{59} + seconds{15};
  EXPECT_EQ(format_time_received(t), "2026-12-03T13:59:15Z");
  EXPECT_EQ(format_time_received(t + milliseconds{120}), "2026-12-03T13:59:15.12Z");
  EXPECT_EQ(format_time_received(t + nanoseconds{1}), "2026-12-03T13:59:15.000000001Z");
}

// The IO adapter stamps an inbound PUT_VALUE's record; the store keeps that stamp and GET_VALUE
// answers with it (L9: it used to be emptied).
TEST(RecordStore, KeepsTheTimeReceivedStampedOnReceipt) {
  RecordStore store;
  RecordValidator v;
  v.validate = [](BytesView, BytesView) -> Result<void> { return {}; };
  store.register_namespace("n", v);
  ASSERT_TRUE(store.put(peer(1), {to_bytes("/n/a"), to_bytes("v"), "2026-12-03T13:59:15.12Z"}, t0));
  EXPECT_EQ(store.get(to_bytes("/n/a"), t0)->time_received, "2026-12-03T13:59:15.12Z");
}
}  // namespace
}  // namespace p2pmq::dht
