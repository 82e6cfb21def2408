#include "dht/routing_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "dht/source.hpp"
#include "helpers.hpp"

namespace p2pmq::dht {
namespace {

using test::addr;
using test::peer;

const Time t0{};

// Peers (by index) that land in bucket `index` of `table`.
std::vector<int> peers_in_bucket(const RoutingTable& table, size_t index, size_t n) {
  std::vector<int> out;
  for (int i = 1; out.size() < n; ++i)
    if (table.bucket_index(kad_key(peer(i))) == index) out.push_back(i);
  return out;
}

TEST(RoutingTable, BucketIndexIsCommonPrefixLength) {
  RoutingTable table(peer(0));
  for (int i = 1; i < 50; ++i) {
    KadKey k = kad_key(peer(i));
    EXPECT_EQ(table.bucket_index(k), common_prefix_length(k, kad_key(peer(0))));
  }
  EXPECT_EQ(table.bucket_index(kad_key(peer(0))), 255u);
}

TEST(RoutingTable, AddsUpdatesAndRefusesSelf) {
  RoutingTable table(peer(0));
  EXPECT_EQ(table.add(peer(0), {}, t0).result, InsertResult::refused);
  EXPECT_EQ(table.add(peer(1), {addr(1)}, t0).result, InsertResult::added);
  EXPECT_EQ(table.add(peer(1), {}, t0 + 1s).result, InsertResult::updated);
  ASSERT_TRUE(table.find(peer(1)));
  EXPECT_EQ(table.find(peer(1))->addrs, std::vector<Multiaddr>{addr(1)});  // kept
  EXPECT_EQ(table.find(peer(1))->last_seen, t0 + 1s);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_TRUE(table.remove(peer(1)));
  EXPECT_EQ(table.size(), 0u);
}

TEST(RoutingTable, FullBucketKeepsOldPeersAndCachesNewcomers) {
  RoutingTableConfig cfg;
  cfg.k = 4;
  cfg.replacement_cache_size = 2;
  cfg.max_failures = 2;
  RoutingTable table(peer(0), cfg);
  auto ids = peers_in_bucket(table, 0, 8);
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(table.add(peer(ids[i]), {}, t0).result, InsertResult::added);
  table.add(peer(ids[0]), {}, t0 + 1s);  // ids[0] seen again: ids[1] is now least recent

  auto out = table.add(peer(ids[4]), {addr(4)}, t0 + 2s);
  EXPECT_EQ(out.result, InsertResult::cached);
  ASSERT_TRUE(out.probe);
  EXPECT_EQ(*out.probe, peer(ids[1]));
  table.add(peer(ids[5]), {}, t0 + 3s);
  table.add(peer(ids[6]), {}, t0 + 4s);  // cache holds 2: ids[4] dropped
  EXPECT_EQ(table.replacements(0), 2u);
  EXPECT_EQ(table.size(), 4u);
  EXPECT_FALSE(table.contains(peer(ids[4])));

  // One failure is tolerated, the second evicts; the freshest candidate replaces it.
  EXPECT_FALSE(table.mark_failed(peer(ids[1])));
  EXPECT_TRUE(table.mark_failed(peer(ids[1])));
  EXPECT_FALSE(table.contains(peer(ids[1])));
  EXPECT_TRUE(table.contains(peer(ids[6])));
  EXPECT_EQ(table.size(), 4u);
  EXPECT_EQ(table.replacements(0), 1u);

  // A success resets the failure count.
  table.mark_failed(peer(ids[2]));
  table.add(peer(ids[2]), {}, t0 + 5s);
  EXPECT_FALSE(table.mark_failed(peer(ids[2])));
  EXPECT_TRUE(table.contains(peer(ids[2])));
}

TEST(RoutingTable, NearestMatchesBruteForce) {
  RoutingTable table(peer(0));
  std::vector<PeerId> all;
  for (int i = 1; i <= 300; ++i)
    if (table.add(peer(i), {}, t0).result == InsertResult::added) all.push_back(peer(i));
  EXPECT_EQ(table.size(), all.size());
  for (int t = 0; t < 5; ++t) {
    KadKey target = kad_key(as_bytes("target" + std::to_string(t)));
    auto got = table.nearest(target, 20);
    std::sort(all.begin(), all.end(), [&](const PeerId& a, const PeerId& b) {
      return xor_distance(target, kad_key(a)) < xor_distance(target, kad_key(b));
    });
    ASSERT_EQ(got.size(), 20u);
    for (size_t i = 0; i < 20; ++i) EXPECT_EQ(got[i].id, all[i]);
  }
  EXPECT_EQ(table.nearest(kad_key(peer(1)), 1000).size(), all.size());
}

TEST(RoutingTable, StaleBucketsFollowLookups) {
  RoutingTableConfig cfg;
  cfg.refresh_interval = 10min;
  RoutingTable table(peer(0), cfg);
  EXPECT_TRUE(table.stale_buckets(t0).empty());  // empty table: bootstrap instead
  auto deep = peers_in_bucket(table, 3, 1);
  table.add(peer(deep[0]), {}, t0);
  EXPECT_EQ(table.stale_buckets(t0), (std::vector<size_t>{0, 1, 2, 3}));
  for (size_t i = 0; i < 4; ++i) {
    std::mt19937_64 rng(i);
    table.mark_lookup(kad_key(random_key_with_cpl(table.local_key(), i, rng)), t0);
  }
  EXPECT_TRUE(table.stale_buckets(t0 + 9min).empty());
  EXPECT_EQ(table.next_refresh(t0), t0 + 10min);
  std::mt19937_64 rng(9);
  table.mark_lookup(kad_key(random_key_with_cpl(table.local_key(), 2, rng)), t0 + 5min);
  EXPECT_EQ(table.stale_buckets(t0 + 10min), (std::vector<size_t>{0, 1, 3}));
}

// The diversity group of a connection from this IPv4 address.
std::string group_of(const std::string& ip) {
  return request_source(Multiaddr::parse("/ip4/" + ip + "/tcp/4001").value()).ip_group;
}

TEST(RoutingTable, SybilsFromOneSlash16HoldAtMostTwoSlotsOfABucket) {
  RoutingTable table(peer(0));  // defaults: 2 per bucket, 3 per table, k 20
  auto ids = peers_in_bucket(table, 0, 12);
  // Eight Sybil ids, each on its own IP, all in 203.0.0.0/16.
  for (int i = 0; i < 8; ++i) {
    auto out = table.add(peer(ids[i]), {}, t0, group_of("203.0." + std::to_string(i * 30) + ".7"));
    EXPECT_EQ(out.result, i < 2 ? InsertResult::added : InsertResult::over_ip_group_limit) << i;
    EXPECT_FALSE(out.probe);
  }
  EXPECT_EQ(table.bucket(0).size(), 2u);
  EXPECT_EQ(table.replacements(0), 0u);  // not cached either
  EXPECT_EQ(table.peers_in_ip_group(group_of("203.0.1.1")), 2u);
  // Honest peers from other /16s still get in.
  for (int i = 8; i < 12; ++i)
    EXPECT_EQ(table.add(peer(ids[i]), {}, t0, group_of("198." + std::to_string(i) + ".1.1")).result,
              InsertResult::added);
  EXPECT_EQ(table.bucket(0).size(), 6u);
  // A Sybil already in keeps its slot when seen again.
  EXPECT_EQ(table.add(peer(ids[0]), {}, t0 + 1s, group_of("203.0.0.7")).result,
            InsertResult::updated);
}

TEST(RoutingTable, SybilsFromOneSlash16HoldAtMostThreeSlotsOfTheTable) {
  RoutingTable table(peer(0));
  size_t sybils_in = 0;
  for (size_t bucket = 0; bucket < 4; ++bucket) {
    for (int id : peers_in_bucket(table, bucket, 2)) {
      auto r = table.add(peer(id), {}, t0, group_of("45.67." + std::to_string(id % 250) + ".1"));
      if (r.result == InsertResult::added) ++sybils_in;
    }
  }
  EXPECT_EQ(sybils_in, 3u);
  EXPECT_EQ(table.peers_in_ip_group(group_of("45.67.0.1")), 3u);
  // Legacy class-A blocks count as one /8: 12.1.x and 12.200.x are one group.
  EXPECT_EQ(group_of("12.1.0.1"), group_of("12.200.0.1"));
  EXPECT_NE(group_of("45.1.0.1"), group_of("45.2.0.1"));
  // Honest peers elsewhere are unaffected.
  auto honest = peers_in_bucket(table, 0, 5);
  EXPECT_EQ(table.add(peer(honest[4]), {}, t0, group_of("81.2.3.4")).result, InsertResult::added);
}

TEST(RoutingTable, ALeavingSybilFreesItsGroupsSlot) {
  RoutingTable table(peer(0));
  auto ids = peers_in_bucket(table, 0, 3);
  table.add(peer(ids[0]), {}, t0, group_of("203.0.0.1"));
  table.add(peer(ids[1]), {}, t0, group_of("203.0.0.2"));
  EXPECT_EQ(table.add(peer(ids[2]), {}, t0, group_of("203.0.0.3")).result,
            InsertResult::over_ip_group_limit);
  EXPECT_TRUE(table.remove(peer(ids[0])));
  EXPECT_EQ(table.peers_in_ip_group(group_of("203.0.0.1")), 1u);
  EXPECT_EQ(table.add(peer(ids[2]), {}, t0, group_of("203.0.0.3")).result, InsertResult::added);
}

TEST(RoutingTable, AReplacementIsPromotedOnlyIfItsGroupHasRoom) {
  RoutingTableConfig cfg;
  cfg.k = 2;
  cfg.max_peers_per_ip_group_per_bucket = 1;
  cfg.max_peers_per_ip_group = 1;
  RoutingTable table(peer(0), cfg);
  auto ids = peers_in_bucket(table, 0, 4);
  auto deeper = peers_in_bucket(table, 1, 1);
  table.add(peer(ids[0]), {}, t0, group_of("1.1.0.1"));
  table.add(peer(ids[1]), {}, t0, group_of("2.2.0.1"));
  // Full bucket: one of 1.1/16 is neither added nor cached; others wait.
  EXPECT_EQ(table.add(peer(ids[2]), {}, t0, group_of("1.1.9.9")).result,
            InsertResult::over_ip_group_limit);
  EXPECT_EQ(table.add(peer(ids[2]), {}, t0, group_of("3.3.0.1")).result, InsertResult::cached);
  EXPECT_EQ(table.add(peer(ids[3]), {}, t0 + 1s, group_of("4.4.0.1")).result, InsertResult::cached);
  // 4.4/16 fills its table share elsewhere while ids[3] waits.
  EXPECT_EQ(table.add(peer(deeper[0]), {}, t0, group_of("4.4.1.1")).result, InsertResult::added);
  EXPECT_TRUE(table.remove(peer(ids[0])));
  EXPECT_TRUE(table.contains(peer(ids[2])));   // the older candidate, whose group had room
  EXPECT_FALSE(table.contains(peer(ids[3])));  // the freshest, whose group had none
  EXPECT_EQ(table.replacements(0), 1u);
}

TEST(RoutingTable, PeersFromLoopbackOrPrivateNetworksAreNotLimited) {
  RoutingTable table(peer(0));
  EXPECT_EQ(group_of("127.0.0.1"), "");
  EXPECT_EQ(group_of("10.1.2.3"), "");
  EXPECT_EQ(group_of("192.168.1.2"), "");
  auto ids = peers_in_bucket(table, 0, 10);
  for (int id : ids)
    EXPECT_EQ(table.add(peer(id), {}, t0, group_of("10.0.0.1")).result, InsertResult::added);
  EXPECT_EQ(table.size(), 10u);
}

TEST(RoutingTable, ZeroMeansNoDiversityLimit) {
  RoutingTableConfig cfg;
  cfg.max_peers_per_ip_group_per_bucket = 0;
  cfg.max_peers_per_ip_group = 0;
  RoutingTable table(peer(0), cfg);
  for (int id : peers_in_bucket(table, 0, 10))
    EXPECT_EQ(table.add(peer(id), {}, t0, group_of("203.0.0.1")).result, InsertResult::added);
}

TEST(RequestSource, IpGroupIsTheSlash16TheLegacySlash8OrTheIpv6Slash32) {
  auto group = [](const std::string& a) {
    return request_source(Multiaddr::parse(a).value()).ip_group;
  };
  EXPECT_EQ(group("/ip4/8.8.4.4/tcp/1"), group("/ip4/8.8.200.1/tcp/1"));
  EXPECT_NE(group("/ip4/8.8.4.4/tcp/1"), group("/ip4/8.9.4.4/tcp/1"));
  EXPECT_EQ(group("/ip4/73.1.1.1/tcp/1"), group("/ip4/73.254.1.1/tcp/1"));  // legacy /8
  EXPECT_EQ(group("/ip6/::ffff:8.8.4.4/tcp/1"), group("/ip4/8.8.4.4/tcp/1"));
  EXPECT_EQ(group("/ip6/2001:4860:1::1/tcp/1"), group("/ip6/2001:4860:ffff::2/tcp/1"));
  EXPECT_NE(group("/ip6/2001:4860::1/tcp/1"), group("/ip6/2001:4861::1/tcp/1"));
  EXPECT_EQ(group("/ip6/::1/tcp/1"), "");
  EXPECT_EQ(group("/ip6/fd00::1/tcp/1"), "");
  EXPECT_EQ(group("/dns/example.com/tcp/1"), "");  // not an IP: the connection's address is one
}

}  // namespace
}  // namespace p2pmq::dht
