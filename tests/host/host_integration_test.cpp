// In-process integration tests of host::Host: a peer sending bad bytes at any stage of the
// connection (multistream, Noise handshake, Noise transport, Yamux) loses only its own
// connection, with a log line naming the problem; the limits refuse what they should; shutdown
// closes every connection.
//
// Every test runs on one io_context on the test thread with real TCP on 127.0.0.1. The bad peer
// is a RawPeer speaking the protocols by hand; the good peers are ordinary Hosts.
#include <gtest/gtest.h>

#include <array>

#include "net/multistream.hpp"
#include "net/yamux.hpp"
#include "raw_peer.hpp"
#include "test_support.hpp"

namespace p2pmq::test {
namespace {

using host::Connection;
using host::ConnectionEvent;
using host::HostConfig;

// The log line for an inbound connection that failed before it was upgraded.
std::string inbound_failed(const RawPeer& raw, Errc code, const std::string& message) {
  return "inbound connection from " + raw.local_addr().to_string() +
         " failed: " + Error{code, message}.to_string();
}

// ---------------------------------------------------------------- before the handshake

TEST_F(HostTest, GarbageInsteadOfMultistreamHeaderClosesTheConnection) {
  Node& target = make_node();
  Node& old_peer = make_node();
  Node& newcomer = make_node();
  struct Case {
    Bytes bytes;
    Errc code;
    std::string error;
  };
  std::vector<Case> cases{
      {Bytes(64, 0xFF), Errc::invalid_input, "multistream: bad length prefix"},
      {Bytes{0xFF, 0x7F}, Errc::limit_exceeded, "multistream: message of 16383 bytes is too long"},
      {to_bytes("\x05hello"), Errc::invalid_input, "multistream: missing newline"},
      {multistream::encode_message("/not-multistream/1.0.0"), Errc::protocol_violation,
       "multistream: unexpected header '/not-multistream/1.0.0'"},
  };
  run([&]() -> Task<void> {
    auto healthy = co_await connect_and_ping(old_peer, target);
    CO_ASSERT_OK(healthy);
    for (const auto& c : cases) {
      SCOPED_TRACE(c.error);
      RawPeer raw(io.get_executor());
      auto connected = co_await raw.connect(target.endpoint());
      CO_ASSERT_OK(connected);
      auto sent = co_await raw.write_raw(c.bytes);
      CO_ASSERT_OK(sent);
      auto report = co_await raw.wait_closed(deadline());
      EXPECT_TRUE(report.closed) << "the host kept a connection that sent garbage";
      auto line = inbound_failed(raw, c.code, c.error);
      bool logged = co_await logs.wait_for(line, deadline());
      EXPECT_TRUE(logged) << "no log line containing '" << line << "'";
    }
    co_await expect_still_serving(target, old_peer, *healthy, newcomer);
  });
}

// ---------------------------------------------------------------- Noise handshake

TEST_F(HostTest, OversizedNoiseHandshakeFrameClosesTheConnection) {
  Node& target = make_node();
  Node& old_peer = make_node();
  Node& newcomer = make_node();
  run([&]() -> Task<void> {
    auto healthy = co_await connect_and_ping(old_peer, target);
    CO_ASSERT_OK(healthy);
    RawPeer raw(io.get_executor());
    auto connected = co_await raw.connect(target.endpoint());
    CO_ASSERT_OK(connected);
    auto security = co_await raw.select(std::string(noise::kProtocolId));
    CO_ASSERT_OK(security);
    // The largest frame the 2-byte length allows, full of garbage. As message 1 its payload is
    // unauthenticated, so the host may answer it; the garbage message 3 that follows is too
    // short to hold a static key. Either way the host must hang up.
    Bytes frame{0xFF, 0xFF};
    frame.resize(2 + noise::kMaxFrame, 0xA5);
    Bytes message3{0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF};
    frame.insert(frame.end(), message3.begin(), message3.end());
    (void)co_await raw.write_raw(frame);  // may fail once the host hung up
    auto report = co_await raw.wait_closed(deadline());
    EXPECT_TRUE(report.closed) << "the host kept a connection with a broken handshake";
    auto line = inbound_failed(raw, Errc::invalid_input, "noise: handshake message too short");
    bool logged = co_await logs.wait_for(line, deadline());
    EXPECT_TRUE(logged) << "no log line containing '" << line << "'";
    co_await expect_still_serving(target, old_peer, *healthy, newcomer);
  });
}

TEST_F(HostTest, TruncatedNoiseHandshakeFrameClosesTheConnection) {
  Node& target = make_node();
  Node& old_peer = make_node();
  Node& newcomer = make_node();
  run([&]() -> Task<void> {
    auto healthy = co_await connect_and_ping(old_peer, target);
    CO_ASSERT_OK(healthy);
    RawPeer raw(io.get_executor());
    auto connected = co_await raw.connect(target.endpoint());
    CO_ASSERT_OK(connected);
    auto security = co_await raw.select(std::string(noise::kProtocolId));
    CO_ASSERT_OK(security);
    Bytes frame{0x00, 0x40};  // announces 64 bytes, sends 16, then hangs up
    frame.resize(2 + 16, 0x11);
    auto sent = co_await raw.write_raw(frame);
    CO_ASSERT_OK(sent);
    raw.shutdown_send();
    auto report = co_await raw.wait_closed(deadline());
    EXPECT_TRUE(report.closed);
    auto line = inbound_failed(raw, Errc::io, "read: ");
    bool logged = co_await logs.wait_for(line, deadline());
    EXPECT_TRUE(logged) << "no log line containing '" << line << "'";
    co_await expect_still_serving(target, old_peer, *healthy, newcomer);
  });
}

TEST_F(HostTest, StalledHandshakeIsClosedByTheHandshakeTimeout) {
  HostConfig config;
  config.upgrade.timeout = std::chrono::milliseconds(1000);
  Node& target = make_node(config);
  Node& old_peer = make_node();
  Node& newcomer = make_node();
  run([&]() -> Task<void> {
    auto healthy = co_await connect_and_ping(old_peer, target);
    CO_ASSERT_OK(healthy);
    // One peer says nothing at all, one stops after choosing /noise.
    RawPeer silent(io.get_executor());
    RawPeer stalled(io.get_executor());
    auto c1 = co_await silent.connect(target.endpoint());
    CO_ASSERT_OK(c1);
    auto c2 = co_await stalled.connect(target.endpoint());
    CO_ASSERT_OK(c2);
    auto security = co_await stalled.select(std::string(noise::kProtocolId));
    CO_ASSERT_OK(security);
    std::array<RawPeer*, 2> peers{&silent, &stalled};
    for (RawPeer* raw : peers) {
      auto report = co_await raw->wait_closed(deadline());
      EXPECT_TRUE(report.closed) << "a stalled handshake was never closed";
      auto line = inbound_failed(*raw, Errc::timeout, "handshake timed out");
      bool logged = co_await logs.wait_for(line, deadline());
      EXPECT_TRUE(logged) << "no log line containing '" << line << "'";
    }
    co_await expect_still_serving(target, old_peer, *healthy, newcomer);
  });
}

// ---------------------------------------------------------------- after the upgrade

// Upgrades a RawPeer by hand, lets it misbehave, and checks that the host drops exactly that
// connection with "dropping: <reason>" (and `detail`), sending the GoAway `go_away` first when
// given, while an earlier connection and a newcomer are still served.
class AfterUpgradeTest : public HostTest {
 protected:
  using Misbehave = std::function<Task<Result<void>>(RawPeer&)>;

  void expect_dropped(Misbehave misbehave, std::string reason, std::optional<uint32_t> go_away,
                      std::string detail = {}) {
    Node& target = make_node();
    Node& old_peer = make_node();
    Node& newcomer = make_node();
    run([&]() -> Task<void> {
      auto healthy = co_await connect_and_ping(old_peer, target);
      CO_ASSERT_OK(healthy);
      RawPeer raw(io.get_executor());
      auto connected = co_await raw.connect(target.endpoint());
      CO_ASSERT_OK(connected);
      auto upgraded = co_await raw.upgrade(target.host.peer_id());
      CO_ASSERT_OK(upgraded);
      (void)co_await misbehave(raw);  // a write may fail once the host hung up
      auto report = co_await raw.wait_closed(deadline());
      EXPECT_TRUE(report.closed) << "the host kept the misbehaving connection";
      auto line = "(" + raw.local_addr().to_string() + "): dropping: " + reason;
      bool logged = co_await logs.wait_for(line, deadline());
      EXPECT_TRUE(logged) << "no log line containing '" << line << "'";
      if (!detail.empty()) {
        EXPECT_TRUE(logs.contains(detail)) << "log lacks '" << detail << "'";
      }
      if (go_away) {
        EXPECT_TRUE(report.has_go_away(*go_away))
            << "no GoAway(" << *go_away << ") before the close; host sent " << report.frames.size()
            << " frames, read ended with: " << report.how;
      }
      co_await expect_still_serving(target, old_peer, *healthy, newcomer);
    });
  }
};

TEST_F(AfterUpgradeTest, YamuxFrameForNeverOpenedStreamDropsTheConnection) {
  expect_dropped(
      [](RawPeer& raw) -> Task<Result<void>> {
        Bytes frame = yamux_data(1, 0, to_bytes("no SYN came first"));
        co_return co_await raw.write_secure(frame);
      },
      "yamux frame for a stream never opened", yamux::kGoAwayProtocolError);
}

TEST_F(AfterUpgradeTest, YamuxBadVersionDropsTheConnection) {
  expect_dropped(
      [](RawPeer& raw) -> Task<Result<void>> {
        Bytes frame = yamux_frame({1, ymx::kPing, ymx::kSyn, 0, 42});
        co_return co_await raw.write_secure(frame);
      },
      "bad yamux version", yamux::kGoAwayProtocolError);
}

TEST_F(AfterUpgradeTest, YamuxWindowOverflowDropsTheConnection) {
  expect_dropped(
      [](RawPeer& raw) -> Task<Result<void>> {
        // Open stream 1 on the hold protocol: the host accepts it and never reads past the
        // negotiation, so it never returns window. Then send 1 KiB more than the initial
        // window, all at once, as a peer ignoring flow control would.
        std::vector<std::string> protocols(1, std::string(kHoldProtocol));
        multistream::Dialer dialer(protocols);
        Bytes negotiation = dialer.start();
        Bytes plain = yamux_data(1, ymx::kSyn, negotiation);
        const size_t total = size_t{yamux::kDefaultWindow} + 1024;
        size_t sent = negotiation.size();
        while (sent < total) {
          size_t n = std::min<size_t>(16 * 1024, total - sent);
          Bytes chunk(n, 0x5A);
          append(plain, yamux_data(1, 0, chunk));
          sent += n;
        }
        co_return co_await raw.write_secure(plain);
      },
      "yamux data beyond the receive window", yamux::kGoAwayProtocolError);
}

TEST_F(AfterUpgradeTest, TamperedNoiseTransportFrameDropsTheConnection) {
  expect_dropped(
      [](RawPeer& raw) -> Task<Result<void>> {
        Bytes ping = yamux_frame({0, ymx::kPing, ymx::kSyn, 0, 7});
        Bytes wire;
        raw.session().encrypt(ping, wire);
        wire[2] ^= 0x01;  // first ciphertext byte, after the 2-byte length
        co_return co_await raw.write_raw(wire);
      },
      "noise: ", std::nullopt, "frame does not authenticate");
}

// ---------------------------------------------------------------- identity

TEST_F(HostTest, DialingTheWrongPeerIdFailsWithPeerIdMismatch) {
  Node& target = make_node();
  Node& dialer = make_node();
  run([&]() -> Task<void> {
    auto wrong = crypto::PeerId::from_public_key(crypto::PrivateKey::generate().public_key());
    auto addr = target.addr().with_p2p(wrong.bytes());
    auto conn = co_await dialer.host.connect(addr);
    CO_ASSERT(!conn);
    EXPECT_EQ(conn.error().code, Errc::peer_id_mismatch) << conn.error().to_string();
    const auto& message = conn.error().message;
    EXPECT_NE(message.find(wrong.to_string()), std::string::npos) << message;
    EXPECT_NE(message.find(target.host.peer_id().to_string()), std::string::npos) << message;
    EXPECT_EQ(dialer.host.connection_to(target.host.peer_id()), nullptr);
    // The refused dial leaves both sides usable: the right id connects.
    auto right = co_await connect_and_ping(dialer, target);
    EXPECT_TRUE(right) << right.error().to_string();
  });
}

// ---------------------------------------------------------------- advertised addresses

// H3 (wire review): a host listening on 0.0.0.0 tells peers (identify, DHT) this machine's
// addresses, never 0.0.0.0 itself, which a peer would then dial.
TEST_F(HostTest, UnspecifiedListenAddressIsAdvertisedAsTheMachinesAddresses) {
  HostConfig config;
  config.listen = {*Multiaddr::parse("/ip4/0.0.0.0/tcp/0")};
  host::Host any(io, crypto::PrivateKey::generate(), config);
  ASSERT_TRUE(any.start());
  auto port = any.listen_addrs().at(0).tcp_target().value().port;
  auto advertised = any.advertised_addrs();
  ASSERT_FALSE(advertised.empty());
  bool loopback = false;
  for (const auto& a : advertised) {
    auto t = a.tcp_target();
    ASSERT_TRUE(t) << a.to_string();
    EXPECT_NE(t->host, "0.0.0.0") << a.to_string();
    EXPECT_EQ(t->port, port) << a.to_string();
    loopback |= t->host == "127.0.0.1";
  }
  EXPECT_TRUE(loopback);  // every machine has lo up
  // A specific listen address is advertised as it is.
  Node& plain = make_node();
  EXPECT_EQ(plain.host.advertised_addrs(), plain.host.listen_addrs());
}

// ---------------------------------------------------------------- limits

TEST_F(HostTest, MaxInboundConnectionsRefusesTheExtraConnection) {
  HostConfig config;
  config.max_inbound_connections = 2;
  Node& target = make_node(config);
  Node& first = make_node();
  Node& second = make_node();
  Node& third = make_node();
  auto target_closed = std::make_shared<Counter>(io.get_executor());
  target.host.observe([target_closed](const std::shared_ptr<Connection>&, ConnectionEvent e) {
    if (e == ConnectionEvent::closed) target_closed->bump();
  });
  run([&]() -> Task<void> {
    auto c1 = co_await connect_and_ping(first, target);
    CO_ASSERT_OK(c1);
    auto c2 = co_await connect_and_ping(second, target);
    CO_ASSERT_OK(c2);

    RawPeer raw(io.get_executor());
    auto connected = co_await raw.connect(target.endpoint());
    CO_ASSERT_OK(connected);
    auto report = co_await raw.wait_closed(deadline());
    EXPECT_TRUE(report.closed) << "a third inbound connection was accepted";
    auto line = "refusing inbound connection from " + raw.local_addr().to_string() +
                ": max_inbound_connections (2) reached";
    bool logged = co_await logs.wait_for(line, deadline());
    EXPECT_TRUE(logged) << "no log line containing '" << line << "'";

    // A well-behaved host is refused the same way while the limit holds...
    auto refused = co_await third.host.connect(target.addr());
    EXPECT_FALSE(refused) << "a third inbound connection was upgraded";
    EXPECT_EQ(logs.count("max_inbound_connections (2) reached"), 2u);

    // ...the first two are untouched, and a freed slot is usable again.
    auto p1 = co_await ping_once(first, *c1);
    EXPECT_TRUE(p1) << p1.error().to_string();
    second.host.disconnect(target.host.peer_id(), "making room");
    bool freed = co_await target_closed->wait_for(1, deadline());
    CO_ASSERT(freed);
    auto c3 = co_await connect_and_ping(third, target);
    EXPECT_TRUE(c3) << c3.error().to_string();
  });
}

TEST_F(HostTest, MaxPendingDialsRefusesTheExtraDial) {
  HostConfig config;
  config.max_pending_dials = 1;
  Node& dialer = make_node(config);
  Node& target = make_node();
  run([&]() -> Task<void> {
    // A listener that accepts and then says nothing keeps the first dial pending.
    tcp::acceptor black_hole(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    auto hole = Multiaddr::from_ip_tcp("127.0.0.1", black_hole.local_endpoint().port());
    struct FirstDial {
      explicit FirstDial(asio::any_io_executor ex) : finished(ex) {}
      Counter finished;
      std::optional<Result<std::shared_ptr<Connection>>> result;
    };
    auto first = std::make_shared<FirstDial>(io.get_executor());
    asio::co_spawn(
        io,
        [&dialer, hole, first]() -> Task<void> {
          first->result = co_await dialer.host.connect(hole);
          first->finished.bump();
        },
        asio::detached);
    tcp::socket accepted = co_await black_hole.async_accept(asio::use_awaitable);

    auto second = co_await dialer.host.connect(target.addr());
    CO_ASSERT(!second);
    EXPECT_EQ(second.error().code, Errc::limit_exceeded) << second.error().to_string();
    auto line = "refusing dial to " + target.addr().to_string() + ": max_pending_dials (1) reached";
    EXPECT_TRUE(logs.contains(line)) << "no log line containing '" << line << "'";

    // Ending the first dial frees the slot.
    accepted.close();
    bool done = co_await first->finished.wait_for(1, deadline());
    CO_ASSERT(done);
    EXPECT_FALSE(*first->result) << "a dial to a silent listener succeeded";
    auto retry = co_await connect_and_ping(dialer, target);
    EXPECT_TRUE(retry) << retry.error().to_string();
  });
}

TEST_F(HostTest, YamuxMaxStreamsResetsExtraInboundStreamsAndKeepsTheConnection) {
  HostConfig config;
  config.upgrade.yamux.max_streams = 2;
  Node& target = make_node(config);
  Node& client = make_node();
  run([&]() -> Task<void> {
    auto conn = co_await client.host.connect(target.addr());
    CO_ASSERT_OK(conn);
    std::vector<std::string> hold(1, std::string(kHoldProtocol));
    std::vector<std::shared_ptr<host::Stream>> open;
    for (int i = 0; i < 2; ++i) {
      auto stream = co_await client.host.new_stream(*conn, hold);
      CO_ASSERT_OK(stream);
      open.push_back(*stream);
    }
    // The target holds two streams: a third is reset by the target's muxer.
    auto extra = co_await client.host.new_stream(*conn, hold);
    CO_ASSERT(!extra);
    EXPECT_EQ(extra.error().code, Errc::closed) << extra.error().to_string();
    EXPECT_EQ(target.held.size(), 2u);
    EXPECT_TRUE((*conn)->is_open());
    EXPECT_EQ(target.host.connections().size(), 1u);

    // Free a slot: the same connection carries a new stream (a ping) again.
    open.front()->reset();
    auto pinged = co_await ping_once(client, *conn);
    EXPECT_TRUE(pinged) << pinged.error().to_string();
  });
}

// ---------------------------------------------------------------- shutdown

TEST_F(HostTest, ShutdownClosesEveryConnection) {
  Node& target = make_node();
  Node& first = make_node();
  Node& second = make_node();
  auto remote_closed = std::make_shared<Counter>(io.get_executor());
  for (Node* peer : {&first, &second}) {
    peer->host.observe([remote_closed, id = target.host.peer_id()](
                           const std::shared_ptr<Connection>& conn, ConnectionEvent e) {
      if (e == ConnectionEvent::closed && conn->remote_peer() == id) remote_closed->bump();
    });
  }
  run([&]() -> Task<void> {
    auto c1 = co_await connect_and_ping(first, target);
    CO_ASSERT_OK(c1);
    auto c2 = co_await connect_and_ping(second, target);
    CO_ASSERT_OK(c2);
    EXPECT_EQ(target.host.connections().size(), 2u);
    auto endpoint = target.endpoint();

    co_await target.host.shutdown();
    EXPECT_TRUE(target.host.connections().empty());
    EXPECT_EQ(logs.count("did not close in time"), 0u);
    bool observed = co_await remote_closed->wait_for(2, deadline());
    EXPECT_TRUE(observed) << "remotes saw " << remote_closed->count() << " of 2 closes";
    EXPECT_FALSE((*c1)->is_open());
    EXPECT_FALSE((*c2)->is_open());
    EXPECT_EQ(first.host.connection_to(target.host.peer_id()), nullptr);

    // The listener is gone too.
    RawPeer late(io.get_executor());
    auto connected = co_await late.connect(endpoint);
    EXPECT_FALSE(connected) << "a shut-down host still accepts connections";
  });
}

TEST_F(HostTest, BlockedPeerIsDisconnectedRefusedAndNotDialed) {
  Node& a = make_node();
  Node& b = make_node();
  run([&]() -> Task<void> {
    auto conn = co_await connect_and_ping(a, b);
    CO_ASSERT_OK(conn);
    a.host.block(b.host.peer_id());
    EXPECT_TRUE(a.host.is_blocked(b.host.peer_id()));
    EXPECT_EQ(a.host.connection_to(b.host.peer_id()), nullptr);
    // a refuses to dial b, and closes b's inbound connection once the handshake names it.
    auto dial = co_await a.host.connect(b.addr());
    EXPECT_FALSE(dial);
    // b dials a (once b saw the old connection close): a closes it after the handshake.
    for (auto until = deadline(); Clock::now() < until;) {
      if (!b.host.connection_to(a.host.peer_id())) break;
      host::Signal tick(io.get_executor());
      co_await tick.wait_until(Clock::now() + std::chrono::milliseconds(10));
    }
    auto inbound = co_await b.host.connect(a.addr());
    (void)inbound;
    bool refused =
        co_await logs.wait_for("refusing inbound connection from blocked peer", deadline());
    EXPECT_TRUE(refused);
    EXPECT_EQ(a.host.connection_to(b.host.peer_id()), nullptr);
    // Unblocked: connections work again.
    a.host.unblock(b.host.peer_id());
    auto back = co_await connect_and_ping(a, b);
    EXPECT_TRUE(back.has_value());
  });
}

}  // namespace
}  // namespace p2pmq::test
