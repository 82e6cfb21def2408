#pragma once
// Binds /p2pmq/sync/1.0.0 to the host (DESIGN.md §5). Archive side, when constructed with an
// Archive: serves inbound streams with the sans-IO SyncServer, one response item in flight per
// stream. The server and the archive (RocksDB calls block on disk) live on one worker thread:
// every SyncServer and Archive call, the owner's writes through store() included, runs there in
// order, and results come back to the io thread. Client side: fetch() one request from an
// archive with a deadline and bounds, and fetch_range() over a list of archives, continuing on
// the next archive from the first seqno not yet received.
//
// Everything public is called on the io thread, and every callback runs there.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "host/host.hpp"
#include "pubsub/types.hpp"
#include "sync/archive.hpp"
#include "sync/codec.hpp"
#include "sync/delivery.hpp"
#include "sync/server.hpp"

namespace p2pmq::sync {

struct SyncServiceConfig {
  // Archive side: the codec limits (also what the client enforces on answers, and the span at
  // which fetch_range splits), the per-request byte budget and the per-peer rate limit.
  ServerConfig server;
  size_t max_inbound_streams = 64;          // sync streams served at once; more are reset
  size_t max_inbound_streams_per_peer = 4;  // of those, from one peer
  // An inbound stream with no request under way for this long is reset (a client that never
  // sends).
  std::chrono::milliseconds inbound_idle_timeout{30000};
  // From the first byte of a request to the last byte of its answer: a deadline per request,
  // not an idle timer, so a peer that trickles a byte a second (or reads our answer that
  // slowly) loses the stream (hostile-peers finding 10). Above the clients' request_timeout.
  std::chrono::milliseconds inbound_request_timeout{20000};
  size_t max_pending_stores = 10'000;  // store() calls queued for the worker; more fail at once
  size_t max_pending_store_bytes = size_t{64} << 20;  // their message bytes; more fail at once

  // Client side, per request: the deadline runs from the call over negotiation and every batch,
  // and the stream is reset when it passes (a dial, bounded by the host's dial_timeout, is not
  // cut short, but one that ends past the deadline fails the request).
  std::chrono::milliseconds request_timeout{10000};
  size_t max_fetch_bytes = size_t{16} << 20;  // encoded messages, over all batches
  uint64_t max_fetch_messages = 10'000;
  size_t max_since_rounds = 8;  // fetch_since: requests while answers come back truncated
  // fetch_range: requests per call over all archives (a span over max_range_span takes several;
  // a seqno jump of an origin can open a gap of any size).
  size_t max_range_requests = 100;
};

// One message of an answer. Archives key messages by (from, seqno), so every message an answer
// carries has both; signatures are not checked here (the caller validates as for live traffic).
struct FetchedMessage {
  pubsub::Message message;  // decoded
  Bytes raw;                // the encoded libp2p.pubsub.Message, as the archive sent it
  Bytes origin;             // == *message.from
  uint64_t seqno = 0;
};
using FetchHandler = std::function<void(FetchedMessage)>;

struct FetchStats {
  uint64_t messages = 0;
  uint64_t bytes = 0;  // encoded message bytes
  uint64_t batches = 0;
  bool truncated = false;  // the archive stopped at its per-request limit: ask again for the rest
};

// fetch_range: what came, and what no archive had.
struct RangeFetchResult {
  uint64_t fetched = 0;  // messages handed to on_message (each seqno once)
  std::vector<std::pair<uint64_t, uint64_t>> missing;  // inclusive seqno ranges, ascending
  size_t archives_asked = 0;
  size_t requests = 0;
  std::optional<Error> last_error;  // the last failed request, if any
  bool complete() const { return missing.empty(); }
};

struct SyncServiceStats {
  // Archive side.
  uint64_t requests_served = 0;  // decoded requests answered to the end (error replies too)
  uint64_t messages_served = 0;
  uint64_t error_replies = 0;  // rate limits included
  uint64_t rate_limited = 0;
  uint64_t malformed_requests = 0;  // undecodable or over a codec limit
  uint64_t misbehaviours = 0;       // on_misbehaviour calls (both sides)
  uint64_t streams_refused = 0;     // over max_inbound_streams(_per_peer)
  uint64_t requests_timed_out = 0;  // streams reset at inbound_request_timeout
  uint64_t stores = 0;              // store() calls that reached the archive and succeeded
  uint64_t store_failures = 0;
  // Client side.
  uint64_t fetches = 0;  // fetch() requests, each to one archive
  uint64_t fetched_messages = 0;
  uint64_t fetch_failures = 0;
};

// The three queries, id 0 (fetch assigns one).
SyncRequest latest_request(TopicId topic, uint64_t count);
SyncRequest range_request(TopicId topic, Bytes origin, uint64_t from, uint64_t to);
SyncRequest since_request(TopicId topic, std::vector<Watermark> watermarks);

class SyncService {
 public:
  // Who misbehaved and how: an undecodable request, one over a codec limit (archive side); a
  // malformed or out-of-query answer (client side). Timeouts, closed streams, error replies and
  // requests over the rate limit (we are busy, they are not at fault) are not misbehaviour.
  using MisbehaviourHandler =
      std::function<void(const crypto::PeerId& peer, const std::string& reason)>;

  // archive: nullptr for a client-only service (no protocol registered, no worker thread).
  // Otherwise it must outlive the service and, once start() ran, be touched only through the
  // service (store(), with_archive()).
  SyncService(host::Host& host, Archive* archive, SyncServiceConfig config = {});
  // Waits for the worker to finish what was queued; callbacks not yet delivered are dropped.
  ~SyncService();
  SyncService(const SyncService&) = delete;
  SyncService& operator=(const SyncService&) = delete;

  // Registers the protocol when serving. stop() unregisters it; streams being served end after
  // their current request.
  void start();
  void stop();
  bool serving() const { return archive_ != nullptr; }

  void on_misbehaviour(MisbehaviourHandler handler) { misbehaviour_ = std::move(handler); }

  // Archive::put on the worker, in order with the server's reads; `done` runs on the io thread
  // with put's result (true: written, false: already stored) once the write returned, which is
  // what the archive's Durability promises. Fails at once (still through `done`, on the io
  // thread) without an archive or with max_pending_stores writes queued.
  void store(const TopicId& topic, Bytes origin, uint64_t seqno, Bytes message, WallTime received,
             std::function<void(Result<bool>)> done);
  // Any other archive work (retention, pruning) on the worker; `done` on the io thread.
  // Without an archive, neither runs.
  void with_archive(std::function<void(Archive&)> job, std::function<void()> done = {});

  // One request on a fresh stream to `archive`, read to the last item. Every message of the
  // answer goes to on_message as it arrives (so some may have been handed over when an error is
  // returned). Errors: an error reply (Errc::not_found for UNKNOWN_TOPIC, invalid_input for
  // BAD_RANGE, limit_exceeded for RATE_LIMITED and TOO_LARGE, io for INTERNAL; the message names
  // the code), a malformed answer or one outside the query (protocol_violation), an answer over
  // max_fetch_bytes / max_fetch_messages (limit_exceeded), the deadline (timeout), or a stream
  // or connection that failed (closed, or the dial's error). request.id 0 gets a fresh id.
  host::Task<Result<FetchStats>> fetch(crypto::PeerId archive, SyncRequest request,
                                       FetchHandler on_message);
  host::Task<Result<FetchStats>> fetch_latest(crypto::PeerId archive, TopicId topic, uint64_t count,
                                              FetchHandler on_message);
  // Asks again, with watermarks moved past what arrived, while answers come back truncated
  // (at most max_since_rounds requests).
  host::Task<Result<FetchStats>> fetch_since(crypto::PeerId archive, TopicId topic,
                                             std::vector<Watermark> watermarks,
                                             FetchHandler on_message);
  // Seqnos from..to of one origin from the archives in order: requests of at most the codec's
  // max_range_span; on a failure the next archive continues from the first seqno not yet
  // received, and seqnos an archive answered without are asked of the next one. Each seqno is
  // handed to on_message once. Stops after max_range_requests requests; what did not come is
  // in `missing`.
  host::Task<RangeFetchResult> fetch_range(std::vector<crypto::PeerId> archives, TopicId topic,
                                           Bytes origin, uint64_t from, uint64_t to,
                                           FetchHandler on_message);
  host::Task<RangeFetchResult> fetch_range(std::vector<crypto::PeerId> archives, FetchRange range,
                                           FetchHandler on_message);

  const SyncServiceStats& stats() const { return stats_; }
  const SyncServiceConfig& config() const { return config_; }
  size_t inbound_streams() const { return inbound_streams_; }
  size_t pending_stores() const { return pending_stores_; }
  size_t pending_store_bytes() const { return pending_store_bytes_; }

 private:
  class StreamSlot;
  class Watchdog;
  host::Task<void> serve(std::shared_ptr<host::Stream> stream);
  // Answers one request to the end; false when the stream is no longer usable.
  host::Task<bool> answer(std::shared_ptr<host::Stream> stream, crypto::PeerId peer,
                          SyncRequest request);
  host::Task<Result<FetchStats>> fetch_once(crypto::PeerId archive, SyncRequest request,
                                            const FetchHandler& on_message);
  void misbehaved(const crypto::PeerId& peer, const std::string& reason);

  host::Host& host_;
  Archive* archive_;
  SyncServiceConfig config_;
  std::unique_ptr<SyncServer> server_;  // worker only
  bool running_ = false;
  MisbehaviourHandler misbehaviour_;
  SyncServiceStats stats_;
  size_t inbound_streams_ = 0;
  std::map<crypto::PeerId, size_t> inbound_per_peer_;
  size_t pending_stores_ = 0;
  size_t pending_store_bytes_ = 0;
  uint64_t next_request_id_ = 1;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<host::asio::thread_pool> worker_;  // last: joined before the rest goes
};

}  // namespace p2pmq::sync
