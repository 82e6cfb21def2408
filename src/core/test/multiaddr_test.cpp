#include "core/multiaddr.hpp"

#include <gtest/gtest.h>

#include "core/multibase.hpp"

namespace p2pmq {
namespace {

Bytes hex(std::string_view h) {
  Bytes b;
  EXPECT_TRUE(from_hex(h, b)) << h;
  return b;
}

Multiaddr parse_ok(std::string_view text) {
  auto r = Multiaddr::parse(text);
  EXPECT_TRUE(r) << text << ": " << (r ? "" : r.error().to_string());
  return r ? *r : Multiaddr{};
}

// Text <-> binary pairs: multiaddr's test/multiaddr.feature and go-multiaddr's
// TestStringToBytes / TestBytesToString.
TEST(Multiaddr, SpecBinaryVectors) {
  const std::pair<const char*, const char*> cases[] = {
      {"/ip4/192.0.2.42/tcp/443", "04c000022a0601bb"},
      {"/ip4/127.0.0.1/udp/1234", "047f000001910204d2"},
      {"/ip4/127.0.0.1/tcp/4321", "047f0000010610e1"},
      {"/ip4/127.0.0.1/udp/1234/ip4/127.0.0.1/tcp/4321", "047f000001910204d2047f0000010610e1"},
  };
  for (auto [text, h] : cases) {
    Multiaddr m = parse_ok(text);
    EXPECT_EQ(to_hex(m.bytes()), h) << text;
    auto d = Multiaddr::decode(hex(h));
    ASSERT_TRUE(d) << h;
    EXPECT_EQ(d->to_string(), text);
    EXPECT_EQ(*d, m);
  }
  auto m = parse_ok("/ip4/192.0.2.42/tcp/443");
  ASSERT_EQ(m.components().size(), 2u);
  EXPECT_EQ(m.components()[0], (MultiaddrComponent{Protocol::ip4, hex("c000022a")}));
  EXPECT_EQ(m.components()[1], (MultiaddrComponent{Protocol::tcp, hex("01bb")}));
}

// go-multiaddr's `good` list, restricted to the protocols p2pmq supports (base36 peer ids
// excluded: multibase 'k' is not supported).
TEST(Multiaddr, SpecValidRoundTrips) {
  const char* good[] = {
      "/ip4/1.2.3.4",
      "/ip4/0.0.0.0",
      "/ip6/::1",
      "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21",
      "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21/udp/1234/quic",
      "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21/udp/1234/quic-v1",
      "/udp/0",
      "/tcp/0",
      "/udp/1234",
      "/tcp/1234",
      "/udp/65535",
      "/tcp/65535",
      "/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
      "/p2p/12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV",
      "/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC/tcp/1234",
      "/ip4/127.0.0.1/udp/1234",
      "/ip4/127.0.0.1/udp/0",
      "/ip4/127.0.0.1/tcp/1234",
      "/ip4/127.0.0.1/udp/1234/quic",
      "/ip4/127.0.0.1/udp/1234/quic-v1",
      "/ip4/127.0.0.1/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
      "/ip4/127.0.0.1/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC/tcp/1234",
      "/ip4/127.0.0.1/tcp/127/ws",
      "/ip4/127.0.0.1/tcp/127/tls",
      "/ip4/127.0.0.1/tcp/127/tls/ws",
      "/ip4/127.0.0.1/tcp/127/wss",
      "/dns/example.com",
      "/dns4/example.com/tcp/443/wss",
      "/dns6/example.com/tcp/443",
      "/dnsaddr/bootstrap.libp2p.io/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
      "/ip4/1.2.3.4/tcp/4001/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC/p2p-circuit/p2p/"
      "12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV",
  };
  for (const char* text : good) {
    Multiaddr m = parse_ok(text);
    EXPECT_EQ(m.to_string(), text);
    auto d = Multiaddr::decode(m.bytes());
    ASSERT_TRUE(d) << text;
    EXPECT_EQ(*d, m) << text;
  }
}

TEST(Multiaddr, Aliases) {
  // /ipfs is printed as /p2p, CIDv1 peer ids as base58, a trailing '/' is dropped.
  EXPECT_EQ(parse_ok("/ipfs/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC").to_string(),
            "/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC");
  EXPECT_EQ(parse_ok("/p2p/bafzbeigvf25ytwc3akrijfecaotc74udrhcxzh2cx3we5qqnw5vgrei4bm"),
            parse_ok("/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC"));
  EXPECT_EQ(parse_ok("/p2p/bafzaajaiaejcalj543iwv2d7pkjt7ykvefrkfu7qjfi6sduakhso4lay6abn2d5u"),
            parse_ok("/p2p/12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV"));
  EXPECT_EQ(parse_ok("/ip4/127.0.0.1/tcp/1234/"), parse_ok("/ip4/127.0.0.1/tcp/1234"));
  EXPECT_EQ(parse_ok("/ip6/0:0:0:0:0:0:0:1").to_string(), "/ip6/::1");
  EXPECT_EQ(parse_ok("/ip6/2001:DB8::0001").to_string(), "/ip6/2001:db8::1");
}

// go-multiaddr's TestConstructFails, restricted to what applies here, plus our limits.
TEST(Multiaddr, SpecInvalidText) {
  const char* bad[] = {
      "/ip4",
      "/ip4/::1",
      "/ip4/fdpsofodsajfdoisa",
      "/ip6",
      "/ip6zone",
      "/udp",
      "/tcp",
      "/udp/65536",
      "/tcp/65536",
      "/quic/65536",
      "/quic-v1/65536",
      "/ip4/127.0.0.1/udp/jfodsajfidosajfoidsa",
      "/ip4/127.0.0.1/udp",
      "/ip4/127.0.0.1/tcp/jfodsajfidosajfoidsa",
      "/ip4/127.0.0.1/tcp",
      "/ip4/127.0.0.1/quic/1234",
      "/ip4/127.0.0.1/quic-v1/1234",
      "/ip4/127.0.0.1/ipfs",
      "/ip4/127.0.0.1/ipfs/tcp",
      "/ip4/127.0.0.1/p2p",
      "/ip4/127.0.0.1/p2p/tcp",
      "/unix",
      "/ip4/1.2.3.4/tcp/-1",
      "/",
      "",
      "/p2p/QmxoHT6iViN5xAjoz1VZ553cL31U9F94ht3QvWR1FrEbZY",  // sha256 digest len > 32
      // Ours:
      "ip4/1.2.3.4",
      "//ip4/1.2.3.4",
      "/ip4/1.2.3.4//tcp/1",
      "/ip4/1.2.3.4/tcp/+1",
      "/ip4/1.2.3.4/tcp/ 1",
      "/ip4/01.2.3.4",
      "/dns/",
      "/dns//tcp/1",
      "/p2p/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",  // codec raw
      "/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N0",
  };
  for (const char* text : bad) EXPECT_FALSE(Multiaddr::parse(text)) << text;
  EXPECT_FALSE(Multiaddr::parse(std::string_view("/ip4/1.2.3.4\0/tcp/1", 19)));
  EXPECT_FALSE(Multiaddr::parse(std::string_view("/ip4/1.2.3.4\0", 13)));
  EXPECT_EQ(Multiaddr::parse("/unix/a").error().code, Errc::unsupported);
}

TEST(Multiaddr, InvalidBinary) {
  const char* bad[] = {
      "",
      "04",              // truncated ip4
      "047f0000",        // truncated ip4
      "047f0000010610",  // truncated tcp
      "0601bb8000",      // non-minimal varint code
      "2a00",            // ip6zone: unsupported
      "3500",            // empty dns name
      "35052f6574632f",  // dns with '/'
      "3505616263",      // dns length beyond the end
      "a50300",          // empty p2p value
      "a503051220aabb",  // p2p: truncated multihash
      "a50303320100",    // p2p: neither identity nor sha2-256
      "a503020000",      // p2p: empty identity digest
      "ffffffffffffffffff01",
  };
  for (const char* h : bad) EXPECT_FALSE(Multiaddr::decode(hex(h))) << h;
  EXPECT_EQ(Multiaddr::decode(hex("2a00")).error().code, Errc::unsupported);
}

TEST(Multiaddr, Limits) {
  std::string text;
  for (int i = 0; i < 33; ++i) text += "/tcp/1";
  EXPECT_EQ(Multiaddr::parse(text).error().code, Errc::limit_exceeded);
  Bytes bin;
  for (int i = 0; i < 33; ++i) append(bin, hex("060001"));
  EXPECT_EQ(Multiaddr::decode(bin).error().code, Errc::limit_exceeded);
  EXPECT_EQ(Multiaddr::parse("/dns/" + std::string(1100, 'a')).error().code, Errc::limit_exceeded);
  EXPECT_FALSE(Multiaddr::parse("/dns/" + std::string(256, 'a')));
  EXPECT_TRUE(Multiaddr::parse("/dns/" + std::string(255, 'a')));
  EXPECT_EQ(Multiaddr::decode(Bytes(1025, 0x06)).error().code, Errc::limit_exceeded);
}

TEST(Multiaddr, PeerIdHelpers) {
  const auto peer = *base58btc_decode("12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV");
  const auto relay = *base58btc_decode("QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC");
  Multiaddr base = parse_ok("/ip4/1.2.3.4/tcp/4001");
  EXPECT_FALSE(base.p2p());
  Multiaddr full = base.with_p2p(peer);
  EXPECT_EQ(full.to_string(),
            "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV");
  EXPECT_EQ(full.p2p(), peer);
  EXPECT_EQ(full.without_p2p(), base);
  EXPECT_EQ(full.with_p2p(relay).p2p(), relay);  // replaces, does not stack
  EXPECT_EQ(full.with_p2p(relay).components().size(), 3u);

  Multiaddr circuit = base.with_p2p(relay);
  circuit.push({Protocol::p2p_circuit, {}});
  EXPECT_EQ(circuit.p2p(), relay);
  EXPECT_EQ(circuit.without_p2p(), circuit);  // only a trailing /p2p is removed
  EXPECT_EQ(circuit.with_p2p(peer).p2p(), peer);
}

TEST(Multiaddr, TcpTarget) {
  auto t = parse_ok("/ip4/192.0.2.42/tcp/443/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC")
               .tcp_target();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "192.0.2.42");
  EXPECT_EQ(t->port, 443);
  EXPECT_FALSE(t->is_dns);
  EXPECT_EQ(t->family, 4);

  t = parse_ok("/ip6/2001:db8::1/tcp/4001").tcp_target();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "2001:db8::1");
  EXPECT_EQ(t->family, 6);

  t = parse_ok("/dns/example.com/tcp/80/ws").tcp_target();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "example.com");
  EXPECT_EQ(t->port, 80);
  EXPECT_TRUE(t->is_dns);
  EXPECT_EQ(t->family, 0);
  EXPECT_EQ(parse_ok("/dns4/example.com/tcp/80").tcp_target()->family, 4);
  EXPECT_EQ(parse_ok("/dns6/example.com/tcp/80").tcp_target()->family, 6);

  EXPECT_FALSE(parse_ok("/ip4/1.2.3.4/udp/80").tcp_target());
  EXPECT_FALSE(parse_ok("/dnsaddr/example.com/tcp/80").tcp_target());
  EXPECT_FALSE(parse_ok("/tcp/80").tcp_target());
  EXPECT_FALSE(parse_ok("/ip4/1.2.3.4").tcp_target());
}

TEST(Multiaddr, FromIpTcp) {
  EXPECT_EQ(Multiaddr::from_ip_tcp("127.0.0.1", 4001).to_string(), "/ip4/127.0.0.1/tcp/4001");
  EXPECT_EQ(Multiaddr::from_ip_tcp("::1", 0).to_string(), "/ip6/::1/tcp/0");
  EXPECT_THROW(Multiaddr::from_ip_tcp("example.com", 1), std::invalid_argument);
}

}  // namespace
}  // namespace p2pmq
