#include "dht/key.hpp"

#include <gtest/gtest.h>

#include "crypto/hash.hpp"
#include "helpers.hpp"

namespace p2pmq::dht {
namespace {

TEST(KadKey, IsSha256OfTheKeyBytes) {
  auto p = test::peer(7);
  EXPECT_EQ(kad_key(p).bytes, crypto::sha256(p.bytes()));
  EXPECT_EQ(kad_key(as_bytes("abc")).bytes, crypto::sha256(as_bytes("abc")));
}

TEST(KadKey, XorDistanceAndCommonPrefix) {
  KadKey a, b;
  EXPECT_EQ(common_prefix_length(a, b), 256u);
  EXPECT_EQ(xor_distance(a, a), KadKey{});
  b.bytes[0] = 0x80;
  EXPECT_EQ(common_prefix_length(a, b), 0u);
  b.bytes[0] = 0x01;
  EXPECT_EQ(common_prefix_length(a, b), 7u);
  b.bytes[0] = 0;
  b.bytes[3] = 0x10;
  EXPECT_EQ(common_prefix_length(a, b), 27u);
  EXPECT_EQ(xor_distance(a, b).bytes[3], 0x10);
  EXPECT_EQ(xor_distance(a, b), xor_distance(b, a));
  // Ordered as a big-endian number.
  KadKey near, far;
  near.bytes[31] = 0xff;
  far.bytes[0] = 0x01;
  EXPECT_LT(near, far);
}

TEST(KadKey, TopicAndArchiveKeysAreDocumentedBytes) {
  auto d = crypto::sha256(as_bytes("p2pmq/topic/orders"));
  Bytes want{0x12, 0x20};
  want.insert(want.end(), d.begin(), d.end());
  EXPECT_EQ(topic_key("orders"), want);
  Bytes cid{0x01, 0x55};
  append(cid, want);
  EXPECT_EQ(topic_cid("orders"), cid);

  auto a = crypto::sha256(as_bytes("p2pmq/archive/orders"));
  Bytes want_a{0x12, 0x20};
  want_a.insert(want_a.end(), a.begin(), a.end());
  EXPECT_EQ(archive_key("orders"), want_a);
  EXPECT_NE(topic_key("orders"), topic_key("orders2"));
}

TEST(KadKey, RandomKeyWithCpl) {
  std::mt19937_64 rng(1);
  KadKey local = kad_key(test::peer(1));
  for (size_t cpl : {0u, 1u, 5u, 10u}) {
    Bytes k = random_key_with_cpl(local, cpl, rng);
    EXPECT_EQ(k.size(), 34u);
    EXPECT_EQ(common_prefix_length(kad_key(k), local), cpl);
    EXPECT_TRUE(crypto::PeerId::from_bytes(k));
  }
}

}  // namespace
}  // namespace p2pmq::dht
