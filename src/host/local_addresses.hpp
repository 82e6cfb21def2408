#pragma once
// This machine's addresses (getifaddrs, at the IO edge) and what to advertise for the host's
// listen addresses: an agent listening on 0.0.0.0 or :: must tell peers (identify, DHT records
// and answers, mDNS) addresses they can dial, as go-libp2p does, never the unspecified one.
#include <string>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "core/multiaddr.hpp"

namespace p2pmq::host {

// One address of an interface that is up.
struct LocalAddress {
  std::string interface;
  boost::asio::ip::address address;
  bool loopback = false;
  bool multicast = false;
};
std::vector<LocalAddress> local_addresses();  // getifaddrs(3)

// What to announce for these listen addresses: an unspecified IP (0.0.0.0, ::) becomes every
// local address of its family (IPv6 link-local left out: a multiaddr carries no zone); loopback
// addresses go last; duplicates are dropped.
std::vector<Multiaddr> announce_addrs(const std::vector<Multiaddr>& listen,
                                      const std::vector<LocalAddress>& locals);

}  // namespace p2pmq::host
