#pragma once
// The kad-dht wire codec (proto/libp2p/kad.proto): Message protobuf <-> plain structs, and the
// uvarint length-prefixed framing used on /…/kad/1.0.0 streams, with named limits.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/multiaddr.hpp"
#include "core/result.hpp"
#include "dht/types.hpp"

namespace p2pmq::dht {

enum class MessageType : int32_t {
  put_value = 0,
  get_value = 1,
  add_provider = 2,
  get_providers = 3,
  find_node = 4,
  ping = 5,
};
const char* message_type_name(MessageType t);

enum class ConnectionType : int32_t {
  not_connected = 0,
  connected = 1,
  can_connect = 2,
  cannot_connect = 3,
};

struct KadRecord {
  Bytes key;
  Bytes value;
  std::string time_received;  // RFC 3339, set by the receiver; may be empty
  bool operator==(const KadRecord&) const = default;
};

// A record's timeReceived as go-libp2p-kad-dht writes it: RFC 3339 in UTC with nanoseconds,
// trailing zeros dropped (Go's time.RFC3339Nano), e.g. "2026-12-03T13:59:15.1234Z".
std::string format_time_received(std::chrono::system_clock::time_point t);

struct KadPeer {
  PeerId id;
  std::vector<Multiaddr> addrs;
  ConnectionType connection = ConnectionType::not_connected;
  bool operator==(const KadPeer&) const = default;
};

struct KadMessage {
  MessageType type = MessageType::ping;
  Bytes key;
  std::optional<KadRecord> record;
  std::vector<KadPeer> closer_peers;
  std::vector<KadPeer> provider_peers;
  bool operator==(const KadMessage&) const = default;
};

// go-libp2p-kad-dht reads frames up to 4 MiB (network.MessageSizeMax); real messages are far
// smaller (20 peers with a handful of addresses is a few KiB), so we accept less: a peer cannot
// make us parse megabytes, and what we send stays well inside every implementation's limit.
struct KadLimits {
  size_t max_message_size = size_t{256} << 10;  // protobuf bytes, without the length prefix
  size_t max_peers = 100;            // closerPeers and providerPeers, each; more is refused
  size_t max_addrs_per_peer = 32;    // further addresses are dropped, not refused (go peers
                                     // behind NATs list dozens)
  size_t max_addr_size = 256;        // bytes of one multiaddr; longer ones are skipped
  size_t max_key_size = 256;         // Message.key and Record.key
  size_t max_value_size = 16 << 10;  // Record.value (an IPNS record is at most 10 KiB)
  size_t max_time_received_size = 64;
};

// `protobuf` is one message without its length prefix. Refuses (invalid_input) malformed
// protobuf and unknown message types, (limit_exceeded) anything over a limit. Peers whose id is
// not a valid peer id and addresses that do not decode are skipped, as go and js do.
Result<KadMessage> decode(BytesView protobuf, const KadLimits& limits = {});
// Deterministic: fields in number order, defaults omitted (proto3).
Bytes encode(const KadMessage& message);

// Stream framing: uvarint length, then the protobuf.
void append_framed(Bytes& out, const KadMessage& message);

// Splits a stream into messages (a stream may carry several requests). Call next() until it
// yields nullopt after every feed(): then at most one frame (bounded by max_message_size) plus
// one read is buffered. Errors are final: the stream must be reset.
class MessageReader {
 public:
  explicit MessageReader(KadLimits limits = {}) : limits_(limits) {}

  void feed(BytesView bytes);
  Result<std::optional<KadMessage>> next();  // nullopt: a partial frame, feed more
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  KadLimits limits_;
  Bytes buf_;
  size_t pos_ = 0;
  std::optional<Error> error_;
};

}  // namespace p2pmq::dht
