#include "dht/source.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace p2pmq::dht {
namespace {

// The IP of the first component, as 4 bytes (IPv4, also when mapped into IPv6) or 16 bytes.
std::optional<Bytes> first_ip(const Multiaddr& addr) {
  if (addr.empty()) return std::nullopt;
  const auto& c = addr.components().front();
  if (c.protocol == Protocol::ip4 && c.value.size() == 4) return c.value;
  if (c.protocol != Protocol::ip6 || c.value.size() != 16) return std::nullopt;
  static constexpr std::array<uint8_t, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMapped.begin(), kMapped.end(), c.value.begin()))
    return Bytes(c.value.begin() + 12, c.value.end());
  return c.value;
}

AddrScope ip4_scope(const Bytes& b) {
  if (b[0] == 0) return AddrScope::unusable;    // this network
  if (b[0] >= 224) return AddrScope::unusable;  // multicast, 240/4
  if (b[0] == 127) return AddrScope::loopback;
  if (b[0] == 10) return AddrScope::private_net;
  if (b[0] == 172 && (b[1] & 0xf0) == 16) return AddrScope::private_net;  // 172.16/12
  if (b[0] == 192 && b[1] == 168) return AddrScope::private_net;
  if (b[0] == 100 && (b[1] & 0xc0) == 64) return AddrScope::private_net;  // 100.64/10
  if (b[0] == 169 && b[1] == 254) return AddrScope::private_net;          // link-local
  return AddrScope::public_net;
}

AddrScope ip6_scope(const Bytes& b) {
  bool zero_prefix = std::all_of(b.begin(), b.begin() + 15, [](uint8_t x) { return x == 0; });
  if (zero_prefix && b[15] == 0) return AddrScope::unusable;                 // ::
  if (zero_prefix && b[15] == 1) return AddrScope::loopback;                 // ::1
  if (b[0] == 0xff) return AddrScope::unusable;                              // multicast
  if ((b[0] & 0xfe) == 0xfc) return AddrScope::private_net;                  // fc00::/7
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return AddrScope::private_net;  // fe80::/10
  return AddrScope::public_net;
}

bool is_localhost_name(std::string_view name) {
  constexpr std::string_view suffix = ".localhost";
  return name == "localhost" ||
         (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix);
}

// IPv4 /8 blocks still assigned whole to one organisation (go-libp2p-kbucket's legacyClassA).
bool legacy_class_a(uint8_t first) {
  static constexpr std::array<uint8_t, 8> kBlocks{12, 17, 19, 38, 48, 53, 56, 73};
  return std::find(kBlocks.begin(), kBlocks.end(), first) != kBlocks.end();
}

std::string diversity_group(const Bytes& ip) {
  if (ip.size() == 4) {
    if (legacy_class_a(ip[0])) return "ip4/8:" + std::string(ip.begin(), ip.begin() + 1);
    return "ip4/16:" + std::string(ip.begin(), ip.begin() + 2);
  }
  return "ip6/32:" + std::string(ip.begin(), ip.begin() + 4);
}

}  // namespace

AddrScope addr_scope(const Multiaddr& addr) {
  if (auto ip = first_ip(addr)) return ip->size() == 4 ? ip4_scope(*ip) : ip6_scope(*ip);
  if (addr.empty()) return AddrScope::unusable;
  const auto& c = addr.components().front();
  switch (c.protocol) {
    case Protocol::dns:
    case Protocol::dns4:
    case Protocol::dns6:
    case Protocol::dnsaddr: {
      if (c.value.empty()) return AddrScope::unusable;
      return is_localhost_name(as_string(c.value)) ? AddrScope::loopback : AddrScope::public_net;
    }
    default:
      return AddrScope::unusable;
  }
}

bool may_announce(AddrScope source, AddrScope addr) {
  switch (addr) {
    case AddrScope::unusable:
      return false;
    case AddrScope::public_net:
      return true;
    case AddrScope::private_net:
      return source != AddrScope::public_net;
    case AddrScope::loopback:
      return source == AddrScope::loopback;
  }
  return false;
}

RequestSource request_source(const Multiaddr& remote) {
  auto ip = first_ip(remote);
  if (!ip) return {};
  RequestSource s;
  bool v4 = ip->size() == 4;
  s.ip = (v4 ? "ip4:" : "ip6:") + std::string(ip->begin(), ip->end());
  s.subnet = (v4 ? "ip4/24:" : "ip6/64:") + std::string(ip->begin(), ip->begin() + (v4 ? 3 : 8));
  s.scope = addr_scope(remote);
  if (s.scope == AddrScope::public_net) s.ip_group = diversity_group(*ip);
  return s;
}

}  // namespace p2pmq::dht
