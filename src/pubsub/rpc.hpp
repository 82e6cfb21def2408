#pragma once
// The pubsub wire codec (proto/libp2p/pubsub.proto): RPC protobuf <-> types.hpp structs, the
// uvarint-length-prefixed framing used on /meshsub and /floodsub streams, and splitting of
// outgoing RPCs that exceed the peer's frame limit.
#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "pubsub/types.hpp"

namespace p2pmq::pubsub {

// Largest RPC frame (protobuf bytes, without the length prefix) we send: go-libp2p-pubsub's
// DefaultMaxMessageSize. go resets a stream on a larger frame, losing every frame queued
// behind it, so nothing we write may exceed it.
inline constexpr size_t kMaxOutboundRpcSize = size_t{1} << 20;
// Largest application payload a message may carry: what still fits a one-message RPC of
// kMaxOutboundRpcSize with the largest from, seqno, signature, key (RSA-8192) and topic.
inline constexpr size_t kMaxMessageDataSize = kMaxOutboundRpcSize - (size_t{4} << 10);
// Largest encoded Message (the `publish` field) that fits a frame of kMaxOutboundRpcSize: the
// field's tag and a length of up to 3 bytes come on top.
inline constexpr size_t kMaxEncodedMessageSize = kMaxOutboundRpcSize - 4;
// Room over kMaxOutboundRpcSize that we accept inbound, for peers with a larger frame limit.
inline constexpr size_t kRpcOverhead = size_t{64} << 10;

// Bounds on what a peer may send in one RPC. A frame over max_rpc_size or one that does not
// parse is an error (the stream is reset). Counts and lengths over their bounds are not: the
// excess is dropped and counted (RpcDecodeStats), the rest is kept, as go and rust truncate
// IHAVE/IWANT lists instead of resetting. The same counts bound the RPCs we send (split_rpc),
// so two p2pmq nodes never truncate each other. The protobuf parser allocates in proportion to
// the (already bounded) frame size before these counts are applied.
struct RpcLimits {
  size_t max_rpc_size = kMaxOutboundRpcSize + kRpcOverhead;  // protobuf bytes, without prefix
  size_t max_subscriptions = 1000;
  size_t max_messages = 5000;         // rust's max_publish_messages; go answers an IWANT in one RPC
  size_t max_control_entries = 5000;  // ihave + iwant + idontwant message ids, in total
  size_t max_control_messages = 1000;  // ihave/iwant/graft/prune/idontwant entries, in total
  size_t max_px_peers = 100;           // PeerInfo entries over all prunes (go sends <= 16)
  size_t max_topic_length = 256;
  size_t max_message_id_length = 256;
  // Outbound only: bytes of subscriptions and control in one RPC we send. rust-libp2p fails
  // the whole stream on an RPC over its max_control_message_size (16 KiB by default), so
  // split_rpc cuts control there; inbound we accept up to max_rpc_size like go.
  size_t max_control_size = 16 * 1024;
};

// What decode_rpc dropped to keep an RPC within RpcLimits.
struct RpcDecodeStats {
  size_t dropped = 0;  // subscriptions, messages, control entries, ids and PX peers
};

// `protobuf` is one RPC without its length prefix. Fails only on a malformed protobuf or one
// over max_rpc_size; everything else over a limit is dropped and counted in `stats`.
Result<Rpc> decode_rpc(BytesView protobuf, const RpcLimits& limits,
                       RpcDecodeStats* stats = nullptr);
// Deterministic: fields in number order; Message.topic always written, Message.data unless it
// was absent on receipt (data_present), since signatures cover these bytes.
Bytes encode_rpc(const Rpc& rpc);
// One Message protobuf on its own.
Bytes encode_message(const Message& message);
// `prefix`, then encode_message() of the message without its signature and key: the bytes a
// signature covers, written without copying the message.
Bytes encode_signed_part(std::string_view prefix, const Message& message);

// Bytes a message adds to an encoded RPC (tag, length and body of the `publish` field).
size_t encoded_size(const Message& message);
// encode_rpc(rpc).size(), without encoding.
size_t encoded_size(const Rpc& rpc);

// Splits `rpc` into RPCs whose encode_rpc() is at most max_size bytes, whose subscriptions and
// control take at most counts.max_control_size bytes, and whose counts stay
// within `counts` (its max_rpc_size is ignored), as go-libp2p-pubsub's fragmentRPC does for
// bytes: subscriptions and messages whole, then control entries, with IHAVE, IWANT and
// IDONTWANT id lists cut across RPCs. Order within each kind is kept. A message larger than
// max_size goes alone in an RPC of its own (a topic configured for messages over the frame
// limit); a control item that cannot fit even alone is dropped (only a tiny max_size gets here).
std::vector<Rpc> split_rpc(Rpc rpc, size_t max_size, const RpcLimits& counts = {});

// Stream framing: uvarint length, then the RPC protobuf.
void append_framed_rpc(Bytes& out, const Rpc& rpc);

// Splits an inbound stream into RPCs. Call next() until it yields nullopt after every feed():
// then at most one frame (bounded by max_rpc_size) plus one read is buffered. Errors are final:
// the stream is unusable (bad or oversized prefix, or a malformed RPC) and must close.
class RpcReader {
 public:
  explicit RpcReader(RpcLimits limits = {});

  void feed(BytesView bytes);
  // nullopt: a partial frame, feed more.
  Result<std::optional<Rpc>> next();
  size_t buffered() const { return buf_.size() - pos_; }
  // Items dropped from the RPCs read so far for being over a count or length limit.
  size_t dropped() const { return stats_.dropped; }

 private:
  RpcLimits limits_;
  Bytes buf_;
  size_t pos_ = 0;  // start of unread bytes in buf_
  std::optional<Error> error_;
  RpcDecodeStats stats_;
};

}  // namespace p2pmq::pubsub
