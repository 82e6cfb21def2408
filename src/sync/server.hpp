#pragma once
// The archive side of /p2pmq/sync/1.0.0, sans-IO: a decoded request and `now` in, response
// items out, one bounded Batch at a time so an answer never sits in memory whole.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "crypto/peer_id.hpp"
#include "pubsub/types.hpp"
#include "sync/archive.hpp"
#include "sync/codec.hpp"

namespace p2pmq::sync {

using pubsub::Duration;
using pubsub::Time;

struct ServerConfig {
  SyncLimits limits;  // the codec's bounds, checked again: requests may come from elsewhere
  size_t max_response_bytes = size_t{8} << 20;  // per request, over all its batches
  double requests_per_second = 1.0;             // per-peer token refill
  double burst = 20.0;                          // per-peer bucket size
  size_t max_tracked_peers = 10'000;            // buckets kept; a full table refuses new peers
  // Over all peers: many Sybil requesters (or every subscriber after one seqno jump) cannot
  // keep the archive busy beyond this. Over either rate the answer is RATE_LIMITED "busy",
  // which is not misbehaviour: the requester tries another archive or later.
  double total_requests_per_second = 50.0;
  double total_burst = 200.0;
};

// The RATE_LIMITED answer's message: the archive is busy, not offended.
inline constexpr const char* kBusyMessage = "busy: over the archive's request rate, retry later";

struct ServerStats {
  uint64_t requests = 0;
  uint64_t rate_limited = 0;
  uint64_t errors = 0;  // error replies, rate limits included
  uint64_t messages_served = 0;
  uint64_t oversized_skipped = 0;  // stored messages over max_batch_bytes, never sent
};

// Per-peer token buckets: a request costs one token.
class RateLimiter {
 public:
  RateLimiter(double rate_per_second, double burst, size_t max_peers,
              double total_rate_per_second = 1e9, double total_burst = 1e9);
  // Takes a token from the peer's bucket and from the shared one, or from neither.
  bool allow(const crypto::PeerId& peer, Time now);
  size_t tracked() const { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens;
    Time last;
  };
  double refilled(const Bucket& b, Time now) const;

  double rate_, burst_;
  size_t max_peers_;
  double total_rate_, total_burst_;
  Bucket total_;
  std::unordered_map<crypto::PeerId, Bucket, crypto::PeerIdHash> buckets_;
};

class SyncServer;

// The answer to one request. next() returns items until the last one (a Batch with
// more = false, or an Error), then nullopt. Holds references to the server and its archive.
class Responder {
 public:
  std::optional<SyncResponse> next();
  bool done() const { return done_; }

 private:
  friend class SyncServer;
  Responder(SyncServer& server, uint64_t id, Query query);
  SyncResponse fail_with(ErrorCode code, std::string message);
  Result<QueryResult> fetch_page(size_t max_bytes);
  SyncResponse next_latest();

  SyncServer* server_;
  uint64_t id_;
  Query query_;
  std::optional<ErrorReply> error_;
  bool done_ = false;
  size_t bytes_sent_ = 0;
  uint64_t messages_sent_ = 0;
  // Paging state: range continues at next_from_, since after after_; latest is read once.
  uint64_t next_from_ = 0;
  std::optional<Position> after_;
  std::optional<QueryResult> latest_;
  size_t latest_pos_ = 0;
};

class SyncServer {
 public:
  explicit SyncServer(Archive& archive, ServerConfig config = {});

  Responder handle(const crypto::PeerId& peer, const SyncRequest& request, Time now);
  // handle() drained into a vector (tests, small answers).
  std::vector<SyncResponse> respond_all(const crypto::PeerId& peer, const SyncRequest& request,
                                        Time now);

  const ServerConfig& config() const { return config_; }
  const ServerStats& stats() const { return stats_; }

 private:
  friend class Responder;
  Archive& archive_;
  ServerConfig config_;
  RateLimiter limiter_;
  ServerStats stats_;
};

}  // namespace p2pmq::sync
