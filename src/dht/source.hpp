#pragma once
// Where a request comes from, and which addresses a peer may announce from there (provider
// records, hostile-peers finding 11). Sans-IO: it reads multiaddrs, not sockets.
#include <string>

#include "core/multiaddr.hpp"

namespace p2pmq::dht {

enum class AddrScope {
  unusable,     // unspecified, this-network (0/8), multicast, broadcast, not ip4/ip6/dns
  loopback,     // 127/8, ::1, a "localhost" name
  private_net,  // RFC 1918, CGNAT 100.64/10, link-local, fc00::/7, fe80::/10
  public_net,   // everything else, DNS names included
};

// The scope of the address's first component (IPv4-mapped IPv6 counts as IPv4).
AddrScope addr_scope(const Multiaddr& addr);

// go-libp2p identify's filter, applied to what a peer announces: from loopback it may announce
// any usable address, from a private network anything but loopback, from a public address
// only public ones. An unusable address is never accepted.
bool may_announce(AddrScope source, AddrScope addr);

// The remote end of the connection a request came on: the keys per-IP and per-subnet limits
// count under (the IP, and its /24 or /64), and its scope. Default-constructed: not from the
// network (a local call, a unit test, the simulator): counted under no IP, and its addresses are
// only checked for usability.
struct RequestSource {
  std::string ip;      // empty: unknown
  std::string subnet;  // empty: unknown
  AddrScope scope = AddrScope::loopback;
  // The routing table's diversity group (go-libp2p-kbucket peerdiversity.IPGroupKey): a public
  // IPv4's /16, or its /8 for the legacy class-A blocks one organisation holds; a public IPv6's
  // /32 (go groups by ASN, with no ASN table we take the allocation prefix). Empty for loopback
  // and private sources: the limits guard the public DHT, a LAN or a devnet is not limited.
  std::string ip_group;

  bool known() const { return !ip.empty(); }
};

// From the remote address of a connection (/ip4/.../tcp/...): unknown (default) when it holds no
// IP.
RequestSource request_source(const Multiaddr& remote);

}  // namespace p2pmq::dht
