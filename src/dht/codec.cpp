#include "dht/codec.hpp"

#include <cstdio>
#include <ctime>
#include <string>
#include <utility>

#include "core/varint.hpp"
#include "libp2p/kad.pb.h"

namespace p2pmq::dht {
namespace {

namespace pb = ::libp2p::kad;

Bytes bytes_of(const std::string& s) {
  return Bytes(s.begin(), s.end());
}
std::string str_of(BytesView b) {
  return std::string(as_string(b));
}

tl::unexpected<Error> over(const char* limit, size_t value, size_t bound) {
  return fail(Errc::limit_exceeded, "kad message: " + std::to_string(value) + " over " + limit +
                                        " (" + std::to_string(bound) + ")");
}

template <class Peers>
Result<void> check_peers(const Peers& peers, const char* field, const KadLimits& limits) {
  if (size_t n = peers.size(); n > limits.max_peers)
    return fail(Errc::limit_exceeded, std::string("kad message: ") + std::to_string(n) + " " +
                                          field + " over max_peers (" +
                                          std::to_string(limits.max_peers) + ")");
  return {};
}

// Invalid ids are skipped (nullopt); so are addresses that are too long or do not decode.
template <class PbPeer>
std::optional<KadPeer> peer_from_pb(const PbPeer& p, const KadLimits& limits) {
  auto id = PeerId::from_bytes(as_bytes(p.id()));
  if (!id) return std::nullopt;
  KadPeer out{std::move(*id), {}, ConnectionType::not_connected};
  for (const auto& a : p.addrs()) {
    if (out.addrs.size() >= limits.max_addrs_per_peer) break;
    if (a.size() > limits.max_addr_size) continue;
    if (auto addr = Multiaddr::decode(as_bytes(a))) out.addrs.push_back(std::move(*addr));
  }
  int c = p.connection();
  if (c >= 0 && c <= 3) out.connection = static_cast<ConnectionType>(c);
  return out;
}

void peer_to_pb(const KadPeer& p, pb::Message::Peer& out) {
  out.set_id(str_of(p.id.bytes()));
  for (const auto& a : p.addrs) {
    Bytes b = a.bytes();
    out.add_addrs(str_of(b));
  }
  out.set_connection(static_cast<pb::Message::ConnectionType>(p.connection));
}

}  // namespace

const char* message_type_name(MessageType t) {
  switch (t) {
    case MessageType::put_value:
      return "PUT_VALUE";
    case MessageType::get_value:
      return "GET_VALUE";
    case MessageType::add_provider:
      return "ADD_PROVIDER";
    case MessageType::get_providers:
      return "GET_PROVIDERS";
    case MessageType::find_node:
      return "FIND_NODE";
    case MessageType::ping:
      return "PING";
  }
  return "UNKNOWN";
}

Result<KadMessage> decode(BytesView protobuf, const KadLimits& limits) {
  if (protobuf.size() > limits.max_message_size)
    return over("max_message_size", protobuf.size(), limits.max_message_size);
  pb::Message msg;
  if (!msg.ParseFromArray(protobuf.data(), static_cast<int>(protobuf.size())))
    return fail(Errc::invalid_input, "kad message: malformed protobuf");
  int type = msg.type();
  if (type < 0 || type > 5)
    return fail(Errc::invalid_input, "kad message: unknown type " + std::to_string(type));
  if (msg.key().size() > limits.max_key_size)
    return over("max_key_size", msg.key().size(), limits.max_key_size);
  if (auto ok = check_peers(msg.closerpeers(), "closerPeers", limits); !ok)
    return tl::unexpected(ok.error());
  if (auto ok = check_peers(msg.providerpeers(), "providerPeers", limits); !ok)
    return tl::unexpected(ok.error());

  KadMessage out;
  out.type = static_cast<MessageType>(type);
  out.key = bytes_of(msg.key());
  if (msg.has_record()) {
    const auto& r = msg.record();
    if (r.key().size() > limits.max_key_size)
      return over("max_key_size", r.key().size(), limits.max_key_size);
    if (r.value().size() > limits.max_value_size)
      return over("max_value_size", r.value().size(), limits.max_value_size);
    if (r.timereceived().size() > limits.max_time_received_size)
      return over("max_time_received_size", r.timereceived().size(), limits.max_time_received_size);
    out.record = KadRecord{bytes_of(r.key()), bytes_of(r.value()), r.timereceived()};
  }
  for (const auto& p : msg.closerpeers())
    if (auto peer = peer_from_pb(p, limits)) out.closer_peers.push_back(std::move(*peer));
  for (const auto& p : msg.providerpeers())
    if (auto peer = peer_from_pb(p, limits)) out.provider_peers.push_back(std::move(*peer));
  return out;
}

Bytes encode(const KadMessage& message) {
  pb::Message msg;
  msg.set_type(static_cast<pb::Message::MessageType>(message.type));
  msg.set_key(str_of(message.key));
  if (message.record) {
    auto* r = msg.mutable_record();
    r->set_key(str_of(message.record->key));
    r->set_value(str_of(message.record->value));
    r->set_timereceived(message.record->time_received);
  }
  for (const auto& p : message.closer_peers) peer_to_pb(p, *msg.add_closerpeers());
  for (const auto& p : message.provider_peers) peer_to_pb(p, *msg.add_providerpeers());
  Bytes out(msg.ByteSizeLong());
  msg.SerializeWithCachedSizesToArray(out.data());
  return out;
}

void append_framed(Bytes& out, const KadMessage& message) {
  Bytes body = encode(message);
  varint_append(out, body.size());
  append(out, body);
}

void MessageReader::feed(BytesView bytes) {
  if (error_) return;
  // Drop consumed bytes once they dominate, so the buffer stays about one frame long.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }
  append(buf_, bytes);
}

Result<std::optional<KadMessage>> MessageReader::next() {
  if (error_) return tl::unexpected(*error_);
  BytesView in = BytesView(buf_).subspan(pos_);
  auto prefix = varint_decode(in);
  if (!prefix) {
    error_ =
        Error{Errc::invalid_input, "kad message: bad length prefix: " + prefix.error().message};
    return tl::unexpected(*error_);
  }
  if (!*prefix) return std::nullopt;
  auto [len, used] = **prefix;
  // Refused before buffering the body: a peer cannot make us hold more than one frame.
  if (len > limits_.max_message_size) {
    error_ = over("max_message_size", len, limits_.max_message_size).value();
    return tl::unexpected(*error_);
  }
  if (in.size() - used < len) return std::nullopt;
  auto msg = decode(in.subspan(used, len), limits_);
  if (!msg) {
    error_ = msg.error();
    return tl::unexpected(*error_);
  }
  pos_ += used + len;
  if (pos_ == buf_.size()) buf_.clear(), pos_ = 0;
  return std::optional<KadMessage>(std::move(*msg));
}

std::string format_time_received(std::chrono::system_clock::time_point t) {
  auto since = t.time_since_epoch();
  auto secs = std::chrono::floor<std::chrono::seconds>(since);
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since - secs).count();
  std::time_t tt = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(buf, n);
  if (nanos > 0) {
    std::snprintf(buf, sizeof buf, ".%09lld", static_cast<long long>(nanos));
    std::string frac(buf);
    while (frac.back() == '0') frac.pop_back();
    out += frac;
  }
  return out + "Z";
}

}  // namespace p2pmq::dht
