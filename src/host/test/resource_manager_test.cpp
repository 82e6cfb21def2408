#include "host/resource_manager.hpp"

#include <gtest/gtest.h>

namespace p2pmq::host {
namespace {

ResourceLimits small_limits() {
  ResourceLimits l;
  l.system.memory = 1000;
  l.peer.memory = 300;
  l.connection.memory = 200;
  l.stream.memory = 100;
  return l;
}

std::unique_ptr<ConnectionScope> open_peer(ResourceManager& rm, const std::string& ip,
                                           const std::string& peer,
                                           Direction d = Direction::inbound) {
  auto c = rm.open_connection(d, ip);
  EXPECT_TRUE(c) << c.error().message;
  EXPECT_TRUE((*c)->set_peer(peer));
  return std::move(*c);
}

TEST(ResourceManager, MemoryIsCheckedAgainstEveryAncestorAndTakenFromAllOrNone) {
  ResourceManager rm(small_limits());
  auto c = open_peer(rm, "10.0.0.1", "A");
  auto s = rm.open_stream(*c, Direction::inbound);
  ASSERT_TRUE(s);
  EXPECT_TRUE((*s)->reserve_memory(100));
  auto refused = (*s)->reserve_memory(1);  // the stream scope is full
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("stream: memory limit 100"), std::string::npos);
  EXPECT_EQ(rm.system_usage().memory, 100u);
  EXPECT_EQ(rm.peer_usage("A")->memory, 100u);
  EXPECT_EQ(rm.counters().memory_refused, 1u);
  (*s)->release_memory(60);
  EXPECT_EQ(rm.system_usage().memory, 40u);
}

TEST(ResourceManager, OnePeerCannotTakeMoreThanItsPeerLimit) {
  ResourceManager rm(small_limits());
  auto c1 = open_peer(rm, "10.0.0.1", "A");
  auto c2 = open_peer(rm, "10.0.0.1", "A");
  EXPECT_TRUE(c1->reserve_memory(200));
  EXPECT_TRUE(c2->reserve_memory(100));
  auto refused = c2->reserve_memory(1);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("peer:A: memory limit 300"), std::string::npos);
  // Another peer still gets its share.
  auto other = open_peer(rm, "10.0.1.1", "B");
  EXPECT_TRUE(other->reserve_memory(200));
}

TEST(ResourceManager, ClosingAConnectionGivesBackEverything) {
  ResourceManager rm(small_limits());
  {
    auto c = open_peer(rm, "10.0.0.1", "A");
    ASSERT_TRUE(c->reserve_memory(50));
    auto s = rm.open_stream(*c, Direction::outbound);
    ASSERT_TRUE(s);
    ASSERT_TRUE((*s)->reserve_memory(70));
    ASSERT_TRUE((*s)->set_protocol("/p/1"));
    EXPECT_EQ(rm.system_usage().memory, 120u);
    EXPECT_EQ(rm.system_usage().streams_outbound, 1u);
    EXPECT_EQ(rm.system_usage().connections_inbound, 1u);
  }
  auto sys = rm.system_usage();
  EXPECT_EQ(sys.memory, 0u);
  EXPECT_EQ(sys.streams_outbound, 0u);
  EXPECT_EQ(sys.connections_inbound, 0u);
  EXPECT_EQ(sys.fds, 0u);
  EXPECT_FALSE(rm.peer_usage("A"));  // the peer's scope went with its last connection
  EXPECT_EQ(rm.usage().size(), 2u);  // system and transient: idle scopes are not listed
}

TEST(ResourceManager, PerPeerConnectionLimitRefusesTheThirdConnection) {
  ResourceLimits l;
  l.peer.connections = 2;
  ResourceManager rm(l);
  auto c1 = open_peer(rm, "10.0.0.1", "A");
  auto c2 = open_peer(rm, "10.0.0.2", "A", Direction::outbound);
  auto c3 = rm.open_connection(Direction::inbound, "10.0.0.3");
  ASSERT_TRUE(c3);
  auto r = (*c3)->set_peer("A");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("peer:A: connection limit 2"), std::string::npos);
}

TEST(ResourceManager, PerIpAndPerSubnetConnectionLimits) {
  ResourceLimits l;
  l.connections_per_ip = 2;
  l.connections_per_subnet4 = 3;
  l.handshakes_per_ip = 10;
  ResourceManager rm(l);
  auto a = rm.open_connection(Direction::inbound, "192.0.2.1");
  auto b = rm.open_connection(Direction::inbound, "192.0.2.1");
  ASSERT_TRUE(a && b);
  auto c = rm.open_connection(Direction::inbound, "192.0.2.1");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("ip 192.0.2.1"), std::string::npos);
  auto d = rm.open_connection(Direction::inbound, "192.0.2.2");
  ASSERT_TRUE(d);
  auto e = rm.open_connection(Direction::inbound, "192.0.2.3");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("subnet 192.0.2.0/24"), std::string::npos);
  EXPECT_TRUE(rm.open_connection(Direction::inbound, "192.0.3.1"));  // another /24
  a->reset();
  EXPECT_TRUE(rm.open_connection(Direction::inbound, "192.0.2.3"));  // a slot came back
}

TEST(ResourceManager, Ipv6SubnetsAreSlash64) {
  EXPECT_EQ(ResourceManager::subnet_of("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  EXPECT_EQ(ResourceManager::subnet_of("10.1.2.3"), "10.1.2.0/24");
  EXPECT_EQ(ResourceManager::subnet_of("127.0.0.1"), "");
  EXPECT_EQ(ResourceManager::subnet_of("::1"), "");
  EXPECT_TRUE(ResourceManager::is_loopback("::ffff:127.0.0.1"));
}

TEST(ResourceManager, LoopbackIsHeldToItsOwnPerIpLimit) {
  ResourceLimits l;
  l.connections_per_ip = 1;
  l.connections_per_loopback_ip = 3;
  l.handshakes_per_loopback_ip = 3;
  ResourceManager rm(l);
  std::vector<std::unique_ptr<ConnectionScope>> held;
  for (int i = 0; i < 3; ++i) {
    auto c = rm.open_connection(Direction::inbound, "127.0.0.1");
    ASSERT_TRUE(c);
    held.push_back(std::move(*c));
  }
  EXPECT_FALSE(rm.open_connection(Direction::inbound, "127.0.0.1"));
}

TEST(ResourceManager, PendingHandshakesPerIpLeaveRoomForOtherAddresses) {
  ResourceLimits l;
  l.handshakes_per_ip = 2;
  l.connections_per_ip = 100;
  ResourceManager rm(l);
  auto a = rm.open_connection(Direction::inbound, "198.51.100.7");
  auto b = rm.open_connection(Direction::inbound, "198.51.100.7");
  ASSERT_TRUE(a && b);
  auto c = rm.open_connection(Direction::inbound, "198.51.100.7");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("pending handshake limit 2"), std::string::npos);
  EXPECT_EQ(rm.counters().handshakes_refused, 1u);
  EXPECT_TRUE(rm.open_connection(Direction::inbound, "203.0.113.9"));
  // A finished handshake frees its slot but keeps the connection counted.
  ASSERT_TRUE((*a)->set_peer("A"));
  EXPECT_TRUE(rm.open_connection(Direction::inbound, "198.51.100.7"));
}

TEST(ResourceManager, TransientScopeBoundsAllPendingHandshakes) {
  ResourceLimits l;
  l.transient.connections_inbound = 2;
  ResourceManager rm(l);
  auto a = rm.open_connection(Direction::inbound, "192.0.2.1");
  auto b = rm.open_connection(Direction::inbound, "192.0.3.1");
  ASSERT_TRUE(a && b);
  auto c = rm.open_connection(Direction::inbound, "192.0.4.1");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("transient: inbound connection limit 2"), std::string::npos);
  EXPECT_EQ(rm.transient_usage().connections_inbound, 2u);
  ASSERT_TRUE((*a)->set_peer("A"));
  EXPECT_EQ(rm.transient_usage().connections_inbound, 1u);
  EXPECT_EQ(rm.system_usage().connections_inbound, 2u);
}

TEST(ResourceManager, NegotiatingStreamsArePerPeer) {
  ResourceLimits l;
  l.negotiations_per_peer = 2;
  ResourceManager rm(l);
  auto a = open_peer(rm, "10.0.0.1", "A");
  auto b = open_peer(rm, "10.0.1.1", "B");
  auto s1 = rm.open_stream(*a, Direction::inbound);
  auto s2 = rm.open_stream(*a, Direction::inbound);
  ASSERT_TRUE(s1 && s2);
  auto s3 = rm.open_stream(*a, Direction::inbound);
  ASSERT_FALSE(s3);
  EXPECT_EQ(rm.counters().negotiations_refused, 1u);
  EXPECT_TRUE(rm.open_stream(*b, Direction::inbound));  // B is not starved by A
  // A negotiated stream frees the slot.
  ASSERT_TRUE((*s1)->set_protocol("/p/1"));
  EXPECT_TRUE(rm.open_stream(*a, Direction::inbound));
}

TEST(ResourceManager, NegotiatedStreamsMoveFromTransientToProtocolAndService) {
  ResourceManager rm;
  rm.set_service("/meshsub/1.1.0", "pubsub");
  auto c = open_peer(rm, "10.0.0.1", "A");
  auto s = rm.open_stream(*c, Direction::inbound);
  ASSERT_TRUE(s);
  ASSERT_TRUE((*s)->reserve_memory(10));
  EXPECT_EQ(rm.transient_usage().streams_inbound, 1u);
  EXPECT_EQ(rm.transient_usage().memory, 10u);
  ASSERT_TRUE((*s)->set_protocol("/meshsub/1.1.0"));
  EXPECT_EQ(rm.transient_usage().streams_inbound, 0u);
  EXPECT_EQ(rm.transient_usage().memory, 0u);
  bool found_service = false;
  for (const auto& u : rm.usage())
    if (u.name == "service:pubsub") {
      found_service = true;
      EXPECT_EQ(u.streams_inbound, 1u);
      EXPECT_EQ(u.memory, 10u);
    }
  EXPECT_TRUE(found_service);
}

TEST(ResourceManager, StreamLimitPerPeerRefusesWithReason) {
  ResourceLimits l;
  l.peer.streams_inbound = 1;
  ResourceManager rm(l);
  auto c = open_peer(rm, "10.0.0.1", "A");
  auto s1 = rm.open_stream(*c, Direction::inbound);
  ASSERT_TRUE(s1);
  auto s2 = rm.open_stream(*c, Direction::inbound);
  ASSERT_FALSE(s2);
  EXPECT_NE(s2.error().message.find("peer:A: inbound stream limit 1"), std::string::npos);
  EXPECT_EQ(rm.counters().streams_refused, 1u);
  s1->reset();
  EXPECT_TRUE(rm.open_stream(*c, Direction::inbound));
}

}  // namespace
}  // namespace p2pmq::host
