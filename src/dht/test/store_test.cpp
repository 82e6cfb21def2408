#include "dht/store.hpp"

#include <gtest/gtest.h>

#include "crypto/keys.hpp"
#include "dht/key.hpp"
#include "helpers.hpp"

namespace p2pmq::dht {
namespace {

using test::addr;
using test::peer;

const Time t0{};

TEST(ProviderStore, ExpiresAfterTtlAndRepublishRefreshes) {
  ProviderStore store;
  Bytes key = topic_key("a");
  ASSERT_TRUE(store.add(key, peer(1), {addr(1)}, t0));
  ASSERT_TRUE(store.add(key, peer(2), {}, t0 + 1h));
  auto got = store.get(key, t0 + 1h);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].id, peer(2));      // most recent first
  EXPECT_TRUE(got[1].addrs.empty());  // addresses only served for addr_ttl (30 min)
  EXPECT_EQ(store.get(key, t0 + 10min)[1].addrs, std::vector<Multiaddr>{addr(1)});

  EXPECT_EQ(store.get(key, t0 + 47h).size(), 2u);
  EXPECT_EQ(store.get(key, t0 + 48h).size(), 1u);      // peer(1) expired at 48 h
  ASSERT_TRUE(store.add(key, peer(2), {}, t0 + 40h));  // republish: no double count
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.count_for(peer(2)), 1u);
  EXPECT_EQ(store.expire(t0 + 50h), 1u);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.count_for(peer(1)), 0u);
  EXPECT_EQ(store.get(key, t0 + 87h).size(), 1u);
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
  auto got = store.get(k, t0 + 3s);
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
