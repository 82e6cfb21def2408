#include "dht/codec.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/varint.hpp"
#include "helpers.hpp"

namespace p2pmq::dht {
namespace {

using test::addr;
using test::peer;

Bytes hex(std::string_view h) {
  Bytes out;
  EXPECT_TRUE(from_hex(h, out));
  return out;
}

KadMessage full_message() {
  KadMessage m;
  m.type = MessageType::get_value;
  m.key = to_bytes("/pk/some-key");
  m.record = KadRecord{to_bytes("/pk/some-key"), to_bytes("value"), "2024-01-02T03:04:05Z"};
  m.closer_peers = {KadPeer{peer(1), {addr(1), addr(2)}, ConnectionType::connected},
                    KadPeer{peer(2), {}, ConnectionType::cannot_connect}};
  m.provider_peers = {KadPeer{peer(3), {addr(3)}, ConnectionType::can_connect}};
  return m;
}

TEST(KadCodec, RoundTripsEveryField) {
  KadMessage m = full_message();
  auto back = decode(encode(m));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(*back, m);
  for (int t = 0; t <= 5; ++t) {
    KadMessage simple;
    simple.type = static_cast<MessageType>(t);
    simple.key = {1, 2, 3};
    auto again = decode(encode(simple));
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, simple);
  }
}

TEST(KadCodec, ExactFieldNumbersAndWireTypes) {
  Bytes id = peer(1).bytes();
  Bytes a = addr(1).bytes();
  KadMessage m;
  m.type = MessageType::find_node;
  m.key = {0xaa};
  m.record = KadRecord{{0xbb}, {0xcc}, "t"};
  m.closer_peers = {KadPeer{peer(1), {addr(1)}, ConnectionType::connected}};
  m.provider_peers = {KadPeer{peer(1), {}, ConnectionType::not_connected}};

  // type=1 varint, key=2, record=3 {key=1, value=2, timeReceived=5}, closerPeers=8
  // {id=1, addrs=2, connection=3 varint}, providerPeers=9 {id=1}.
  Bytes want =
      hex("0804"
          "1201aa"
          "1a09"
          "0a01bb"
          "1201cc"
          "2a0174");
  Bytes closer;
  closer.push_back(0x0a), varint_append(closer, id.size()), append(closer, id);
  closer.push_back(0x12), varint_append(closer, a.size()), append(closer, a);
  closer.push_back(0x18), closer.push_back(0x01);
  want.push_back(0x42), varint_append(want, closer.size()), append(want, closer);
  Bytes provider;
  provider.push_back(0x0a), varint_append(provider, id.size()), append(provider, id);
  want.push_back(0x4a), varint_append(want, provider.size()), append(want, provider);
  EXPECT_EQ(to_hex(encode(m)), to_hex(want));

  // clusterLevelRaw (field 10) is ignored; PUT_VALUE = 0 is the proto3 default.
  auto d =
      decode(hex("5005"
                 "1201aa"));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->type, MessageType::put_value);
  EXPECT_EQ(d->key, Bytes{0xaa});
  EXPECT_TRUE(encode(KadMessage{MessageType::put_value, {}, {}, {}, {}}).empty());
}

TEST(KadCodec, RefusesMalformedAndUnknown) {
  EXPECT_EQ(decode(hex("ff")).error().code, Errc::invalid_input);
  EXPECT_EQ(decode(hex("0809")).error().code, Errc::invalid_input);          // type 9
  EXPECT_EQ(decode(hex("08ffffffff0f")).error().code, Errc::invalid_input);  // type -1
  EXPECT_EQ(decode(hex("1205aa")).error().code, Errc::invalid_input);        // truncated key
}

TEST(KadCodec, EnforcesLimits) {
  KadLimits limits;
  limits.max_message_size = 100;
  limits.max_peers = 2;
  limits.max_key_size = 4;
  limits.max_value_size = 3;

  KadMessage big;
  big.key = Bytes(200, 1);
  EXPECT_EQ(decode(encode(big), limits).error().code, Errc::limit_exceeded);

  KadMessage key;
  key.key = Bytes(5, 1);
  EXPECT_EQ(decode(encode(key), limits).error().code, Errc::limit_exceeded);

  KadMessage value;
  value.record = KadRecord{{1}, Bytes(4, 1), ""};
  EXPECT_EQ(decode(encode(value), limits).error().code, Errc::limit_exceeded);

  KadMessage peers;
  for (int i = 0; i < 3; ++i) peers.provider_peers.push_back(KadPeer{peer(i), {}, {}});
  EXPECT_EQ(decode(encode(peers), limits).error().code, Errc::limit_exceeded);
  peers.provider_peers.pop_back();
  EXPECT_TRUE(decode(encode(peers), limits));
}

TEST(KadCodec, SkipsBadPeersAndAddresses) {
  KadLimits limits;
  limits.max_addrs_per_peer = 2;
  KadMessage m;
  m.closer_peers = {KadPeer{peer(1), {addr(1), addr(2), addr(3)}, {}}};
  Bytes wire = encode(m);
  // A peer whose id is not a multihash, and one with an undecodable address.
  Bytes bad_id =
      hex("0a03"
          "ffffff");
  wire.push_back(0x42), varint_append(wire, bad_id.size()), append(wire, bad_id);
  Bytes id = peer(2).bytes();
  Bytes bad_addr;
  bad_addr.push_back(0x0a), varint_append(bad_addr, id.size()), append(bad_addr, id);
  append(bad_addr, hex("1202ffff"));
  wire.push_back(0x42), varint_append(wire, bad_addr.size()), append(wire, bad_addr);

  auto d = decode(wire, limits);
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_EQ(d->closer_peers.size(), 2u);
  EXPECT_EQ(d->closer_peers[0].addrs, (std::vector<Multiaddr>{addr(1), addr(2)}));
  EXPECT_EQ(d->closer_peers[1].id, peer(2));
  EXPECT_TRUE(d->closer_peers[1].addrs.empty());
}

TEST(KadCodec, ReaderSplitsFramesAndRefusesOversizedPrefix) {
  Bytes stream;
  KadMessage a = full_message(), b;
  b.type = MessageType::ping;
  append_framed(stream, a);
  append_framed(stream, b);
  MessageReader reader;
  std::vector<KadMessage> got;
  for (uint8_t byte : stream) {
    reader.feed(BytesView(&byte, 1));
    for (;;) {
      auto next = reader.next();
      ASSERT_TRUE(next);
      if (!*next) break;
      got.push_back(**next);
    }
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], a);
  EXPECT_EQ(got[1], b);
  EXPECT_EQ(reader.buffered(), 0u);

  KadLimits small;
  small.max_message_size = 10;
  MessageReader r2(small);
  Bytes prefix = varint_bytes(11);
  r2.feed(prefix);
  EXPECT_EQ(r2.next().error().code, Errc::limit_exceeded);
  EXPECT_FALSE(r2.next());  // errors are final
}

TEST(KadCodec, SeedCorpusDecodes) {
  namespace fs = std::filesystem;
  size_t n = 0;
  for (const auto& f : fs::directory_iterator(fs::path(P2PMQ_SOURCE_DIR) / "fuzz/corpus/kad")) {
    std::ifstream in(f.path(), std::ios::binary);
    Bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (f.path().filename() == "framed_stream") {
      MessageReader r;
      r.feed(b);
      EXPECT_TRUE(r.next() && r.next());
    } else {
      auto m = decode(b);
      EXPECT_TRUE(m) << f.path() << ": " << m.error().to_string();
    }
    ++n;
  }
  EXPECT_GE(n, 5u);
}

}  // namespace
}  // namespace p2pmq::dht
