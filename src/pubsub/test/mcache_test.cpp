#include "pubsub/mcache.hpp"

#include <gtest/gtest.h>

#include "crypto/hash.hpp"
#include "pubsub/seen_cache.hpp"

namespace p2pmq::pubsub {
namespace {

Message msg(const TopicId& topic, uint8_t b) {
  return Message{{}, Bytes{b}, {}, topic, {}, {}};
}

PeerId peer() {
  crypto::PrivateKey::Seed seed{};
  return PeerId::from_public_key(crypto::PrivateKey::from_seed(seed).public_key());
}

TEST(RouterMessageCache, GossipWindowsAndExpiry) {
  MessageCache mc(3, 2, 100);
  ASSERT_TRUE(mc.put(Bytes{1}, msg("a", 1)));
  EXPECT_FALSE(mc.put(Bytes{1}, msg("a", 1)));
  mc.put(Bytes{2}, msg("b", 2));
  EXPECT_EQ(mc.gossip_ids("a"), std::vector<MessageId>{Bytes{1}});
  mc.shift();
  mc.put(Bytes{3}, msg("a", 3));
  EXPECT_EQ(mc.gossip_ids("a"), (std::vector<MessageId>{Bytes{3}, Bytes{1}}));
  mc.shift();  // id 1 leaves the gossip windows but is still served
  EXPECT_EQ(mc.gossip_ids("a"), std::vector<MessageId>{Bytes{3}});
  EXPECT_NE(mc.get(Bytes{1}), nullptr);
  mc.shift();  // and now leaves the history
  EXPECT_EQ(mc.get(Bytes{1}), nullptr);
  EXPECT_NE(mc.get(Bytes{3}), nullptr);
  EXPECT_EQ(mc.size(), 1u);
}

TEST(RouterMessageCache, CountsRequestsPerPeerAndIsBounded) {
  MessageCache mc(3, 2, 2);
  mc.put(Bytes{1}, msg("a", 1));
  mc.put(Bytes{2}, msg("a", 2));
  EXPECT_FALSE(mc.put(Bytes{3}, msg("a", 3)));  // full
  EXPECT_EQ(mc.get_for_peer(Bytes{1}, peer()).second, 1u);
  EXPECT_EQ(mc.get_for_peer(Bytes{1}, peer()).second, 2u);
  EXPECT_EQ(mc.get_for_peer(Bytes{9}, peer()).first, nullptr);
}

TEST(RouterSeenCache, ExpiresAfterTtlAndIsBounded) {
  Time t0 = Time{} + std::chrono::hours(1);
  SeenCache seen(std::chrono::seconds(10), 3);
  EXPECT_TRUE(seen.add(Bytes{1}, t0));
  EXPECT_FALSE(seen.add(Bytes{1}, t0));
  seen.add(Bytes{2}, t0 + std::chrono::seconds(5));
  seen.expire(t0 + std::chrono::seconds(10));
  EXPECT_FALSE(seen.contains(Bytes{1}));
  EXPECT_TRUE(seen.contains(Bytes{2}));
  seen.add(Bytes{3}, t0 + std::chrono::seconds(11));
  seen.add(Bytes{4}, t0 + std::chrono::seconds(11));
  EXPECT_EQ(seen.size(), 3u);
}

// Finding 5: a flood that fills the cache must not make it forget an unexpired id (which
// could then be replayed): while full, unknown ids are refused and read as seen.
TEST(RouterSeenCache, FullCacheRefusesNewIdsInsteadOfForgettingUnexpiredOnes) {
  Time t0 = Time{} + std::chrono::hours(1);
  SeenCache seen(std::chrono::seconds(10), 3);
  EXPECT_TRUE(seen.add(Bytes{1}, t0));
  EXPECT_TRUE(seen.add(Bytes{2}, t0 + std::chrono::seconds(1)));
  EXPECT_TRUE(seen.add(Bytes{3}, t0 + std::chrono::seconds(2)));
  EXPECT_FALSE(seen.add(Bytes{4}, t0 + std::chrono::seconds(5)));  // full: refused
  EXPECT_TRUE(seen.contains(Bytes{1}));                            // not forgotten: no replay
  EXPECT_TRUE(seen.contains(Bytes{4}));  // unknown ids read as seen while full
  EXPECT_EQ(seen.size(), 3u);
  // Once the oldest has expired there is room again, without waiting for expire().
  EXPECT_TRUE(seen.add(Bytes{4}, t0 + std::chrono::seconds(10)));
  seen.expire(t0 + std::chrono::seconds(11));  // 2 goes too: no longer full
  EXPECT_FALSE(seen.contains(Bytes{1}));
  EXPECT_TRUE(seen.contains(Bytes{4}));
  EXPECT_FALSE(seen.contains(Bytes{5}));
}

// Ids longer than 32 bytes (go's and js's from || seqno) are kept by their SHA-256; the length
// byte keeps them apart from a 32-byte id that happens to equal that hash.
TEST(RouterSeenCache, LongIdsAreKeptByTheirHashAndNeverConfusedWithShortOnes) {
  Time t0 = Time{} + std::chrono::hours(1);
  SeenCache seen(std::chrono::seconds(10), 100);
  Bytes long_id(46, 0x11);
  Bytes other_long = long_id;
  other_long.back() = 0x12;
  EXPECT_TRUE(seen.add(long_id, t0));
  EXPECT_TRUE(seen.contains(long_id));
  EXPECT_FALSE(seen.contains(other_long));
  const auto hash = crypto::sha256(long_id);
  EXPECT_FALSE(seen.contains(Bytes(hash.begin(), hash.end())));
  EXPECT_FALSE(seen.contains(Bytes(long_id.begin(), long_id.begin() + 32)));
  EXPECT_TRUE(seen.add(Bytes{}, t0));  // an empty id is an id too
  EXPECT_FALSE(seen.add(Bytes{}, t0));
}

// Expiry keeps first-seen order over many ids, and the ring's expired prefix is dropped.
TEST(RouterSeenCache, ExpiresInFirstSeenOrderAcrossManyIds) {
  Time t0 = Time{} + std::chrono::hours(1);
  SeenCache seen(std::chrono::seconds(10), 1'000'000);
  auto id = [](uint32_t i) {
    return Bytes{uint8_t(i >> 24), uint8_t(i >> 16), uint8_t(i >> 8), uint8_t(i)};
  };
  for (uint32_t i = 0; i < 20'000; ++i)
    ASSERT_TRUE(seen.add(id(i), t0 + std::chrono::milliseconds(i)));
  seen.expire(t0 + std::chrono::milliseconds(10'000 + 14'999));  // ids 0..14999 are 10 s old
  EXPECT_EQ(seen.size(), 5'000u);
  EXPECT_FALSE(seen.contains(id(14'999)));
  EXPECT_TRUE(seen.contains(id(15'000)));
  EXPECT_TRUE(seen.add(id(0), t0 + std::chrono::seconds(30)));  // forgotten, so new again
  seen.expire(t0 + std::chrono::seconds(39));
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen.contains(id(0)));
}

}  // namespace
}  // namespace p2pmq::pubsub
