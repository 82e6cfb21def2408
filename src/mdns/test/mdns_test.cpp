#include "mdns/mdns.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "helpers.hpp"

namespace p2pmq::mdns {
namespace {

using test::peer;
using test::Wire;
using ::testing::ElementsAre;
using ::testing::SizeIs;

Multiaddr ma(std::string_view text) {
  return Multiaddr::parse(text).value();
}

const Time t0 = Time{} + 1000h;

std::vector<Multiaddr> addrs_of(int i) {
  return {ma("/ip4/192.168.1." + std::to_string(i) + "/tcp/4001"),
          ma("/ip4/127.0.0.1/tcp/" + std::to_string(4000 + i))};
}

Message decoded(const Bytes& wire) {
  auto m = decode(wire);
  EXPECT_TRUE(m) << m.error().to_string();
  return m.value_or(Message{});
}

// A sends everything due at `now` to B; returns what B discovered.
std::vector<DiscoveredPeer> deliver(Mdns& from, Mdns& to, Time now) {
  std::vector<DiscoveredPeer> out;
  for (const auto& d : from.poll_send(now)) {
    auto found = to.on_datagram(d, now);
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

TEST(Mdns, PeerNameIsARandomLabel) {
  Mdns a(peer(1), {}, Config{}, 1);
  Mdns b(peer(1), {}, Config{}, 2);
  EXPECT_NE(a.peer_name(), b.peer_name());
  for (const auto* m : {&a, &b}) {
    EXPECT_GE(m->peer_name().size(), 32u);
    EXPECT_LE(m->peer_name().size(), 63u);
    for (char c : m->peer_name()) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
    EXPECT_EQ(name_to_string(m->instance_name()), m->peer_name() + "._p2p._udp.local");
  }
}

TEST(Mdns, FirstPollQueriesAndAnnounces) {
  Mdns a(peer(1), addrs_of(1), Config{}, 1);
  EXPECT_LE(a.next_deadline(), t0);
  auto out = a.poll_send(t0);
  ASSERT_THAT(out, SizeIs(2));

  auto query = decoded(out[0]);
  EXPECT_FALSE(query.is_response());
  EXPECT_EQ(query.id, 0);
  ASSERT_THAT(query.questions, SizeIs(1));
  EXPECT_EQ(query.questions[0].name, name_from_string("_p2p._udp.local"));
  EXPECT_EQ(query.questions[0].type, RrType::ptr);
  EXPECT_EQ(query.questions[0].qclass, kClassIn);

  auto resp = decoded(out[1]);
  EXPECT_TRUE(resp.is_response());
  EXPECT_TRUE(resp.flags & kFlagAuthoritative);
  ASSERT_THAT(resp.answers, SizeIs(1));
  EXPECT_EQ(resp.answers[0].name, name_from_string("_p2p._udp.local"));
  EXPECT_EQ(resp.answers[0].ttl, 120u);
  EXPECT_EQ(std::get<PtrData>(resp.answers[0].data).target, a.instance_name());
  ASSERT_THAT(resp.additionals, SizeIs(1));
  EXPECT_EQ(resp.additionals[0].name, a.instance_name());
  EXPECT_TRUE(resp.additionals[0].cache_flush);
  const std::string id = peer(1).to_string();
  EXPECT_THAT(std::get<TxtData>(resp.additionals[0].data).strings,
              ElementsAre("dnsaddr=/ip4/192.168.1.1/tcp/4001/p2p/" + id,
                          "dnsaddr=/ip4/127.0.0.1/tcp/4001/p2p/" + id));
  EXPECT_EQ(a.stats().queries_sent, 1u);
  EXPECT_EQ(a.stats().responses_sent, 1u);
  EXPECT_TRUE(a.poll_send(t0).empty());
}

TEST(Mdns, QueryIntervalGrowsToTheConfiguredOne) {
  Mdns a(peer(1), {}, Config{}, 1);
  Time now = t0;
  (void)a.poll_send(now);
  std::vector<Duration> gaps;
  for (int i = 0; i < 7; ++i) {
    Time next = a.next_deadline();
    EXPECT_TRUE(a.poll_send(next - 1ms).empty());
    auto out = a.poll_send(next);
    EXPECT_THAT(out, SizeIs(1));  // no addresses: queries only
    gaps.push_back(next - now);
    now = next;
  }
  EXPECT_THAT(gaps, ElementsAre(Duration(1s), Duration(2s), Duration(4s), Duration(8s),
                                Duration(10s), Duration(10s), Duration(10s)));
}

TEST(Mdns, AnswersQueriesAndDiscovers) {
  Mdns a(peer(1), addrs_of(1), Config{}, 1);
  Mdns b(peer(2), addrs_of(2), Config{}, 2);
  (void)b.poll_send(t0);       // b's start-up announcement, nobody listening yet
  (void)b.poll_send(t0 + 4s);  // and its second query: the next is due at t0 + 6s
  // a starts: its query reaches b; its announcement lets b discover a.
  auto found_by_b = deliver(a, b, t0 + 5s);
  ASSERT_THAT(found_by_b, SizeIs(1));
  EXPECT_EQ(found_by_b[0].peer, peer(1));
  EXPECT_EQ(found_by_b[0].addrs, addrs_of(1));
  EXPECT_TRUE(found_by_b[0].is_new);
  EXPECT_EQ(b.stats().queries_received, 1u);

  // b answers after 20-120 ms.
  Time due = b.next_deadline();
  EXPECT_GE(due, t0 + 5s + 20ms);
  EXPECT_LE(due, t0 + 5s + 120ms);
  auto found_by_a = deliver(b, a, due);
  ASSERT_THAT(found_by_a, SizeIs(1));
  EXPECT_EQ(found_by_a[0].peer, peer(2));
  EXPECT_EQ(found_by_a[0].addrs, addrs_of(2));
  EXPECT_TRUE(found_by_a[0].is_new);
  ASSERT_TRUE(a.peers().contains(peer(2)));
  EXPECT_EQ(a.peers().at(peer(2)).expires, due + 120s);

  // Seen again: no longer new.
  const Time now = a.next_deadline();
  for (const auto& d : a.poll_send(now)) b.on_datagram(d, now);
  std::vector<DiscoveredPeer> again;
  for (Time t = now; t < now + 2s && again.empty(); t += 10ms) again = deliver(b, a, t);
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_FALSE(again[0].is_new);
}

TEST(Mdns, AnswersItsOwnQueryAndIgnoresItsOwnAnswer) {
  Mdns a(peer(1), addrs_of(1), Config{}, 1);
  auto out = a.poll_send(t0);
  ASSERT_THAT(out, SizeIs(2));
  // Looped back by the kernel.
  EXPECT_TRUE(a.on_datagram(out[0], t0).empty());
  EXPECT_TRUE(a.on_datagram(out[1], t0).empty());
  EXPECT_EQ(a.stats().self, 1u);
  EXPECT_EQ(a.stats().queries_received, 1u);
  // The answer to our own query waits out the one-second rule.
  EXPECT_EQ(a.next_deadline(), t0 + 1s);
  auto later = a.poll_send(t0 + 1s);
  ASSERT_THAT(later, SizeIs(2));  // the next query, and the answer
  EXPECT_TRUE(decoded(later[1]).is_response());
}

TEST(Mdns, AtMostOneResponseASecond) {
  Mdns a(peer(1), addrs_of(1), Config{}, 1);
  Mdns q(peer(2), {}, Config{}, 2);
  auto query = q.poll_send(t0).at(0);
  (void)a.poll_send(t0);  // announcement at t0
  for (int i = 0; i < 10; ++i) a.on_datagram(query, t0 + std::chrono::milliseconds(i * 50));
  EXPECT_EQ(a.next_deadline(), t0 + 1s);
  size_t responses = 0;
  for (Time now = t0 + 1ms; now < t0 + 1s; now += 10ms) responses += a.poll_send(now).size();
  EXPECT_EQ(responses, 0u);
  EXPECT_THAT(a.poll_send(t0 + 1s), SizeIs(2));  // query + the one response
  EXPECT_EQ(a.stats().responses_sent, 2u);
}

TEST(Mdns, KnownAnswerSuppression) {
  Mdns a(peer(1), addrs_of(1), Config{}, 1);
  (void)a.poll_send(t0);
  Message q;
  q.questions.push_back(Question{name_from_string("_p2p._udp.local"), RrType::ptr});
  q.answers.push_back(ResourceRecord{name_from_string("_p2p._udp.local"), RrType::ptr, kClassIn,
                                     false, 100, PtrData{a.instance_name()}});
  a.on_datagram(encode(q).value(), t0 + 5s);
  EXPECT_EQ(a.stats().queries_suppressed, 1u);
  auto out = a.poll_send(t0 + 5s + 200ms);
  ASSERT_THAT(out, SizeIs(1));  // our next query, no answer
  EXPECT_FALSE(decoded(out[0]).is_response());
  q.answers[0].ttl = 30;  // under half our TTL: answer anyway
  a.on_datagram(encode(q).value(), t0 + 6s);
  out = a.poll_send(t0 + 6s + 200ms);
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_TRUE(decoded(out[0]).is_response());
}

TEST(Mdns, AnswersDirectTxtAndAnyQuestions) {
  Mdns a(peer(1), addrs_of(1), Config{}, 1);
  (void)a.poll_send(t0);
  Message q;
  q.questions.push_back(Question{a.instance_name(), RrType::txt});
  a.on_datagram(encode(q).value(), t0 + 5s);
  q.questions[0] = Question{name_from_string("_P2P._udp.LOCAL"), RrType::any, kClassAny, true};
  a.on_datagram(encode(q).value(), t0 + 5s);
  q.questions[0] = Question{name_from_string("_other._udp.local"), RrType::ptr};
  a.on_datagram(encode(q).value(), t0 + 5s);
  q.questions[0] = Question{name_from_string("_p2p._udp.local"), RrType::a};
  a.on_datagram(encode(q).value(), t0 + 5s);
  EXPECT_EQ(a.stats().queries_received, 2u);
}

// A response laid out as go-libp2p (zeroconf over miekg/dns) sends it: the PTR answer, then
// SRV, TXT, A and AAAA additional records, every repeated name compressed.
struct GoResponse {
  std::string peer_name = "x9f3k2m8q1w7e5r4t6y0u2i8o3p1a5s7d9";
  Bytes wire;
  explicit GoResponse(const std::vector<std::string>& txt) {
    Wire w;
    w.header(0, kFlagResponse | kFlagAuthoritative, 0, 1, 0, 4);
    const size_t service = w.size();  // 12
    w.label("_p2p").label("_udp").label("local").root();
    const size_t local = service + 10;
    size_t at = w.rr_fixed(12, 1, 3200);
    const size_t instance = w.size();
    w.label(peer_name).ptr(service);
    w.end_rdata(at);
    // SRV <instance> 0 0 4001 <peer-name>.local
    w.ptr(instance);
    at = w.rr_fixed(33, 0x8001, 3200);
    w.u16(0).u16(0).u16(4001);
    const size_t host = w.size();
    w.label(peer_name).ptr(local);
    w.end_rdata(at);
    // TXT <instance> dnsaddr=...
    w.ptr(instance);
    at = w.rr_fixed(16, 0x8001, 3200);
    for (const auto& s : txt) w.txt_string(s);
    w.end_rdata(at);
    // A and AAAA <host>
    w.ptr(host);
    at = w.rr_fixed(1, 0x8001, 3200);
    w.u8(192).u8(168).u8(1).u8(5);
    w.end_rdata(at);
    w.ptr(host);
    at = w.rr_fixed(28, 0x8001, 3200);
    w.u16(0x2001).u16(0x0db8);
    for (int i = 0; i < 5; ++i) w.u16(0);
    w.u16(1);
    w.end_rdata(at);
    wire = std::move(w.b);
  }
};

TEST(Mdns, DiscoversFromAGoLibp2pResponse) {
  const auto id = peer(7).to_string();
  GoResponse go({"dnsaddr=/ip4/192.168.1.5/tcp/4001/p2p/" + id,
                 "dnsaddr=/ip4/192.168.1.5/udp/4001/quic-v1/p2p/" + id,
                 "dnsaddr=/ip6/2001:db8::1/tcp/4001/p2p/" + id,
                 "dnsaddr=/ip4/192.168.1.5/tcp/4001",  // no /p2p/: ignored
                 "dnsaddr=not a multiaddr",            // ignored
                 "txtvers=1"});                        // another attribute

  auto m = decode(go.wire);
  ASSERT_TRUE(m) << m.error().to_string();
  ASSERT_THAT(m->additionals, SizeIs(4));
  EXPECT_EQ(std::get<SrvData>(m->additionals[0].data).target,
            name_from_string(go.peer_name + ".local"));
  EXPECT_EQ(m->additionals[2].name, name_from_string(go.peer_name + ".local"));

  Mdns a(peer(1), addrs_of(1), Config{}, 1);
  auto found = a.on_datagram(go.wire, t0);
  ASSERT_THAT(found, SizeIs(1));
  EXPECT_EQ(found[0].peer, peer(7));
  EXPECT_THAT(found[0].addrs,
              ElementsAre(ma("/ip4/192.168.1.5/tcp/4001"), ma("/ip4/192.168.1.5/udp/4001/quic-v1"),
                          ma("/ip6/2001:db8::1/tcp/4001")));
  EXPECT_EQ(a.stats().bad_txt, 2u);
  EXPECT_EQ(a.stats().malformed, 0u);
  // TTL 3200 s is under the one-hour cap.
  EXPECT_EQ(a.peers().at(peer(7)).expires, t0 + 3200s);
}

TEST(Mdns, AcceptsTxtWithoutPtrAndUppercaseKey) {
  Message m;
  m.flags = kFlagResponse;
  m.answers.push_back(
      ResourceRecord{name_from_string("peer._P2P._udp.local"), RrType::txt, kClassIn, true, 60,
                     TxtData{{"DNSADDR=/ip4/10.0.0.9/tcp/1/p2p/" + peer(9).to_string()}}});
  Mdns a(peer(1), {}, Config{}, 1);
  auto found = a.on_datagram(encode(m).value(), t0);
  ASSERT_THAT(found, SizeIs(1));
  EXPECT_EQ(found[0].addrs, std::vector<Multiaddr>{ma("/ip4/10.0.0.9/tcp/1")});
}

TEST(Mdns, IgnoresOtherServicesAndPrivateNetworks) {
  Config private_net;
  private_net.service_name = "_p2p-0123abcd._udp.local";
  Mdns a(peer(1), addrs_of(1), private_net, 1);
  Mdns b(peer(2), addrs_of(2), Config{}, 2);
  EXPECT_TRUE(deliver(a, b, t0).empty());
  EXPECT_TRUE(deliver(b, a, t0).empty());
  EXPECT_EQ(a.stats().queries_received, 0u);
  EXPECT_EQ(b.stats().queries_received, 0u);
}

TEST(Mdns, MalformedDatagramsAreCountedAndDropped) {
  Mdns a(peer(1), addrs_of(1), Config{}, 1);
  EXPECT_TRUE(a.on_datagram(Bytes{1, 2, 3}, t0).empty());
  Wire loop;
  loop.header(0, kFlagResponse, 0, 1, 0, 0).label("a").ptr(12);
  EXPECT_TRUE(a.on_datagram(loop.b, t0).empty());
  Wire counts;
  counts.header(0, kFlagResponse, 0, 0xffff, 0, 0);
  EXPECT_TRUE(a.on_datagram(counts.b, t0).empty());
  EXPECT_EQ(a.stats().malformed, 3u);
  // Well-formed, but an update (opcode 5) or an error: ignored.
  Mdns b(peer(2), addrs_of(2), Config{}, 2);
  auto resp = b.poll_send(t0).at(1);
  resp[2] |= 5 << 3;
  EXPECT_TRUE(a.on_datagram(resp, t0).empty());
  resp[2] &= 0x87;
  resp[3] |= 3;
  EXPECT_TRUE(a.on_datagram(resp, t0).empty());
  EXPECT_EQ(a.stats().ignored, 2u);
  EXPECT_EQ(a.stats().datagrams, 5u);
}

TEST(Mdns, ManyAddressesAreSplitAcrossDatagrams) {
  std::vector<Multiaddr> many;
  for (int i = 0; i < 30; ++i)
    many.push_back(
        ma("/ip6/2001:db8::" + std::to_string(i + 1) + "/tcp/" + std::to_string(10000 + i)));
  many.push_back(ma("/dns4/" + std::string(240, 'h') + ".example/tcp/1"));  // too long: skipped
  Config cfg;
  cfg.max_packet_size = 512;
  Mdns a(peer(1), many, cfg, 1);
  Mdns b(peer(2), {}, Config{}, 2);
  auto out = a.poll_send(t0);
  ASSERT_GT(out.size(), 3u);
  std::vector<Multiaddr> seen;
  for (size_t i = 1; i < out.size(); ++i) {
    EXPECT_LE(out[i].size(), 512u);
    auto m = decoded(out[i]);
    EXPECT_THAT(m.answers, SizeIs(1));  // each datagram stands alone
    for (auto& d : b.on_datagram(out[i], t0))
      seen.insert(seen.end(), d.addrs.begin(), d.addrs.end());
  }
  many.pop_back();
  EXPECT_EQ(seen, many);
  EXPECT_EQ(b.peers().at(peer(1)).addrs, many);
  EXPECT_EQ(a.stats().addrs_skipped, 1u);
}

TEST(Mdns, NoAddressesNoAnswer) {
  Mdns a(peer(1), {}, Config{}, 1);
  EXPECT_THAT(a.poll_send(t0), SizeIs(1));  // the query only
  Mdns q(peer(2), {}, Config{}, 2);
  a.on_datagram(q.poll_send(t0).at(0), t0);
  EXPECT_THAT(a.poll_send(t0 + 1s), SizeIs(1));
  EXPECT_EQ(a.stats().responses_sent, 0u);
}

TEST(Mdns, NewAddressesAreAnnounced) {
  Mdns a(peer(1), addrs_of(1), Config{}, 1);
  (void)a.poll_send(t0);
  a.set_addrs(addrs_of(1));  // unchanged: nothing to announce
  EXPECT_EQ(a.next_deadline(), t0 + 1s);
  a.set_addrs({ma("/ip4/10.1.1.1/tcp/5/p2p/" + peer(1).to_string())});
  EXPECT_EQ(a.addrs(), std::vector<Multiaddr>{ma("/ip4/10.1.1.1/tcp/5")});
  EXPECT_EQ(a.next_deadline(), t0 + 1s);
  auto out = a.poll_send(t0 + 1s);
  ASSERT_THAT(out, SizeIs(2));
  EXPECT_THAT(std::get<TxtData>(decoded(out[1]).additionals[0].data).strings,
              ElementsAre("dnsaddr=/ip4/10.1.1.1/tcp/5/p2p/" + peer(1).to_string()));
}

TEST(Mdns, GoodbyeAndExpiry) {
  Mdns a(peer(1), addrs_of(1), Config{}, 1);
  Mdns b(peer(2), addrs_of(2), Config{}, 2);
  ASSERT_THAT(deliver(a, b, t0), SizeIs(1));
  EXPECT_TRUE(b.peers().contains(peer(1)));
  for (const auto& d : a.goodbye()) {
    EXPECT_EQ(decoded(d).answers[0].ttl, 0u);
    EXPECT_TRUE(b.on_datagram(d, t0 + 1s).empty());
  }
  EXPECT_FALSE(b.peers().contains(peer(1)));
  EXPECT_EQ(b.stats().goodbyes, 1u);

  // Expiry: 120 s after the last sighting.
  Mdns c(peer(3), addrs_of(3), Config{}, 3);
  ASSERT_THAT(deliver(c, b, t0), SizeIs(1));
  (void)b.poll_send(t0 + 119s);
  EXPECT_TRUE(b.peers().contains(peer(3)));
  (void)b.poll_send(t0 + 120s);
  EXPECT_FALSE(b.peers().contains(peer(3)));
  Mdns c_again(peer(3), addrs_of(3), Config{}, 4);
  auto back = b.on_datagram(c_again.poll_send(t0).at(1), t0 + 121s);
  ASSERT_THAT(back, SizeIs(1));
  EXPECT_TRUE(back[0].is_new);
}

TEST(Mdns, TableBoundStillReports) {
  Config cfg;
  cfg.max_peers = 2;
  Mdns b(peer(100), {}, cfg, 1);
  for (uint8_t i = 1; i <= 4; ++i) {
    Mdns x(peer(i), addrs_of(i), Config{}, i);
    auto found = deliver(x, b, t0);
    ASSERT_THAT(found, SizeIs(1));
    EXPECT_TRUE(found[0].is_new);
  }
  EXPECT_EQ(b.peers().size(), 2u);
}

TEST(Mdns, ClampsClaimedTtl) {
  Message m;
  m.flags = kFlagResponse;
  m.answers.push_back(
      ResourceRecord{name_from_string("p._p2p._udp.local"), RrType::txt, kClassIn, true, 0xffffffff,
                     TxtData{{"dnsaddr=/ip4/10.0.0.9/tcp/1/p2p/" + peer(9).to_string()}}});
  Mdns a(peer(1), {}, Config{}, 1);
  ASSERT_THAT(a.on_datagram(encode(m).value(), t0), SizeIs(1));
  EXPECT_EQ(a.peers().at(peer(9)).expires, t0 + 1h);
}

}  // namespace
}  // namespace p2pmq::mdns
