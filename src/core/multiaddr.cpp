#include "core/multiaddr.hpp"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <stdexcept>

#include "core/cid.hpp"
#include "core/multibase.hpp"
#include "core/multihash.hpp"
#include "core/varint.hpp"

namespace p2pmq {
namespace {

enum class Kind { none, ip4, ip6, port, dns, p2p };

struct ProtoInfo {
  Protocol protocol;
  std::string_view name;
  Kind kind;
  size_t size;  // fixed value size in bytes; 0 for none and for variable-size values
};

constexpr std::array<ProtoInfo, 15> kProtocols{{
    {Protocol::ip4, "ip4", Kind::ip4, 4},
    {Protocol::tcp, "tcp", Kind::port, 2},
    {Protocol::udp, "udp", Kind::port, 2},
    {Protocol::ip6, "ip6", Kind::ip6, 16},
    {Protocol::dns, "dns", Kind::dns, 0},
    {Protocol::dns4, "dns4", Kind::dns, 0},
    {Protocol::dns6, "dns6", Kind::dns, 0},
    {Protocol::dnsaddr, "dnsaddr", Kind::dns, 0},
    {Protocol::p2p, "p2p", Kind::p2p, 0},
    {Protocol::p2p_circuit, "p2p-circuit", Kind::none, 0},
    {Protocol::quic, "quic", Kind::none, 0},
    {Protocol::quic_v1, "quic-v1", Kind::none, 0},
    {Protocol::ws, "ws", Kind::none, 0},
    {Protocol::wss, "wss", Kind::none, 0},
    {Protocol::tls, "tls", Kind::none, 0},
}};

bool has_value(const ProtoInfo& p) {
  return p.kind != Kind::none;
}
bool is_variable(const ProtoInfo& p) {
  return p.kind == Kind::dns || p.kind == Kind::p2p;
}

const ProtoInfo* find_code(uint64_t code) {
  for (const auto& p : kProtocols)
    if (static_cast<uint64_t>(p.protocol) == code) return &p;
  return nullptr;
}

const ProtoInfo* find_name(std::string_view name) {
  if (name == "ipfs") name = "p2p";  // the legacy name of the same code
  for (const auto& p : kProtocols)
    if (p.name == name) return &p;
  return nullptr;
}

const ProtoInfo& info(Protocol protocol) {
  const ProtoInfo* p = find_code(static_cast<uint64_t>(protocol));
  if (!p) throw std::invalid_argument("multiaddr: unknown protocol in component");
  return *p;
}

// Peer ids are identity or full sha2-256 multihashes (peer-ids spec). Anything else would
// print as base58 text starting with neither '1' nor "Qm", which no parser reads back.
Result<void> check_peer_multihash(BytesView value) {
  auto mh = Multihash::decode(value);
  if (!mh) return tl::unexpected(mh.error());
  if (mh->code == multihash::kSha2_256 && mh->digest.size() == 32) return {};
  if (mh->code == multihash::kIdentity && !mh->digest.empty()) return {};
  return fail(Errc::invalid_input, "p2p: peer id must be an identity or sha2-256 multihash");
}

Result<void> check_dns(BytesView value) {
  if (value.empty()) return fail(Errc::invalid_input, "empty dns name");
  if (value.size() > kMaxDnsNameSize) return fail(Errc::limit_exceeded, "dns name too long");
  // '/' would break the text form; NUL would break the resolver's C strings.
  for (uint8_t c : value)
    if (c == '/' || c == 0) return fail(Errc::invalid_input, "dns name with '/' or NUL");
  return {};
}

// Validates a binary value whose size already matches the protocol's fixed size.
Result<void> check_value(const ProtoInfo& p, BytesView value) {
  if (p.kind == Kind::dns) return check_dns(value);
  if (p.kind == Kind::p2p) return check_peer_multihash(value);
  return {};
}

Result<Bytes> parse_ip(int family, std::string_view text) {
  // inet_pton wants a C string; an embedded NUL would silently truncate it.
  if (text.find('\0') != std::string_view::npos || text.size() > 64)
    return fail(Errc::invalid_input, "invalid ip address");
  Bytes out(family == AF_INET ? 4 : 16);
  if (inet_pton(family, std::string(text).c_str(), out.data()) != 1)
    return fail(Errc::invalid_input, "invalid ip address '" + std::string(text) + "'");
  return out;
}

Result<Bytes> parse_port(std::string_view text) {
  unsigned port = 0;
  if (text.empty() || text.size() > 5) return fail(Errc::invalid_input, "invalid port");
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || end != text.data() + text.size() || port > 65535)
    return fail(Errc::invalid_input, "invalid port '" + std::string(text) + "'");
  return Bytes{static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)};
}

// Peer ids in text: legacy base58btc multihash ("Qm...", "1...") or a CIDv1 (libp2p-key).
Result<Bytes> parse_peer_id(std::string_view text) {
  Bytes mh;
  if (text.starts_with("1") || text.starts_with("Qm")) {
    auto decoded = base58btc_decode(text);
    if (!decoded) return tl::unexpected(decoded.error());
    mh = std::move(*decoded);
  } else {
    auto cid = Cid::parse(text);
    if (!cid) return tl::unexpected(cid.error());
    if (cid->codec != kCodecLibp2pKey)
      return fail(Errc::invalid_input, "p2p: CID codec is not libp2p-key");
    mh = cid->hash.encode();
  }
  if (auto ok = check_peer_multihash(mh); !ok) return tl::unexpected(ok.error());
  return mh;
}

Result<Bytes> value_from_text(const ProtoInfo& p, std::string_view text) {
  switch (p.kind) {
    case Kind::ip4:
      return parse_ip(AF_INET, text);
    case Kind::ip6:
      return parse_ip(AF_INET6, text);
    case Kind::port:
      return parse_port(text);
    case Kind::dns: {
      Bytes value = to_bytes(text);
      if (auto ok = check_dns(value); !ok) return tl::unexpected(ok.error());
      return value;
    }
    case Kind::p2p:
      return parse_peer_id(text);
    case Kind::none:
      break;
  }
  return Bytes{};
}

std::string value_to_text(const ProtoInfo& p, BytesView value) {
  // Values from push() are unchecked; never read past a short one.
  if (p.size && value.size() != p.size) return "invalid";
  switch (p.kind) {
    case Kind::ip4:
    case Kind::ip6: {
      char buf[INET6_ADDRSTRLEN] = {};
      const int family = p.kind == Kind::ip4 ? AF_INET : AF_INET6;
      if (!inet_ntop(family, value.data(), buf, sizeof buf)) return "";
      return buf;
    }
    case Kind::port:
      return std::to_string(value[0] << 8 | value[1]);
    case Kind::dns:
      return std::string(as_string(value));
    case Kind::p2p:
      return base58btc_encode(value);
    case Kind::none:
      break;
  }
  return "";
}

// Reads a complete varint at `pos`; running out of bytes is an error here.
Result<uint64_t> read_varint(BytesView in, size_t& pos) {
  auto r = varint_decode(in.subspan(pos));
  if (!r) return tl::unexpected(r.error());
  if (!r->has_value()) return fail(Errc::invalid_input, "truncated multiaddr");
  pos += (*r)->length;
  return (*r)->value;
}

// Splits "/a/b/c" into tokens; `pos` points at the next token's first character.
std::optional<std::string_view> next_token(std::string_view text, size_t& pos) {
  if (pos >= text.size()) return std::nullopt;
  const size_t slash = text.find('/', pos);
  const size_t end = slash == std::string_view::npos ? text.size() : slash;
  std::string_view token = text.substr(pos, end - pos);
  pos = end + 1;
  return token;
}

}  // namespace

Result<Multiaddr> Multiaddr::parse(std::string_view text) {
  if (text.size() > kMaxMultiaddrText) return fail(Errc::limit_exceeded, "multiaddr text too long");
  if (!text.starts_with('/')) return fail(Errc::invalid_input, "multiaddr must start with '/'");
  if (text.size() > 1 && text.ends_with('/')) text.remove_suffix(1);  // "/ip4/1.2.3.4/" is fine
  Multiaddr out;
  size_t pos = 1;
  while (auto name = next_token(text, pos)) {
    if (name->empty()) return fail(Errc::invalid_input, "empty multiaddr component");
    const ProtoInfo* p = find_name(*name);
    if (!p)
      return fail(Errc::unsupported, "unsupported multiaddr protocol '" + std::string(*name) + "'");
    if (out.components_.size() == kMaxMultiaddrComponents)
      return fail(Errc::limit_exceeded, "too many multiaddr components");
    MultiaddrComponent c{p->protocol, {}};
    if (has_value(*p)) {
      auto value_text = next_token(text, pos);
      if (!value_text)
        return fail(Errc::invalid_input, "missing value for /" + std::string(p->name));
      auto value = value_from_text(*p, *value_text);
      if (!value) return tl::unexpected(value.error());
      c.value = std::move(*value);
    }
    out.components_.push_back(std::move(c));
  }
  if (out.empty()) return fail(Errc::invalid_input, "empty multiaddr");
  return out;
}

Result<Multiaddr> Multiaddr::decode(BytesView bytes) {
  if (bytes.size() > kMaxMultiaddrBytes) return fail(Errc::limit_exceeded, "multiaddr too long");
  if (bytes.empty()) return fail(Errc::invalid_input, "empty multiaddr");
  Multiaddr out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (out.components_.size() == kMaxMultiaddrComponents)
      return fail(Errc::limit_exceeded, "too many multiaddr components");
    auto code = read_varint(bytes, pos);
    if (!code) return tl::unexpected(code.error());
    const ProtoInfo* p = find_code(*code);
    if (!p) return fail(Errc::unsupported, "unsupported multiaddr code " + std::to_string(*code));
    size_t size = p->size;
    if (is_variable(*p)) {
      auto length = read_varint(bytes, pos);
      if (!length) return tl::unexpected(length.error());
      if (*length > bytes.size()) return fail(Errc::invalid_input, "truncated multiaddr value");
      size = static_cast<size_t>(*length);
    }
    if (bytes.size() - pos < size) return fail(Errc::invalid_input, "truncated multiaddr value");
    BytesView value = bytes.subspan(pos, size);
    if (auto ok = check_value(*p, value); !ok) return tl::unexpected(ok.error());
    out.components_.push_back({p->protocol, Bytes(value.begin(), value.end())});
    pos += size;
  }
  return out;
}

std::string Multiaddr::to_string() const {
  std::string out;
  for (const auto& c : components_) {
    const ProtoInfo& p = info(c.protocol);
    out += '/';
    out += p.name;
    if (has_value(p)) {
      out += '/';
      out += value_to_text(p, c.value);
    }
  }
  return out;
}

Bytes Multiaddr::bytes() const {
  Bytes out;
  for (const auto& c : components_) {
    const ProtoInfo& p = info(c.protocol);
    varint_append(out, static_cast<uint64_t>(c.protocol));
    if (is_variable(p)) varint_append(out, c.value.size());
    append(out, c.value);
  }
  return out;
}

std::optional<Bytes> Multiaddr::p2p() const {
  for (auto it = components_.rbegin(); it != components_.rend(); ++it)
    if (it->protocol == Protocol::p2p) return it->value;
  return std::nullopt;
}

Multiaddr Multiaddr::without_p2p() const {
  Multiaddr out = *this;
  if (!out.empty() && out.components_.back().protocol == Protocol::p2p) out.components_.pop_back();
  return out;
}

Multiaddr Multiaddr::with_p2p(BytesView peer_id_multihash) const {
  Multiaddr out = without_p2p();
  out.push({Protocol::p2p, Bytes(peer_id_multihash.begin(), peer_id_multihash.end())});
  return out;
}

std::optional<Multiaddr::TcpTarget> Multiaddr::tcp_target() const {
  if (components_.size() < 2 || components_[1].protocol != Protocol::tcp) return std::nullopt;
  const auto& host = components_[0];
  int family = 0;
  bool is_dns = true;
  switch (host.protocol) {
    case Protocol::ip4:
      family = 4, is_dns = false;
      break;
    case Protocol::ip6:
      family = 6, is_dns = false;
      break;
    case Protocol::dns4:
      family = 4;
      break;
    case Protocol::dns6:
      family = 6;
      break;
    case Protocol::dns:
      break;
    default:
      return std::nullopt;
  }
  // Components from push() are unchecked: guard the sizes value_to_text relies on.
  const ProtoInfo& p = info(host.protocol);
  if ((p.size && host.value.size() != p.size) || components_[1].value.size() != 2)
    return std::nullopt;
  const auto port = static_cast<uint16_t>(components_[1].value[0] << 8 | components_[1].value[1]);
  return TcpTarget{value_to_text(p, host.value), port, is_dns, family};
}

Multiaddr Multiaddr::from_ip_tcp(const std::string& ip, uint16_t port) {
  const bool v6 = ip.find(':') != std::string::npos;
  auto addr = parse_ip(v6 ? AF_INET6 : AF_INET, ip);
  if (!addr) throw std::invalid_argument("from_ip_tcp: not an ip literal: " + ip);
  Multiaddr out;
  out.push({v6 ? Protocol::ip6 : Protocol::ip4, std::move(*addr)});
  out.push({Protocol::tcp, {static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)}});
  return out;
}

}  // namespace p2pmq
