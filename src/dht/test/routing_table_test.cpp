#include "dht/routing_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>

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

}  // namespace
}  // namespace p2pmq::dht
