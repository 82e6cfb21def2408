#include "sync/io/sync_service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <limits>
#include <type_traits>

#include "libp2p/sync.pb.h"
#include "pubsub/message.hpp"

namespace p2pmq::sync {

using host::Clock;
using host::Task;
namespace asio = host::asio;

namespace {

// Runs f() on the worker and resumes the calling coroutine on its own executor with the result.
template <class F>
Task<std::invoke_result_t<F&>> run_on(asio::thread_pool& pool, F f) {
  using R = std::invoke_result_t<F&>;
  auto job = [f = std::move(f)]() mutable -> Task<R> { co_return f(); };
  co_return co_await asio::co_spawn(pool.get_executor(), std::move(job), asio::use_awaitable);
}

// One response item, encoded and framed on the worker.
struct Item {
  Bytes frame;  // empty: the responder had nothing more
  bool last = true;
  size_t messages = 0;
  std::optional<ErrorCode> error;
};

Item next_item(Responder& responder) {
  Item item;
  auto response = responder.next();
  if (!response) return item;
  if (const auto* e = std::get_if<ErrorReply>(&response->item)) {
    item.error = e->code;
  } else {
    const auto& batch = std::get<Batch>(response->item);
    item.messages = batch.messages.size();
    item.last = !batch.more;
  }
  append_framed(item.frame, encode_response(*response));
  return item;
}

// A request decode_request refused. Over a codec limit, the protobuf itself was fine: answer
// with the matching error code (and the request's id, read again). Anything else gets no reply.
std::optional<SyncResponse> reply_to_refused(const Error& error, BytesView protobuf) {
  if (error.code != Errc::limit_exceeded) return std::nullopt;
  uint64_t id = 0;
  ::libp2p::sync::SyncRequest pb;
  if (protobuf.size() <= std::numeric_limits<int>::max() &&
      pb.ParseFromArray(protobuf.data(), static_cast<int>(protobuf.size())))
    id = pb.id();
  auto code = error.message.find("max_range_span") != std::string::npos ? ErrorCode::bad_range
                                                                        : ErrorCode::too_large;
  return SyncResponse{id, ErrorReply{code, error.message}};
}

Error reply_error(const crypto::PeerId& peer, const ErrorReply& e) {
  Errc code = Errc::io;
  switch (e.code) {
    case ErrorCode::unknown_topic:
      code = Errc::not_found;
      break;
    case ErrorCode::bad_range:
      code = Errc::invalid_input;
      break;
    case ErrorCode::rate_limited:
    case ErrorCode::too_large:
      code = Errc::limit_exceeded;
      break;
    case ErrorCode::internal:
      code = Errc::io;
      break;
  }
  return Error{code, "sync: " + peer.to_string() + " answered " + error_code_name(e.code) + ": " +
                         e.message};
}

// Every message of an answer must belong to the query asked.
class AnswerCheck {
 public:
  explicit AnswerCheck(const Query& query) : query_(query) {
    if (const auto* q = std::get_if<SinceQuery>(&query_))
      for (const auto& w : q->watermarks) {
        auto& mark = since_[w.origin];
        mark = std::max(mark, w.seqno);
      }
  }

  Result<void> admit(const pubsub::Message& m, uint64_t seqno) {
    const TopicId& topic =
        std::visit([](const auto& q) -> const TopicId& { return q.topic; }, query_);
    if (m.topic != topic) return bad("a message of another topic");
    if (const auto* q = std::get_if<LatestQuery>(&query_)) {
      if (++count_ > q->count) return bad("more messages than the count asked");
    } else if (const auto* q = std::get_if<RangeQuery>(&query_)) {
      if (*m.from != q->origin) return bad("a message of another origin");
      if (seqno < q->from_seqno || seqno > q->to_seqno)
        return bad("seqno " + std::to_string(seqno) + " outside the range asked");
    } else {
      auto it = since_.find(*m.from);
      if (it != since_.end() && seqno <= it->second)
        return bad("seqno " + std::to_string(seqno) + " at or below the watermark");
    }
    return {};
  }

 private:
  static tl::unexpected<Error> bad(const std::string& what) {
    return fail(Errc::protocol_violation, "sync: the answer holds " + what);
  }
  const Query& query_;
  std::map<Bytes, uint64_t> since_;
  uint64_t count_ = 0;
};

}  // namespace

SyncRequest latest_request(TopicId topic, uint64_t count) {
  return SyncRequest{0, LatestQuery{std::move(topic), count}};
}

SyncRequest range_request(TopicId topic, Bytes origin, uint64_t from, uint64_t to) {
  return SyncRequest{0, RangeQuery{std::move(topic), std::move(origin), from, to}};
}

SyncRequest since_request(TopicId topic, std::vector<Watermark> watermarks) {
  return SyncRequest{0, SinceQuery{std::move(topic), std::move(watermarks)}};
}

// ---------------------------------------------------------------- helpers

// Resets a stream once its deadline passes. The timer's handler owns the state, so the
// Watchdog may go first; its destructor disarms it.
class SyncService::Watchdog {
 public:
  Watchdog(asio::any_io_executor ex, const std::shared_ptr<host::Stream>& stream,
           Clock::time_point deadline)
      : state_(std::make_shared<State>(ex, stream, deadline)) {
    arm(state_);
  }
  ~Watchdog() {
    state_->disarmed = true;
    state_->timer.cancel();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Moves the deadline, earlier or later.
  void set(Clock::time_point deadline) {
    bool earlier = deadline < state_->deadline;
    state_->deadline = deadline;
    if (earlier) state_->timer.expires_at(deadline);  // the aborted wait re-arms (arm())
  }
  bool fired() const { return state_->fired; }

 private:
  struct State {
    State(asio::any_io_executor ex, const std::shared_ptr<host::Stream>& s, Clock::time_point d)
        : timer(ex, d), stream(s), deadline(d) {}
    asio::steady_timer timer;
    std::weak_ptr<host::Stream> stream;
    Clock::time_point deadline;
    bool fired = false;
    bool disarmed = false;
  };
  static void arm(std::shared_ptr<State> state) {
    auto& timer = state->timer;
    timer.async_wait([state = std::move(state)](boost::system::error_code ec) {
      if (state->disarmed) return;
      if (ec && ec != asio::error::operation_aborted) return;
      if (Clock::now() < state->deadline) {
        state->timer.expires_at(state->deadline);
        arm(state);
        return;
      }
      state->fired = true;
      if (auto stream = state->stream.lock()) stream->reset();
    });
  }
  std::shared_ptr<State> state_;
};

// Counts an inbound stream against the limits while it is served.
class SyncService::StreamSlot {
 public:
  StreamSlot(SyncService& service, crypto::PeerId peer)
      : service_(service), alive_(service.alive_), peer_(std::move(peer)) {
    ++service_.inbound_streams_;
    ++service_.inbound_per_peer_[peer_];
  }
  ~StreamSlot() {
    if (!*alive_) return;
    --service_.inbound_streams_;
    auto it = service_.inbound_per_peer_.find(peer_);
    if (it != service_.inbound_per_peer_.end() && --it->second == 0)
      service_.inbound_per_peer_.erase(it);
  }
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;

 private:
  SyncService& service_;
  std::shared_ptr<bool> alive_;
  crypto::PeerId peer_;
};

// ---------------------------------------------------------------- lifecycle

SyncService::SyncService(host::Host& host, Archive* archive, SyncServiceConfig config)
    : host_(host), archive_(archive), config_(std::move(config)) {
  if (archive_) {
    server_ = std::make_unique<SyncServer>(*archive_, config_.server);
    worker_ = std::make_unique<asio::thread_pool>(1);
  }
}

SyncService::~SyncService() {
  stop();
  *alive_ = false;
  // What is queued still runs (a store() the owner was told nothing about is still written);
  // its results, posted to the io thread, find alive_ false.
  if (worker_) worker_->join();
}

void SyncService::start() {
  if (running_) return;
  running_ = true;
  if (!archive_) return;
  host_.handle(
      std::string(kSyncProtocol),
      [this, alive = alive_](std::shared_ptr<host::Stream> stream) -> Task<void> {
        if (!*alive) co_return;
        co_await serve(std::move(stream));
      },
      "sync");
}

void SyncService::stop() {
  if (!running_) return;
  running_ = false;
  if (archive_) host_.unhandle(std::string(kSyncProtocol));
}

void SyncService::misbehaved(const crypto::PeerId& peer, const std::string& reason) {
  ++stats_.misbehaviours;
  spdlog::debug("sync: {} misbehaved: {}", peer.to_string(), reason);
  if (misbehaviour_) misbehaviour_(peer, reason);
}

// ---------------------------------------------------------------- archive side

void SyncService::store(const TopicId& topic, Bytes origin, uint64_t seqno, Bytes message,
                        WallTime received, std::function<void(Result<bool>)> done) {
  auto io = host_.executor();
  auto refuse = [&](Error error) {
    ++stats_.store_failures;
    asio::post(io, [alive = alive_, done = std::move(done), error = std::move(error)]() mutable {
      if (*alive && done) done(tl::unexpected(std::move(error)));
    });
  };
  if (!archive_) return refuse(Error{Errc::unsupported, "sync: no archive to store into"});
  if (pending_stores_ >= config_.max_pending_stores)
    return refuse(Error{Errc::limit_exceeded, "sync: max_pending_stores (" +
                                                  std::to_string(config_.max_pending_stores) +
                                                  ") writes already queued"});
  // Bytes too: 10,000 queued 1 MiB messages would be 10 GiB.
  const size_t bytes = message.size();
  if (pending_store_bytes_ + bytes > config_.max_pending_store_bytes)
    return refuse(Error{Errc::limit_exceeded, "sync: max_pending_store_bytes (" +
                                                  std::to_string(config_.max_pending_store_bytes) +
                                                  ") already queued"});
  ++pending_stores_;
  pending_store_bytes_ += bytes;
  asio::post(*worker_, [this, io, alive = alive_, topic, origin = std::move(origin), seqno, bytes,
                        message = std::move(message), received, done = std::move(done)]() mutable {
    auto result = archive_->put(topic, origin, seqno, message, received);
    asio::post(io, [this, alive = std::move(alive), result = std::move(result), bytes,
                    done = std::move(done)]() mutable {
      if (!*alive) return;
      --pending_stores_;
      pending_store_bytes_ -= bytes;
      if (result)
        ++stats_.stores;
      else
        ++stats_.store_failures;
      if (done) done(std::move(result));
    });
  });
}

void SyncService::with_archive(std::function<void(Archive&)> job, std::function<void()> done) {
  if (!archive_) return;
  auto io = host_.executor();
  asio::post(*worker_,
             [this, io, alive = alive_, job = std::move(job), done = std::move(done)]() mutable {
               if (job) job(*archive_);
               asio::post(io, [alive = std::move(alive), done = std::move(done)]() mutable {
                 if (*alive && done) done();
               });
             });
}

Task<void> SyncService::serve(std::shared_ptr<host::Stream> stream) {
  auto alive = alive_;
  const auto peer = stream->remote_peer();
  if (!running_ || !server_) {
    stream->reset();
    co_return;
  }
  auto per_peer = inbound_per_peer_.find(peer);
  size_t from_peer = per_peer == inbound_per_peer_.end() ? 0 : per_peer->second;
  if (inbound_streams_ >= config_.max_inbound_streams ||
      from_peer >= config_.max_inbound_streams_per_peer) {
    ++stats_.streams_refused;
    bool global = inbound_streams_ >= config_.max_inbound_streams;
    spdlog::info("sync: resetting stream from {}: {} ({}) reached", peer.to_string(),
                 global ? "max_inbound_streams" : "max_inbound_streams_per_peer",
                 global ? config_.max_inbound_streams : config_.max_inbound_streams_per_peer);
    stream->reset();
    co_return;
  }
  StreamSlot slot(*this, peer);
  const auto idle = config_.inbound_idle_timeout;
  const auto limits = config_.server.limits;
  const auto request_timeout = config_.inbound_request_timeout;
  Watchdog watchdog(host_.executor(), stream, Clock::now() + idle);
  FrameReader reader(limits.max_request_size);
  bool request_under_way = false;  // its first byte is in: the request deadline runs
  auto request_done = [&] {
    // Bytes of the next request already read start its deadline now.
    request_under_way = reader.buffered() > 0;
    watchdog.set(Clock::now() + (request_under_way ? request_timeout : idle));
  };
  Bytes buffer(16 * 1024);
  host::BufferAccount account(*stream);  // the partial request is held for this peer
  for (;;) {
    auto frame = reader.next();
    if (!frame) {
      // A bad or oversized length prefix: the stream is out of step for good.
      ++stats_.malformed_requests;
      spdlog::info("sync: resetting stream from {}: {}", peer.to_string(),
                   frame.error().to_string());
      misbehaved(peer, "sync: bad request frame: " + frame.error().to_string());
      if (frame.error().code == Errc::limit_exceeded) {
        Bytes out;
        append_framed(out, encode_response(SyncResponse{
                               0, ErrorReply{ErrorCode::too_large, frame.error().message}}));
        (void)co_await stream->write(out);
        if (!*alive) co_return;
        ++stats_.error_replies;
      }
      stream->reset();
      co_return;
    }
    if (!*frame) {
      if (!running_) break;
      auto n = co_await stream->read_some(buffer);
      if (!*alive) co_return;
      if (!n) {  // reset by the remote, or by the watchdog
        if (watchdog.fired() && request_under_way) ++stats_.requests_timed_out;
        co_return;
      }
      if (*n == 0) break;
      if (auto r = account.update(buffer.size() + reader.buffered() + *n); !r) {
        ++stats_.streams_refused;
        stream->reset();
        co_return;
      }
      reader.feed(BytesView(buffer.data(), *n));
      if (!request_under_way) {
        request_under_way = true;
        watchdog.set(Clock::now() + request_timeout);
      }
      continue;
    }
    auto request = decode_request(**frame, limits);
    if (!request) {
      ++stats_.malformed_requests;
      misbehaved(peer, "sync: bad request: " + request.error().to_string());
      auto reply = reply_to_refused(request.error(), **frame);
      if (!reply) {
        spdlog::info("sync: resetting stream from {}: {}", peer.to_string(),
                     request.error().to_string());
        stream->reset();
        co_return;
      }
      ++stats_.error_replies;
      Bytes out;
      append_framed(out, encode_response(*reply));
      auto written = co_await stream->write(out);
      if (!*alive || !written) co_return;
      request_done();
      continue;
    }
    bool usable = co_await answer(stream, peer, std::move(*request));
    if (!*alive) co_return;
    if (!usable) {
      if (watchdog.fired()) ++stats_.requests_timed_out;
      co_return;
    }
    request_done();
  }
  stream->close_write();
}

Task<bool> SyncService::answer(std::shared_ptr<host::Stream> stream, crypto::PeerId peer,
                               SyncRequest request) {
  auto alive = alive_;
  auto responder = std::make_shared<std::optional<Responder>>();
  SyncServer* server = server_.get();
  auto first = [server, responder, peer, request = std::move(request)] {
    responder->emplace(server->handle(peer, request, Clock::now()));
    return next_item(**responder);
  };
  auto item = co_await run_on(*worker_, std::move(first));
  for (;;) {
    if (!*alive) co_return false;
    if (item.frame.empty()) break;
    if (item.error) {
      ++stats_.error_replies;
      // Busy is our state, not the requester's fault: honest peers asking at once (every
      // subscriber after one seqno jump) must not lose score for it.
      if (*item.error == ErrorCode::rate_limited) ++stats_.rate_limited;
    } else {
      stats_.messages_served += item.messages;
    }
    auto written = co_await stream->write(item.frame);
    if (!*alive || !written) co_return false;
    if (item.last) break;
    // One item in flight: the next is read from the archive once this one is written.
    auto next = [responder] { return next_item(**responder); };
    item = co_await run_on(*worker_, std::move(next));
  }
  ++stats_.requests_served;
  co_return true;
}

// ---------------------------------------------------------------- client side

Task<Result<FetchStats>> SyncService::fetch(crypto::PeerId archive, SyncRequest request,
                                            FetchHandler on_message) {
  auto alive = alive_;
  ++stats_.fetches;
  auto result = co_await fetch_once(archive, std::move(request), on_message);
  if (!*alive) co_return result;
  if (!result) {
    ++stats_.fetch_failures;
    spdlog::debug("sync: fetch from {} failed: {}", archive.to_string(),
                  result.error().to_string());
  }
  co_return result;
}

Task<Result<FetchStats>> SyncService::fetch_once(crypto::PeerId peer, SyncRequest request,
                                                 const FetchHandler& on_message) {
  auto alive = alive_;
  if (peer == host_.peer_id()) co_return fail(Errc::invalid_input, "sync: fetch from ourselves");
  if (request.id == 0) request.id = next_request_id_++;
  const auto limits = config_.server.limits;
  const auto max_bytes = config_.max_fetch_bytes;
  const auto max_messages = config_.max_fetch_messages;
  const auto deadline = Clock::now() + config_.request_timeout;
  auto stopped = [] { return fail(Errc::closed, "sync: service destroyed"); };
  auto timed_out = [&] {
    return fail(Errc::timeout, "sync: " + peer.to_string() + " did not answer within " +
                                   std::to_string(config_.request_timeout.count()) + " ms");
  };

  auto conn = co_await host_.connect(peer);
  if (!*alive) co_return stopped();
  if (!conn) co_return tl::unexpected(conn.error());
  if (Clock::now() >= deadline) co_return timed_out();
  auto opened = co_await (*conn)->open_stream();
  if (!*alive) co_return stopped();
  if (!opened) co_return tl::unexpected(opened.error());
  auto stream = *opened;
  Watchdog watchdog(host_.executor(), stream, deadline);

  const std::vector<std::string> protocols{std::string(kSyncProtocol)};
  auto selected = co_await host::select_protocol(*stream, protocols);
  if (!*alive) co_return stopped();
  if (!selected) {
    stream->reset();
    if (watchdog.fired()) co_return timed_out();
    co_return tl::unexpected(selected.error());
  }
  if (auto accounted = stream->set_protocol(*selected); !accounted) {
    stream->reset();
    co_return tl::unexpected(accounted.error());
  }

  Bytes frame;
  append_framed(frame, encode_request(request));
  auto written = co_await stream->write(frame);
  if (!*alive) co_return stopped();
  if (watchdog.fired()) co_return timed_out();
  if (!written) co_return tl::unexpected(written.error());

  // A bad answer: the archive pays for it, and the stream is dropped.
  auto violation = [&](const std::string& reason) {
    stream->reset();
    misbehaved(peer, reason);
    return fail(Errc::protocol_violation, reason);
  };
  AnswerCheck check(request.query);
  FrameReader reader(limits.max_response_size);
  Bytes buffer(64 * 1024);
  FetchStats stats;
  for (;;) {
    auto next = reader.next();
    if (!next) co_return violation("sync: bad response frame: " + next.error().to_string());
    if (!*next) {
      auto n = co_await stream->read_some(buffer);
      if (!*alive) co_return stopped();
      if (watchdog.fired()) co_return timed_out();
      if (!n)
        co_return fail(Errc::closed,
                       "sync: stream to " + peer.to_string() + " failed: " + n.error().message);
      if (*n == 0)
        co_return fail(Errc::closed,
                       "sync: " + peer.to_string() + " closed the stream before the last batch");
      reader.feed(BytesView(buffer.data(), *n));
      continue;
    }
    auto response = decode_response(**next, limits);
    if (!response) co_return violation("sync: bad response: " + response.error().to_string());
    if (const auto* e = std::get_if<ErrorReply>(&response->item)) {
      stream->close_write();
      co_return tl::unexpected(reply_error(peer, *e));
    }
    if (response->id != request.id)
      co_return violation("sync: a response to request " + std::to_string(response->id) +
                          " on the stream of request " + std::to_string(request.id));
    auto& batch = std::get<Batch>(response->item);
    ++stats.batches;
    for (auto& raw : batch.messages) {
      stats.bytes += raw.size();
      ++stats.messages;
      if (stats.bytes > max_bytes || stats.messages > max_messages) {
        stream->reset();
        co_return fail(Errc::limit_exceeded, "sync: the answer of " + peer.to_string() +
                                                 " is over max_fetch_bytes or max_fetch_messages");
      }
      auto decoded = decode_message(raw);
      if (!decoded) co_return violation("sync: bad message: " + decoded.error().to_string());
      auto seqno = pubsub::seqno_value(*decoded);
      if (!decoded->from || !seqno)
        co_return violation("sync: the answer holds a message without from or seqno");
      if (auto admitted = check.admit(*decoded, *seqno); !admitted)
        co_return violation(admitted.error().message);
      FetchedMessage m;
      m.origin = *decoded->from;
      m.seqno = *seqno;
      m.message = std::move(*decoded);
      m.raw = std::move(raw);
      ++stats_.fetched_messages;
      if (on_message) on_message(std::move(m));
      if (!*alive) co_return stopped();
    }
    if (!batch.more) {
      stats.truncated = batch.truncated;
      stream->close_write();
      co_return stats;
    }
  }
}

Task<Result<FetchStats>> SyncService::fetch_latest(crypto::PeerId archive, TopicId topic,
                                                   uint64_t count, FetchHandler on_message) {
  auto request = latest_request(std::move(topic), count);
  co_return co_await fetch(std::move(archive), std::move(request), std::move(on_message));
}

Task<Result<FetchStats>> SyncService::fetch_since(crypto::PeerId archive, TopicId topic,
                                                  std::vector<Watermark> watermarks,
                                                  FetchHandler on_message) {
  auto alive = alive_;
  std::map<Bytes, uint64_t> marks;
  for (auto& w : watermarks) {
    auto& mark = marks[std::move(w.origin)];
    mark = std::max(mark, w.seqno);
  }
  const size_t rounds = std::max<size_t>(1, config_.max_since_rounds);
  const size_t max_watermarks = config_.server.limits.max_watermarks;
  FetchHandler track = [&marks, &on_message](FetchedMessage m) {
    auto& mark = marks[m.origin];
    mark = std::max(mark, m.seqno);
    if (on_message) on_message(std::move(m));
  };
  FetchStats total;
  for (size_t round = 0; round < rounds; ++round) {
    if (marks.size() > max_watermarks) break;  // cannot ask for the rest in one request
    std::vector<Watermark> current;
    current.reserve(marks.size());
    for (const auto& [origin, seqno] : marks) current.push_back(Watermark{origin, seqno});
    auto request = since_request(topic, std::move(current));
    auto got = co_await fetch(archive, std::move(request), track);
    if (!*alive || !got) co_return got;
    total.messages += got->messages;
    total.bytes += got->bytes;
    total.batches += got->batches;
    total.truncated = got->truncated;
    if (!got->truncated || got->messages == 0) break;
  }
  co_return total;
}

Task<RangeFetchResult> SyncService::fetch_range(std::vector<crypto::PeerId> archives,
                                                FetchRange range, FetchHandler on_message) {
  co_return co_await fetch_range(std::move(archives), std::move(range.topic),
                                 std::move(range.origin), range.from, range.to,
                                 std::move(on_message));
}

Task<RangeFetchResult> SyncService::fetch_range(std::vector<crypto::PeerId> archives, TopicId topic,
                                                Bytes origin, uint64_t from, uint64_t to,
                                                FetchHandler on_message) {
  auto alive = alive_;
  RangeFetchResult result;
  if (from > to) co_return result;
  const uint64_t span = std::max<uint64_t>(1, config_.server.limits.max_range_span);
  IntervalSet received;
  // The first seqno in [x, to] not received yet.
  auto first_missing = [&](uint64_t x) -> std::optional<uint64_t> {
    if (x < from) x = from;
    if (x > to) return std::nullopt;
    const auto& ranges = received.ranges();
    auto it = ranges.upper_bound(x);
    if (it != ranges.begin()) {
      auto prev = std::prev(it);
      if (prev->second >= x) {
        if (prev->second >= to) return std::nullopt;
        x = prev->second + 1;
      }
    }
    return x;
  };
  FetchHandler deliver = [&](FetchedMessage m) {
    if (m.seqno < from || m.seqno > to || received.contains(m.seqno)) return;
    received.insert(m.seqno, m.seqno);
    ++result.fetched;
    if (on_message) on_message(std::move(m));
  };

  for (const auto& archive : archives) {
    auto cursor = first_missing(from);
    if (!cursor || result.requests >= config_.max_range_requests) break;
    ++result.archives_asked;
    while (cursor && result.requests < config_.max_range_requests) {
      uint64_t start = *cursor;
      uint64_t end = to - start >= span - 1 ? start + (span - 1) : to;
      auto request = range_request(topic, origin, start, end);
      ++result.requests;
      uint64_t before = result.fetched;
      auto got = co_await fetch(archive, std::move(request), deliver);
      if (!*alive) co_return result;
      if (!got) {
        result.last_error = got.error();
        break;  // the next archive continues from the first seqno still missing
      }
      if (got->truncated) {
        // The archive's per-request budget ran out: ask again after what arrived.
        if (result.fetched == before) {
          result.last_error =
              Error{Errc::limit_exceeded, "sync: " + archive.to_string() +
                                              " truncated a range answer without sending anything"};
          break;
        }
        cursor = first_missing(start);
        continue;
      }
      cursor = end >= to ? std::nullopt : first_missing(end + 1);
    }
  }

  uint64_t next = from;
  bool done = false;
  for (const auto& [a, b] : received.ranges()) {
    if (b < from || a > to) continue;
    if (a > next) result.missing.emplace_back(next, a - 1);
    if (b >= to) {
      done = true;
      break;
    }
    next = b + 1;
  }
  if (!done) result.missing.emplace_back(next, to);
  co_return result;
}

}  // namespace p2pmq::sync
