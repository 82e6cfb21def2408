#pragma once
// The pubsub wire codec (proto/libp2p/pubsub.proto): RPC protobuf <-> types.hpp structs, the
// uvarint-length-prefixed framing used on /meshsub and /floodsub streams, and splitting of
// outgoing RPCs that exceed the peer's frame limit.
#include <cstddef>
#include <optional>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "pubsub/types.hpp"

namespace p2pmq::pubsub {

// Largest application payload a message may carry: go-libp2p-pubsub's default frame limit
// (DefaultMaxMessageSize), so anything we accept a go peer could also have sent.
inline constexpr size_t kMaxMessageDataSize = size_t{1} << 20;
// Room around a full-size payload for from, seqno, signature, key, topic, and the control
// entries piggybacked on the same RPC.
inline constexpr size_t kRpcOverhead = size_t{64} << 10;

// Bounds on what a peer may send in one RPC. decode_rpc refuses anything over them with
// Errc::limit_exceeded and a message naming the field. The protobuf parser itself allocates in
// proportion to the (already bounded) frame size before these counts are checked.
struct RpcLimits {
  size_t max_rpc_size = kMaxMessageDataSize + kRpcOverhead;  // protobuf bytes, without prefix
  size_t max_subscriptions = 1000;
  size_t max_messages = 1000;
  size_t max_control_entries = 5000;   // ihave + iwant + idontwant message ids, in total
  size_t max_control_messages = 1000;  // ihave/iwant/graft/prune/idontwant entries, in total
  size_t max_px_peers = 100;           // PeerInfo entries over all prunes (go sends <= 16)
  size_t max_topic_length = 256;
  size_t max_message_id_length = 256;
};

// `protobuf` is one RPC without its length prefix.
Result<Rpc> decode_rpc(BytesView protobuf, const RpcLimits& limits);
// Deterministic: fields in number order; Message.data and Message.topic always written
// (go and js publishers always set them, and signatures cover these bytes).
Bytes encode_rpc(const Rpc& rpc);
// One Message protobuf on its own (what a signature covers, after a prefix).
Bytes encode_message(const Message& message);

// Bytes a message adds to an encoded RPC (tag, length and body of the `publish` field).
size_t encoded_size(const Message& message);

// Splits `rpc` into RPCs whose encode_rpc() is at most max_size bytes, as go-libp2p-pubsub's
// fragmentRPC does: subscriptions and messages whole, then control entries, with IHAVE, IWANT
// and IDONTWANT id lists cut across RPCs. Order within each kind is kept. An item that cannot
// fit even alone is dropped (publish refuses such messages, so only a tiny max_size gets here).
std::vector<Rpc> split_rpc(Rpc rpc, size_t max_size);

// Stream framing: uvarint length, then the RPC protobuf.
void append_framed_rpc(Bytes& out, const Rpc& rpc);

// Splits an inbound stream into RPCs. Call next() until it yields nullopt after every feed():
// then at most one frame (bounded by max_rpc_size) plus one read is buffered. Errors are final:
// the stream is unusable (bad or oversized prefix, or an RPC decode_rpc refuses) and must close.
class RpcReader {
 public:
  explicit RpcReader(RpcLimits limits = {});

  void feed(BytesView bytes);
  // nullopt: a partial frame, feed more.
  Result<std::optional<Rpc>> next();
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  RpcLimits limits_;
  Bytes buf_;
  size_t pos_ = 0;  // start of unread bytes in buf_
  std::optional<Error> error_;
};

}  // namespace p2pmq::pubsub
