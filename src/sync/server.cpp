#include "sync/server.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

namespace p2pmq::sync {

RateLimiter::RateLimiter(double rate_per_second, double burst, size_t max_peers,
                         double total_rate_per_second, double total_burst)
    : rate_(rate_per_second),
      burst_(burst),
      max_peers_(max_peers),
      total_rate_(total_rate_per_second),
      total_burst_(total_burst),
      total_{total_burst, Time{}} {}

double RateLimiter::refilled(const Bucket& b, Time now) const {
  double elapsed = std::chrono::duration<double>(now - b.last).count();
  return std::min(burst_, b.tokens + std::max(0.0, elapsed) * rate_);
}

bool RateLimiter::allow(const crypto::PeerId& peer, Time now) {
  auto it = buckets_.find(peer);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_peers_) {
      // A full bucket is the same as no bucket: forget those before refusing anyone.
      std::erase_if(buckets_, [&](const auto& kv) { return refilled(kv.second, now) >= burst_; });
      if (buckets_.size() >= max_peers_) return false;
    }
    it = buckets_.emplace(peer, Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = refilled(b, now);
  b.last = std::max(b.last, now);
  double elapsed = std::chrono::duration<double>(now - total_.last).count();
  total_.tokens = std::min(total_burst_, total_.tokens + std::max(0.0, elapsed) * total_rate_);
  total_.last = std::max(total_.last, now);
  if (b.tokens < 1.0 || total_.tokens < 1.0) return false;
  b.tokens -= 1.0;
  total_.tokens -= 1.0;
  return true;
}

SyncServer::SyncServer(Archive& archive, ServerConfig config)
    : archive_(archive),
      config_(config),
      limiter_(config.requests_per_second, config.burst, config.max_tracked_peers,
               config.total_requests_per_second, config.total_burst) {}

Responder SyncServer::handle(const crypto::PeerId& peer, const SyncRequest& request, Time now) {
  ++stats_.requests;
  Responder r(*this, request.id, request.query);
  const auto& limits = config_.limits;
  auto refuse = [&](ErrorCode code, std::string message) {
    r.error_ = ErrorReply{code, std::move(message)};
    return std::move(r);
  };
  // Rate limiting first, so malformed requests cost tokens too.
  if (!limiter_.allow(peer, now)) {
    ++stats_.rate_limited;
    return refuse(ErrorCode::rate_limited, kBusyMessage);
  }
  const TopicId* topic = nullptr;
  if (const auto* q = std::get_if<LatestQuery>(&request.query)) {
    topic = &q->topic;
    if (q->count > limits.max_count)
      return refuse(ErrorCode::too_large,
                    "count over max_count (" + std::to_string(limits.max_count) + ")");
  } else if (const auto* q = std::get_if<RangeQuery>(&request.query)) {
    topic = &q->topic;
    if (q->from_seqno > q->to_seqno) return refuse(ErrorCode::bad_range, "from_seqno > to_seqno");
    if (q->to_seqno - q->from_seqno >= limits.max_range_span)
      return refuse(ErrorCode::bad_range,
                    "range over max_range_span (" + std::to_string(limits.max_range_span) + ")");
    if (q->origin.size() > limits.max_origin_length)
      return refuse(ErrorCode::too_large, "origin over max_origin_length");
    r.next_from_ = q->from_seqno;
  } else if (const auto* q = std::get_if<SinceQuery>(&request.query)) {
    topic = &q->topic;
    if (q->watermarks.size() > limits.max_watermarks)
      return refuse(ErrorCode::too_large, "watermarks over max_watermarks (" +
                                              std::to_string(limits.max_watermarks) + ")");
  }
  if (topic->size() > limits.max_topic_length)
    return refuse(ErrorCode::too_large, "topic over max_topic_length");
  if (!archive_.has_topic(*topic)) return refuse(ErrorCode::unknown_topic, "topic not archived");
  return r;
}

std::vector<SyncResponse> SyncServer::respond_all(const crypto::PeerId& peer,
                                                  const SyncRequest& request, Time now) {
  std::vector<SyncResponse> out;
  auto r = handle(peer, request, now);
  while (auto item = r.next()) out.push_back(std::move(*item));
  return out;
}

Responder::Responder(SyncServer& server, uint64_t id, Query query)
    : server_(&server), id_(id), query_(std::move(query)) {}

SyncResponse Responder::fail_with(ErrorCode code, std::string message) {
  ++server_->stats_.errors;
  done_ = true;
  return SyncResponse{id_, ErrorReply{code, std::move(message)}};
}

Result<QueryResult> Responder::fetch_page(size_t max_bytes) {
  Archive& a = server_->archive_;
  if (const auto* q = std::get_if<RangeQuery>(&query_))
    return a.range(q->topic, q->origin, next_from_, q->to_seqno, max_bytes);
  const auto& q = std::get<SinceQuery>(query_);
  return a.since(q.topic, q.watermarks, after_, max_bytes);
}

// Latest is one archive read (bounded by max_response_bytes), then sliced into batches.
SyncResponse Responder::next_latest() {
  const auto& cfg = server_->config_;
  if (!latest_) {
    const auto& q = std::get<LatestQuery>(query_);
    auto got = server_->archive_.latest(q.topic, q.count, cfg.max_response_bytes);
    if (!got) return fail_with(ErrorCode::internal, "archive read failed");
    latest_ = std::move(*got);
  }
  Batch batch;
  size_t bytes = 0;
  auto& msgs = latest_->messages;
  for (; latest_pos_ < msgs.size(); ++latest_pos_) {
    auto& m = msgs[latest_pos_].message;
    if (m.size() > cfg.limits.max_batch_bytes) {
      ++server_->stats_.oversized_skipped;
      continue;
    }
    if (bytes + m.size() > cfg.limits.max_batch_bytes ||
        batch.messages.size() >= cfg.limits.max_batch_messages)
      break;
    bytes += m.size();
    batch.messages.push_back(std::move(m));
  }
  server_->stats_.messages_served += batch.messages.size();
  batch.more = latest_pos_ < msgs.size();
  batch.truncated = !batch.more && !latest_->complete;
  if (!batch.more) {
    done_ = true;
    latest_.reset();
  }
  return SyncResponse{id_, std::move(batch)};
}

std::optional<SyncResponse> Responder::next() {
  if (done_) return std::nullopt;
  if (error_) return fail_with(error_->code, error_->message);
  if (std::holds_alternative<LatestQuery>(query_)) return next_latest();

  const auto& cfg = server_->config_;
  size_t budget = cfg.max_response_bytes - std::min(bytes_sent_, cfg.max_response_bytes);
  auto page = fetch_page(std::min(cfg.limits.max_batch_bytes, budget));
  if (!page) return fail_with(ErrorCode::internal, "archive read failed");
  auto& msgs = page->messages;
  // Also bound the count: a page of tiny messages could pass max_batch_messages.
  size_t count_left =
      cfg.limits.max_count - std::min<uint64_t>(messages_sent_, cfg.limits.max_count);
  size_t keep = std::min({msgs.size(), cfg.limits.max_batch_messages, count_left});
  if (keep < msgs.size()) {
    msgs.resize(keep);
    page->complete = false;
  }
  if (msgs.empty()) page->complete = true;  // an archive that breaks its contract ends it

  Batch batch;
  size_t bytes = 0;
  for (auto& m : msgs) {
    if (m.message.size() > cfg.limits.max_batch_bytes ||
        bytes + m.message.size() > cfg.limits.max_batch_bytes) {
      ++server_->stats_.oversized_skipped;
      continue;
    }
    bytes += m.message.size();
    batch.messages.push_back(std::move(m.message));
  }
  bytes_sent_ += bytes;
  messages_sent_ += msgs.size();
  server_->stats_.messages_served += batch.messages.size();
  if (!msgs.empty()) {  // continue after the last match, even one skipped as oversized
    next_from_ = msgs.back().seqno + 1;
    after_ = Position{msgs.back().origin, msgs.back().seqno};
  }
  bool exhausted = bytes_sent_ >= cfg.max_response_bytes || messages_sent_ >= cfg.limits.max_count;
  batch.more = !page->complete && !exhausted;
  batch.truncated = !page->complete && exhausted;
  done_ = !batch.more;
  return SyncResponse{id_, std::move(batch)};
}

}  // namespace p2pmq::sync
