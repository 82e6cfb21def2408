#pragma once
// Multiaddr (multiformats/multiaddr), binary and text forms, for the protocols p2pmq
// speaks. Codes follow multiaddr's protocols.csv; anything else is refused as unsupported.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace p2pmq {

enum class Protocol : uint32_t {
  ip4 = 4,
  tcp = 6,
  dns = 53,
  dns4 = 54,
  dns6 = 55,
  dnsaddr = 56,
  ip6 = 41,
  udp = 273,
  p2p_circuit = 290,
  p2p = 421,  // text alias "ipfs" accepted on parse
  tls = 448,
  quic = 460,
  quic_v1 = 461,  // 0x01cd
  ws = 477,
  wss = 478,
};

// Bounds on untrusted multiaddrs. The text bound leaves room for the text of any binary
// multiaddr within kMaxMultiaddrBytes (ip6 and tcp components grow 2.6-3.3 times as text), so
// whatever we decode we can also print and parse back (found by fuzz_multiaddr).
inline constexpr size_t kMaxMultiaddrBytes = 1024;
inline constexpr size_t kMaxMultiaddrText = 4 * kMaxMultiaddrBytes;
inline constexpr size_t kMaxMultiaddrComponents = 32;
inline constexpr size_t kMaxDnsNameSize = 255;

struct MultiaddrComponent {
  Protocol protocol;
  Bytes value;  // binary value without its length prefix; empty for valueless protocols
  bool operator==(const MultiaddrComponent&) const = default;
};

class Multiaddr {
 public:
  static Result<Multiaddr> parse(std::string_view text);
  static Result<Multiaddr> decode(BytesView bytes);
  std::string to_string() const;
  Bytes bytes() const;

  const std::vector<MultiaddrComponent>& components() const { return components_; }
  bool empty() const { return components_.empty(); }
  // Not validated: the caller builds the value (parse/decode validate what peers send).
  void push(MultiaddrComponent c) { components_.push_back(std::move(c)); }

  // The value (peer id multihash) of the last /p2p component anywhere in the address.
  std::optional<Bytes> p2p() const;
  // This address without a trailing /p2p component (unchanged when it does not end in one).
  Multiaddr without_p2p() const;
  // without_p2p() plus /p2p/<peer>.
  Multiaddr with_p2p(BytesView peer_id_multihash) const;

  struct TcpTarget {
    std::string host;  // ip literal or dns name
    uint16_t port;
    bool is_dns;
    int family;  // 4 (ip4, dns4), 6 (ip6, dns6), 0 (dns: either)
  };
  // Set when the first two components are ip4|ip6|dns|dns4|dns6 then tcp; the rest is ignored.
  std::optional<TcpTarget> tcp_target() const;

  // `ip` is an IPv4 or IPv6 literal; anything else is a programmer error (throws
  // std::invalid_argument). Use parse() for untrusted text.
  static Multiaddr from_ip_tcp(const std::string& ip, uint16_t port);

  bool operator==(const Multiaddr&) const = default;

 private:
  std::vector<MultiaddrComponent> components_;
};

}  // namespace p2pmq
