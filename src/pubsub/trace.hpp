#pragma once
// Router events for an event trace, as go-libp2p-pubsub's tracers see them (trace.proto):
// publish, deliver, reject, duplicate, graft, prune, join, leave. The router emits them to a
// sink only when one is set; the IO side stamps, formats and writes them (agent trace.file).
#include <functional>
#include <optional>
#include <string>

#include "pubsub/types.hpp"

namespace p2pmq::pubsub {

enum class TraceType { publish, deliver, reject, duplicate, graft, prune, join, leave };

// go's names: PUBLISH_MESSAGE, DELIVER_MESSAGE, REJECT_MESSAGE, DUPLICATE_MESSAGE, GRAFT, ...
const char* trace_type_name(TraceType type);
const char* reject_reason_name(RejectReason reason);

struct TraceEvent {
  TraceType type;
  TopicId topic;
  MessageId id;                        // message events; empty for the others
  std::optional<PeerId> peer;          // received from (messages), the mesh peer (graft, prune)
  std::optional<RejectReason> reason;  // reject
};

using TraceSink = std::function<void(TraceEvent)>;

// One NDJSON line (no newline) in the shape of go's JSON tracer: {"type", "peerID",
// "timestamp" (ns since the epoch), and per type "publishMessage", "deliverMessage", ...}, with
// peer ids in base58 and message ids in hex.
std::string trace_json(const TraceEvent& event, const PeerId& self, int64_t timestamp_ns);

}  // namespace p2pmq::pubsub
