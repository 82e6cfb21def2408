// MdnsService over real multicast: two hosts in one process find each other and connect.
//
// Multicast must never reach the real network, so the process first moves into a network
// namespace of its own (unshare(CLONE_NEWNET), or CLONE_NEWUSER|CLONE_NEWNET unprivileged),
// where the only interface is a loopback brought up with multicast on and a route for
// 224.0.0.0/4. Where namespaces are not permitted the tests skip. The move is for the whole
// process and has no way back: this binary holds nothing else.
#include "mdns/io/mdns_service.hpp"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <net/route.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>

namespace p2pmq::mdns {
namespace {

namespace asio = host::asio;
using namespace std::chrono_literals;
using ::testing::Contains;

// Empty once the process runs in a private network namespace; otherwise why it cannot.
const std::string& private_network() {
  static const std::string reason = []() -> std::string {
    if (unshare(CLONE_NEWNET) != 0) {
      const int first = errno;
      if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
        return std::string("network namespaces not permitted here (unshare: ") +
               std::strerror(first) + ", with a user namespace: " + std::strerror(errno) +
               "); these tests multicast, so they only run inside one";
    }
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return std::string("socket: ") + std::strerror(errno);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0 ||
        (ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_MULTICAST),
         ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)) {
      std::string why = std::string("cannot bring lo up in the namespace: ") + std::strerror(errno);
      ::close(fd);
      return why;
    }
    // 224.0.0.0/4 via lo, for sockets that leave the multicast interface to the routing table.
    rtentry rt{};
    auto* dst = reinterpret_cast<sockaddr_in*>(&rt.rt_dst);
    dst->sin_family = AF_INET;
    dst->sin_addr.s_addr = inet_addr("224.0.0.0");
    auto* mask = reinterpret_cast<sockaddr_in*>(&rt.rt_genmask);
    mask->sin_family = AF_INET;
    mask->sin_addr.s_addr = inet_addr("240.0.0.0");
    rt.rt_flags = RTF_UP;
    char dev[] = "lo";
    rt.rt_dev = dev;
    if (ioctl(fd, SIOCADDRT, &rt) != 0 && errno != EEXIST) {
      std::string why = std::string("cannot add the multicast route: ") + std::strerror(errno);
      ::close(fd);
      return why;
    }
    ::close(fd);
    return {};
  }();
  return reason;
}

Multiaddr ma(std::string_view text) {
  return Multiaddr::parse(text).value();
}

class MdnsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!private_network().empty()) GTEST_SKIP() << private_network();
  }

  host::Host& make_host(std::string_view listen) {
    host::HostConfig cfg;
    cfg.listen.push_back(ma(listen));
    hosts.push_back(std::make_unique<host::Host>(io, crypto::PrivateKey::generate(), cfg));
    auto started = hosts.back()->start();
    EXPECT_TRUE(started) << started.error().to_string();
    return *hosts.back();
  }

  MdnsService& make_service(host::Host& h, MdnsConfig cfg = {}) {
    services.push_back(std::make_unique<MdnsService>(h, std::move(cfg)));
    return *services.back();
  }

  // Runs the io_context until `done` holds; false after `limit`. No test asserts a timing.
  bool run_until(const std::function<bool()>& done, std::chrono::seconds limit = 20s) {
    const auto end = host::Clock::now() + limit;
    while (!done()) {
      if (host::Clock::now() >= end) return false;
      io.restart();
      io.run_for(20ms);
    }
    return true;
  }

  void TearDown() override {
    services.clear();  // stop: goodbyes, sockets closed
    size_t closed = 0;
    for (auto& h : hosts)
      asio::co_spawn(
          io, [hp = h.get()]() -> host::Task<void> { co_await hp->shutdown(); },
          [&closed](std::exception_ptr) { ++closed; });
    EXPECT_TRUE(run_until([&] { return closed == hosts.size(); }));
    hosts.clear();
  }

  asio::io_context io;
  std::vector<std::unique_ptr<host::Host>> hosts;
  std::vector<std::unique_ptr<MdnsService>> services;
};

struct Seen {
  std::vector<std::pair<PeerId, std::vector<Multiaddr>>> peers;
  bool saw(const PeerId& p) const {
    return std::any_of(peers.begin(), peers.end(), [&](const auto& e) { return e.first == p; });
  }
};

TEST_F(MdnsServiceTest, TwoHostsFindEachOtherAndConnect) {
  auto& h1 = make_host("/ip4/0.0.0.0/tcp/0");  // announced as 127.0.0.1, the only address
  auto& h2 = make_host("/ip4/127.0.0.1/tcp/0");
  auto& s1 = make_service(h1);
  auto& s2 = make_service(h2);
  Seen seen1, seen2;
  s1.on_peer([&](PeerId p, std::vector<Multiaddr> a) { seen1.peers.emplace_back(p, a); });
  s2.on_peer([&](PeerId p, std::vector<Multiaddr> a) { seen2.peers.emplace_back(p, a); });
  ASSERT_TRUE(s1.start());
  ASSERT_TRUE(s2.start());
  EXPECT_TRUE(s1.running());

  ASSERT_TRUE(run_until([&] {
    return seen1.saw(h2.peer_id()) && seen2.saw(h1.peer_id()) && h1.connection_to(h2.peer_id()) &&
           h2.connection_to(h1.peer_id());
  })) << "s1 saw "
      << seen1.peers.size() << ", s2 saw " << seen2.peers.size() << "; s1 sent " << s1.stats().sent
      << " received " << s1.stats().received;

  // Each announced its listen address (0.0.0.0 became the loopback address).
  const auto port1 = h1.listen_addrs().front().tcp_target()->port;
  const auto addr1 = Multiaddr::from_ip_tcp("127.0.0.1", port1);
  EXPECT_THAT(seen2.peers.front().second, Contains(addr1));
  EXPECT_THAT(seen1.peers.front().second, Contains(h2.listen_addrs().front()));
  EXPECT_THAT(h1.peer_store()[h2.peer_id()].addrs, Contains(h2.listen_addrs().front()));
  EXPECT_THAT(h2.peer_store()[h1.peer_id()].addrs, Contains(addr1));
  // Each heard itself (multicast loopback) and ignored it; nothing was malformed.
  EXPECT_GE(s1.core_stats().self, 1u);
  EXPECT_EQ(s1.core_stats().malformed + s2.core_stats().malformed, 0u);
  EXPECT_EQ(seen1.peers.size(), 1u);  // reported once, not at every answer
}

TEST_F(MdnsServiceTest, DiscoversWithoutDialingWhenAskedTo) {
  auto& h1 = make_host("/ip4/127.0.0.1/tcp/0");
  auto& h2 = make_host("/ip4/127.0.0.1/tcp/0");
  MdnsConfig quiet;
  quiet.dial = false;
  quiet.add_to_peer_store = false;
  auto& s1 = make_service(h1, quiet);
  auto& s2 = make_service(h2, quiet);
  Seen seen1;
  s1.on_peer([&](PeerId p, std::vector<Multiaddr> a) { seen1.peers.emplace_back(p, a); });
  ASSERT_TRUE(s1.start());
  ASSERT_TRUE(s2.start());
  ASSERT_TRUE(run_until([&] { return seen1.saw(h2.peer_id()); }));
  ASSERT_TRUE(run_until([&] { return s2.core()->peers().contains(h1.peer_id()); }));
  EXPECT_FALSE(h1.connection_to(h2.peer_id()));
  EXPECT_FALSE(h1.peer_store().contains(h2.peer_id()));
  EXPECT_EQ(s1.stats().dials + s2.stats().dials, 0u);
}

TEST_F(MdnsServiceTest, StopWithdrawsAndGarbageIsHarmless) {
  auto& h1 = make_host("/ip4/127.0.0.1/tcp/0");
  auto& h2 = make_host("/ip4/127.0.0.1/tcp/0");
  MdnsConfig cfg;
  cfg.dial = false;
  cfg.interface_address = "127.0.0.1";
  auto& s1 = make_service(h1, cfg);
  auto& s2 = make_service(h2, cfg);
  ASSERT_TRUE(s1.start());
  ASSERT_TRUE(s2.start());
  ASSERT_TRUE(run_until([&] { return s1.core()->peers().contains(h2.peer_id()); }));

  // Anyone on the link may send anything to the group.
  asio::ip::udp::socket raw(io, asio::ip::udp::v4());
  raw.set_option(asio::ip::multicast::outbound_interface(asio::ip::make_address_v4("127.0.0.1")));
  const asio::ip::udp::endpoint group(asio::ip::make_address_v4("224.0.0.251"), 5353);
  const uint8_t loop[] = {0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 'a', 0xc0, 12};
  const uint8_t counts[] = {0, 0, 0x84, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
  raw.send_to(asio::buffer(loop), group);
  raw.send_to(asio::buffer(counts), group);
  raw.send_to(asio::buffer("not dns at all"), group);
  ASSERT_TRUE(run_until([&] { return s1.core_stats().malformed >= 3; }));
  EXPECT_TRUE(s1.running());

  // s2 leaves: its goodbye removes it from s1's table at once.
  s2.stop();
  EXPECT_FALSE(s2.running());
  ASSERT_TRUE(run_until([&] { return !s1.core()->peers().contains(h2.peer_id()); }));
  EXPECT_GE(s1.core_stats().goodbyes, 1u);

  // And it can come back.
  ASSERT_TRUE(s2.start());
  ASSERT_TRUE(run_until([&] { return s1.core()->peers().contains(h2.peer_id()); }));
}

TEST_F(MdnsServiceTest, DisabledAndBadInterface) {
  auto& h = make_host("/ip4/127.0.0.1/tcp/0");
  MdnsConfig off;
  off.enabled = false;
  auto& s = make_service(h, off);
  EXPECT_TRUE(s.start());
  EXPECT_FALSE(s.running());
  EXPECT_EQ(s.core(), nullptr);
  MdnsConfig bad;
  bad.interface_address = "eth0";
  auto r = make_service(h, bad).start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_input);
  MdnsConfig absent;
  absent.interface_address = "192.0.2.1";  // no such interface in the namespace
  r = make_service(h, absent).start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::io);
}

// ---- Pure helpers (no namespace needed) --------------------------------------------------------

TEST(MdnsAnnounceAddrs, ExpandsUnspecifiedAddressesLoopbackLast) {
  std::vector<LocalAddress> locals = {
      {"lo", asio::ip::make_address("127.0.0.1"), true, false},
      {"eth0", asio::ip::make_address("192.168.1.20"), false, true},
      {"lo", asio::ip::make_address("::1"), true, false},
      {"eth0", asio::ip::make_address("fe80::1"), false, true},
      {"eth0", asio::ip::make_address("2001:db8::20"), false, true},
  };
  const auto someone =
      PeerId::from_public_key(crypto::PrivateKey::generate().public_key()).to_string();
  auto out = announce_addrs({ma("/ip4/0.0.0.0/tcp/4001"), ma("/ip6/::/tcp/4002"),
                             ma("/ip4/10.0.0.1/tcp/4003/p2p/" + someone),
                             ma("/dns4/node.local/tcp/4004"), ma("/ip4/192.168.1.20/tcp/4001")},
                            locals);
  EXPECT_EQ(out, (std::vector<Multiaddr>{
                     ma("/ip4/192.168.1.20/tcp/4001"), ma("/ip6/2001:db8::20/tcp/4002"),
                     ma("/ip4/10.0.0.1/tcp/4003"), ma("/dns4/node.local/tcp/4004"),
                     ma("/ip4/127.0.0.1/tcp/4001"), ma("/ip6/::1/tcp/4002")}));
}

TEST(MdnsAnnounceAddrs, LocalAddressesListsLoopback) {
  bool loopback = false;
  for (const auto& l : local_addresses()) loopback |= l.loopback && l.address.is_loopback();
  EXPECT_TRUE(loopback);
}

}  // namespace
}  // namespace p2pmq::mdns
