#pragma once
// The /p2pmq/sync/1.0.0 wire codec (proto/libp2p/sync.proto): requests and response items as
// plain structs, uvarint-length-prefixed framing, and the limits every decode enforces.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "pubsub/rpc.hpp"
#include "pubsub/types.hpp"

namespace p2pmq::sync {

using pubsub::TopicId;

inline constexpr std::string_view kSyncProtocol = "/p2pmq/sync/1.0.0";

// One batch must hold at least one message of the largest size pubsub accepts.
inline constexpr size_t kMaxBatchBytes = pubsub::kMaxMessageDataSize + pubsub::kRpcOverhead;

// Bounds on what a peer may send. decode_* refuses anything over them with
// Errc::limit_exceeded and a message naming the limit.
struct SyncLimits {
  size_t max_request_size = size_t{64} << 10;  // request protobuf bytes, without prefix
  uint64_t max_count = 10'000;                 // Latest.count
  uint64_t max_range_span = 10'000;            // Range: to - from + 1 (when from <= to)
  size_t max_watermarks = 1'000;               // Since.watermarks
  size_t max_batch_bytes = kMaxBatchBytes;     // sum of the encoded messages in one Batch
  size_t max_batch_messages = 10'000;
  // Response frame: a full batch plus per-message tags and lengths and the error text.
  size_t max_response_size = kMaxBatchBytes + (size_t{64} << 10);
  size_t max_topic_length = 256;
  size_t max_origin_length = 128;  // peer id multihash bytes (real ones are under 50)
  size_t max_error_length = 1024;
};

struct Watermark {
  Bytes origin;
  uint64_t seqno = 0;  // the last seqno the client has from this origin
  bool operator==(const Watermark&) const = default;
};

struct LatestQuery {
  TopicId topic;
  uint64_t count = 0;
  bool operator==(const LatestQuery&) const = default;
};
struct RangeQuery {
  TopicId topic;
  Bytes origin;
  uint64_t from_seqno = 0;  // inclusive
  uint64_t to_seqno = 0;    // inclusive
  bool operator==(const RangeQuery&) const = default;
};
struct SinceQuery {
  TopicId topic;
  std::vector<Watermark> watermarks;
  bool operator==(const SinceQuery&) const = default;
};
using Query = std::variant<LatestQuery, RangeQuery, SinceQuery>;

struct SyncRequest {
  uint64_t id = 0;
  Query query;
  bool operator==(const SyncRequest&) const = default;
};

// Messages as encoded libp2p.pubsub.Message bytes (decode them with decode_message).
struct Batch {
  std::vector<Bytes> messages;
  bool more = false;       // another Batch of this response follows
  bool truncated = false;  // the server stopped at its per-request limit
  bool operator==(const Batch&) const = default;
};

enum class ErrorCode { internal, unknown_topic, bad_range, rate_limited, too_large };
const char* error_code_name(ErrorCode code);

struct ErrorReply {
  ErrorCode code = ErrorCode::internal;
  std::string message;
  bool operator==(const ErrorReply&) const = default;
};

struct SyncResponse {
  uint64_t id = 0;
  std::variant<Batch, ErrorReply> item;
  bool operator==(const SyncResponse&) const = default;
};

// `protobuf` is one message without its length prefix.
Result<SyncRequest> decode_request(BytesView protobuf, const SyncLimits& limits);
Result<SyncResponse> decode_response(BytesView protobuf, const SyncLimits& limits);
Bytes encode_request(const SyncRequest& request);
Bytes encode_response(const SyncResponse& response);

// Bytes a message adds to an encoded Batch (tag, length, body).
size_t batch_entry_size(size_t message_size);

// One libp2p.pubsub.Message protobuf, as carried in a Batch. Refuses more than
// kMaxBatchBytes.
Result<pubsub::Message> decode_message(BytesView protobuf);

// Stream framing: uvarint length, then the protobuf.
void append_framed(Bytes& out, BytesView protobuf);

// Splits an inbound stream into frames of at most max_frame bytes. Call next() until it
// yields nullopt after every feed(). Errors are final: the stream must close.
class FrameReader {
 public:
  explicit FrameReader(size_t max_frame);

  void feed(BytesView bytes);
  // nullopt: a partial frame, feed more.
  Result<std::optional<Bytes>> next();
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  size_t max_frame_;
  Bytes buf_;
  size_t pos_ = 0;
  std::optional<Error> error_;
};

}  // namespace p2pmq::sync
