#include "host/local_addresses.hpp"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <iterator>

namespace p2pmq::host {

namespace asio = boost::asio;

namespace {

bool is_loopback(const Multiaddr& a) {
  auto t = a.tcp_target();
  if (!t || t->is_dns) return false;
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(t->host, ec);
  return !ec && ip.is_loopback();
}

}  // namespace

std::vector<LocalAddress> local_addresses() {
  std::vector<LocalAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_UP) == 0) continue;
    LocalAddress la;
    la.interface = i->ifa_name ? i->ifa_name : "";
    la.loopback = (i->ifa_flags & IFF_LOOPBACK) != 0;
    la.multicast = (i->ifa_flags & IFF_MULTICAST) != 0;
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      la.address = asio::ip::address_v4(ntohl(sin->sin_addr.s_addr));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      asio::ip::address_v6::bytes_type bytes;
      std::copy(std::begin(sin6->sin6_addr.s6_addr), std::end(sin6->sin6_addr.s6_addr),
                bytes.begin());
      la.address = asio::ip::address_v6(bytes);
    } else {
      continue;
    }
    out.push_back(std::move(la));
  }
  freeifaddrs(list);
  return out;
}

std::vector<Multiaddr> announce_addrs(const std::vector<Multiaddr>& listen,
                                      const std::vector<LocalAddress>& locals) {
  std::vector<Multiaddr> all;
  for (const auto& a : listen) {
    auto bare = a.without_p2p();
    auto t = bare.tcp_target();
    boost::system::error_code ec;
    auto ip = t && !t->is_dns ? asio::ip::make_address(t->host, ec) : asio::ip::address();
    if (!t || t->is_dns || ec || !ip.is_unspecified()) {
      all.push_back(std::move(bare));
      continue;
    }
    for (const auto& l : locals) {
      if (l.address.is_v4() != ip.is_v4() || l.address.is_unspecified()) continue;
      if (l.address.is_v6() &&
          (l.address.to_v6().is_link_local() || l.address.to_v6().is_v4_mapped()))
        continue;
      auto m = Multiaddr::from_ip_tcp(l.address.to_string(), t->port);
      // Whatever followed ip/tcp (nothing, for this host's listeners).
      for (size_t i = 2; i < bare.components().size(); ++i) m.push(bare.components()[i]);
      all.push_back(std::move(m));
    }
  }
  std::vector<Multiaddr> out;
  for (bool loopback : {false, true})
    for (const auto& a : all)
      if (is_loopback(a) == loopback && std::find(out.begin(), out.end(), a) == out.end())
        out.push_back(a);
  return out;
}

}  // namespace p2pmq::host
