// The DHT IO adapter on real hosts over loopback: bootstrap through one bootstrapper, FIND_NODE
// of a peer we never connected to, provider records written by one node and found by another,
// client mode staying out of routing tables, and malformed requests dropping only their stream.
#include <gtest/gtest.h>

#include <memory>

#include "dht/io/dht_service.hpp"
#include "protocols/identify.hpp"
#include "test_support.hpp"

namespace p2pmq::test {
namespace {

struct DhtNode {
  DhtNode(Node& n, dht::Mode mode, std::vector<Multiaddr> bootstrap)
      : node(n), identify(n.host, "dht-test"), dht(n.host, identify, config(mode), bootstrap) {}
  static dht::DhtConfig config(dht::Mode mode) {
    dht::DhtConfig c;
    c.mode = mode;
    c.query.request_timeout = std::chrono::seconds(10);
    return c;
  }
  Node& node;
  protocols::Identify identify;
  dht::DhtService dht;
};

class DhtServiceTest : public HostTest {
 protected:
  DhtNode& make_dht(dht::Mode mode, std::vector<Multiaddr> bootstrap = {}) {
    auto& n = make_node();
    dhts.push_back(std::make_unique<DhtNode>(n, mode, std::move(bootstrap)));
    dhts.back()->dht.start();
    return *dhts.back();
  }
  void TearDown() override {
    for (auto& d : dhts) d->dht.stop();
    HostTest::TearDown();
    dhts.clear();
  }
  // Waits until every node finished its first bootstrap.
  Task<bool> bootstrapped(Clock::time_point limit) {
    host::Signal poll(io.get_executor());
    for (;;) {
      bool all = std::all_of(dhts.begin(), dhts.end(),
                             [](const auto& d) { return d->dht.bootstrapped(); });
      if (all) co_return true;
      if (Clock::now() >= limit) co_return false;
      co_await poll.wait_until(std::min(limit, Clock::now() + std::chrono::milliseconds(20)));
    }
  }
  std::vector<std::unique_ptr<DhtNode>> dhts;
};

TEST_F(DhtServiceTest, BootstrapFindPeerAndProviders) {
  auto& boot = make_dht(dht::Mode::bootstrapper);
  std::vector<Multiaddr> via{boot.node.addr()};
  std::vector<DhtNode*> servers;
  for (int i = 0; i < 8; ++i) servers.push_back(&make_dht(dht::Mode::server, via));
  auto& client = make_dht(dht::Mode::client, via);
  run([&]() -> Task<void> {
    bool ok = co_await bootstrapped(deadline());
    CO_ASSERT(ok);
    // A self lookup per server fills the tables beyond the bootstrapper.
    for (auto* s : servers) (void)co_await s->dht.lookup(s->node.host.peer_id().bytes());
    for (auto* s : servers) EXPECT_GE(s->dht.core().table().size(), 2u);
    // The client is in nobody's table: it never advertised the protocol.
    for (auto* s : servers)
      EXPECT_FALSE(s->dht.core().table().contains(client.node.host.peer_id()));
    EXPECT_FALSE(boot.dht.core().table().contains(client.node.host.peer_id()));

    // FIND_NODE of a server the client has not connected to.
    auto& target = *servers.back();
    auto found = co_await client.dht.find_peer(target.node.host.peer_id());
    CO_ASSERT(found.has_value());
    auto want = target.node.host.listen_addrs().front();
    EXPECT_NE(std::find(found->addrs.begin(), found->addrs.end(), want), found->addrs.end());

    // Provider records: server 0 provides a topic key, the client finds it.
    Bytes key = dht::topic_key("news");
    size_t sent = co_await servers[0]->dht.provide(key);
    EXPECT_GT(sent, 0u);
    auto providers = co_await client.dht.find_providers(key, 1);
    CO_ASSERT(!providers.empty());
    EXPECT_EQ(providers.front().id, servers[0]->node.host.peer_id());
    EXPECT_FALSE(providers.front().addrs.empty());
    // A client can provide too (it sends ADD_PROVIDER; servers store it).
    Bytes other = dht::topic_key("other");
    sent = co_await client.dht.provide(other);
    EXPECT_GT(sent, 0u);
    providers = co_await servers[3]->dht.find_providers(other, 1);
    CO_ASSERT(!providers.empty());
    EXPECT_EQ(providers.front().id, client.node.host.peer_id());
  });
}

TEST_F(DhtServiceTest, MalformedRequestResetsOnlyThatStream) {
  auto& server = make_dht(dht::Mode::server);
  auto& peer = make_dht(dht::Mode::server);
  run([&]() -> Task<void> {
    auto conn = co_await peer.node.host.connect(server.node.addr());
    CO_ASSERT_OK(conn);
    const std::vector<std::string> protocols{server.dht.core().protocol_id()};
    for (const Bytes& garbage :
         {Bytes{0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, Bytes{0xFF, 0xFF, 0xFF, 0xFF, 0x0F}}) {
      auto stream = co_await peer.node.host.new_stream(*conn, protocols);
      CO_ASSERT_OK(stream);
      auto w = co_await (*stream)->write(garbage);
      CO_ASSERT_OK(w);
      Bytes buf(64);
      auto n = co_await (*stream)->read_some(buf);
      EXPECT_FALSE(n.has_value()) << "the stream should be reset";
    }
    EXPECT_EQ(server.dht.stats().requests_refused, 2u);
    // The connection and the service still work.
    auto answer = co_await peer.dht.lookup(server.node.host.peer_id().bytes());
    EXPECT_EQ(answer.closest.size(), 1u);
    EXPECT_TRUE((*conn)->is_open());
  });
}

}  // namespace
}  // namespace p2pmq::test
