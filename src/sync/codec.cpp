#include "sync/codec.hpp"

#include <string>
#include <utility>

#include "core/varint.hpp"
#include "libp2p/pubsub.pb.h"
#include "libp2p/sync.pb.h"

namespace p2pmq::sync {
namespace {

namespace pb = ::libp2p::sync;

Bytes bytes_of(const std::string& s) {
  return Bytes(s.begin(), s.end());
}
std::string str_of(BytesView b) {
  return std::string(as_string(b));
}

tl::unexpected<Error> over(const char* limit, uint64_t value, uint64_t bound) {
  return fail(Errc::limit_exceeded, "sync: " + std::to_string(value) + " over " + limit + " (" +
                                        std::to_string(bound) + ")");
}

Result<void> check_topic(const std::string& topic, const SyncLimits& limits) {
  if (topic.size() > limits.max_topic_length)
    return over("max_topic_length", topic.size(), limits.max_topic_length);
  return {};
}

Result<void> check_origin(const std::string& origin, const SyncLimits& limits) {
  if (origin.size() > limits.max_origin_length)
    return over("max_origin_length", origin.size(), limits.max_origin_length);
  return {};
}

ErrorCode code_from_pb(pb::SyncResponse::Error::Code c) {
  switch (c) {
    case pb::SyncResponse::Error::UNKNOWN_TOPIC:
      return ErrorCode::unknown_topic;
    case pb::SyncResponse::Error::BAD_RANGE:
      return ErrorCode::bad_range;
    case pb::SyncResponse::Error::RATE_LIMITED:
      return ErrorCode::rate_limited;
    case pb::SyncResponse::Error::TOO_LARGE:
      return ErrorCode::too_large;
    case pb::SyncResponse::Error::INTERNAL:
      return ErrorCode::internal;
  }
  return ErrorCode::internal;
}

pb::SyncResponse::Error::Code code_to_pb(ErrorCode c) {
  switch (c) {
    case ErrorCode::unknown_topic:
      return pb::SyncResponse::Error::UNKNOWN_TOPIC;
    case ErrorCode::bad_range:
      return pb::SyncResponse::Error::BAD_RANGE;
    case ErrorCode::rate_limited:
      return pb::SyncResponse::Error::RATE_LIMITED;
    case ErrorCode::too_large:
      return pb::SyncResponse::Error::TOO_LARGE;
    case ErrorCode::internal:
      return pb::SyncResponse::Error::INTERNAL;
  }
  return pb::SyncResponse::Error::INTERNAL;
}

template <class Msg>
Bytes serialize(const Msg& msg) {
  Bytes out(msg.ByteSizeLong());
  msg.SerializeWithCachedSizesToArray(out.data());
  return out;
}

}  // namespace

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::internal:
      return "INTERNAL";
    case ErrorCode::unknown_topic:
      return "UNKNOWN_TOPIC";
    case ErrorCode::bad_range:
      return "BAD_RANGE";
    case ErrorCode::rate_limited:
      return "RATE_LIMITED";
    case ErrorCode::too_large:
      return "TOO_LARGE";
  }
  return "INTERNAL";
}

Result<SyncRequest> decode_request(BytesView protobuf, const SyncLimits& limits) {
  if (protobuf.size() > limits.max_request_size)
    return over("max_request_size", protobuf.size(), limits.max_request_size);
  pb::SyncRequest msg;
  if (!msg.ParseFromArray(protobuf.data(), static_cast<int>(protobuf.size())))
    return fail(Errc::invalid_input, "sync: malformed request protobuf");

  SyncRequest out;
  out.id = msg.id();
  switch (msg.query_case()) {
    case pb::SyncRequest::kLatest: {
      const auto& q = msg.latest();
      if (auto ok = check_topic(q.topic(), limits); !ok) return tl::unexpected(ok.error());
      if (q.count() > limits.max_count) return over("max_count", q.count(), limits.max_count);
      out.query = LatestQuery{q.topic(), q.count()};
      return out;
    }
    case pb::SyncRequest::kRange: {
      const auto& q = msg.range();
      if (auto ok = check_topic(q.topic(), limits); !ok) return tl::unexpected(ok.error());
      if (auto ok = check_origin(q.origin(), limits); !ok) return tl::unexpected(ok.error());
      // from > to is left to the server, which answers BAD_RANGE instead of closing.
      if (q.from_seqno() <= q.to_seqno() && q.to_seqno() - q.from_seqno() >= limits.max_range_span)
        return over("max_range_span", q.to_seqno() - q.from_seqno(), limits.max_range_span);
      out.query = RangeQuery{q.topic(), bytes_of(q.origin()), q.from_seqno(), q.to_seqno()};
      return out;
    }
    case pb::SyncRequest::kSince: {
      const auto& q = msg.since();
      if (auto ok = check_topic(q.topic(), limits); !ok) return tl::unexpected(ok.error());
      if (size_t n = q.watermarks_size(); n > limits.max_watermarks)
        return over("max_watermarks", n, limits.max_watermarks);
      SinceQuery since{q.topic(), {}};
      since.watermarks.reserve(q.watermarks_size());
      for (const auto& w : q.watermarks()) {
        if (auto ok = check_origin(w.origin(), limits); !ok) return tl::unexpected(ok.error());
        since.watermarks.push_back({bytes_of(w.origin()), w.seqno()});
      }
      out.query = std::move(since);
      return out;
    }
    case pb::SyncRequest::QUERY_NOT_SET:
      break;
  }
  return fail(Errc::invalid_input, "sync: request without a query");
}

Result<SyncResponse> decode_response(BytesView protobuf, const SyncLimits& limits) {
  if (protobuf.size() > limits.max_response_size)
    return over("max_response_size", protobuf.size(), limits.max_response_size);
  pb::SyncResponse msg;
  if (!msg.ParseFromArray(protobuf.data(), static_cast<int>(protobuf.size())))
    return fail(Errc::invalid_input, "sync: malformed response protobuf");

  SyncResponse out;
  out.id = msg.id();
  switch (msg.item_case()) {
    case pb::SyncResponse::kBatch: {
      const auto& b = msg.batch();
      if (size_t n = b.messages_size(); n > limits.max_batch_messages)
        return over("max_batch_messages", n, limits.max_batch_messages);
      size_t total = 0;
      for (const auto& m : b.messages()) total += m.size();
      if (total > limits.max_batch_bytes)
        return over("max_batch_bytes", total, limits.max_batch_bytes);
      Batch batch;
      batch.messages.reserve(b.messages_size());
      for (const auto& m : b.messages()) batch.messages.push_back(bytes_of(m));
      batch.more = b.more();
      batch.truncated = b.truncated();
      out.item = std::move(batch);
      return out;
    }
    case pb::SyncResponse::kError: {
      const auto& e = msg.error();
      if (e.message().size() > limits.max_error_length)
        return over("max_error_length", e.message().size(), limits.max_error_length);
      out.item = ErrorReply{code_from_pb(e.code()), e.message()};
      return out;
    }
    case pb::SyncResponse::ITEM_NOT_SET:
      break;
  }
  return fail(Errc::invalid_input, "sync: response without an item");
}

Bytes encode_request(const SyncRequest& request) {
  pb::SyncRequest msg;
  msg.set_id(request.id);
  if (const auto* q = std::get_if<LatestQuery>(&request.query)) {
    auto* out = msg.mutable_latest();
    out->set_topic(q->topic);
    out->set_count(q->count);
  } else if (const auto* q = std::get_if<RangeQuery>(&request.query)) {
    auto* out = msg.mutable_range();
    out->set_topic(q->topic);
    out->set_origin(str_of(q->origin));
    out->set_from_seqno(q->from_seqno);
    out->set_to_seqno(q->to_seqno);
  } else if (const auto* q = std::get_if<SinceQuery>(&request.query)) {
    auto* out = msg.mutable_since();
    out->set_topic(q->topic);
    for (const auto& w : q->watermarks) {
      auto* wm = out->add_watermarks();
      wm->set_origin(str_of(w.origin));
      wm->set_seqno(w.seqno);
    }
  }
  return serialize(msg);
}

Bytes encode_response(const SyncResponse& response) {
  pb::SyncResponse msg;
  msg.set_id(response.id);
  if (const auto* b = std::get_if<Batch>(&response.item)) {
    auto* out = msg.mutable_batch();
    for (const auto& m : b->messages) out->add_messages(str_of(m));
    out->set_more(b->more);
    out->set_truncated(b->truncated);
  } else if (const auto* e = std::get_if<ErrorReply>(&response.item)) {
    auto* out = msg.mutable_error();
    out->set_code(code_to_pb(e->code));
    out->set_message(e->message);
  }
  return serialize(msg);
}

size_t batch_entry_size(size_t message_size) {
  return 1 + varint_size(message_size) + message_size;
}

Result<pubsub::Message> decode_message(BytesView protobuf) {
  if (protobuf.size() > kMaxBatchBytes)
    return over("max_batch_bytes", protobuf.size(), kMaxBatchBytes);
  ::libp2p::pubsub::Message m;
  if (!m.ParseFromArray(protobuf.data(), static_cast<int>(protobuf.size())))
    return fail(Errc::invalid_input, "sync: malformed pubsub message");
  pubsub::Message out;
  if (m.has_from()) out.from = bytes_of(m.from());
  out.data = bytes_of(m.data());
  if (m.has_seqno()) out.seqno = bytes_of(m.seqno());
  out.topic = m.topic();
  if (m.has_signature()) out.signature = bytes_of(m.signature());
  if (m.has_key()) out.key = bytes_of(m.key());
  return out;
}

void append_framed(Bytes& out, BytesView protobuf) {
  varint_append(out, protobuf.size());
  append(out, protobuf);
}

FrameReader::FrameReader(size_t max_frame) : max_frame_(max_frame) {}

void FrameReader::feed(BytesView bytes) {
  if (error_) return;
  // Drop consumed bytes once they dominate, so the buffer stays about one frame long.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }
  append(buf_, bytes);
}

Result<std::optional<Bytes>> FrameReader::next() {
  if (error_) return tl::unexpected(*error_);
  BytesView in = BytesView(buf_).subspan(pos_);
  auto prefix = varint_decode(in);
  if (!prefix) {
    error_ = Error{Errc::invalid_input, "sync: bad length prefix: " + prefix.error().message};
    return tl::unexpected(*error_);
  }
  if (!*prefix) return std::nullopt;
  auto [len, used] = **prefix;
  // Refused before buffering the body: a peer cannot make us hold more than one frame.
  if (len > max_frame_) {
    error_ = over("max frame size", len, max_frame_).value();
    return tl::unexpected(*error_);
  }
  if (in.size() - used < len) return std::nullopt;
  auto frame = in.subspan(used, len);
  Bytes out(frame.begin(), frame.end());
  pos_ += used + len;
  if (pos_ == buf_.size()) buf_.clear(), pos_ = 0;
  return std::optional<Bytes>(std::move(out));
}

}  // namespace p2pmq::sync
