#include "pubsub/trace.hpp"

#include <fmt/format.h>

#include "core/bytes.hpp"

namespace p2pmq::pubsub {

const char* trace_type_name(TraceType type) {
  switch (type) {
    case TraceType::publish:
      return "PUBLISH_MESSAGE";
    case TraceType::deliver:
      return "DELIVER_MESSAGE";
    case TraceType::reject:
      return "REJECT_MESSAGE";
    case TraceType::duplicate:
      return "DUPLICATE_MESSAGE";
    case TraceType::graft:
      return "GRAFT";
    case TraceType::prune:
      return "PRUNE";
    case TraceType::join:
      return "JOIN";
    case TraceType::leave:
      return "LEAVE";
  }
  return "UNKNOWN";
}

const char* reject_reason_name(RejectReason reason) {
  // go-libp2p-pubsub's reason strings where it has one.
  switch (reason) {
    case RejectReason::missing_signature:
      return "missing signature";
    case RejectReason::invalid_signature:
      return "invalid signature";
    case RejectReason::unexpected_signature:
      return "unexpected signature";
    case RejectReason::unexpected_author:
      return "unexpected auth info";
    case RejectReason::self_origin:
      return "self originated message";
    case RejectReason::validation_failed:
      return "validation failed";
    case RejectReason::validation_ignored:
      return "validation ignored";
    case RejectReason::validation_throttled:
      return "validation throttled";
    case RejectReason::too_large:
      return "message too large";
    case RejectReason::blacklisted:
      return "blacklisted peer";
    case RejectReason::duplicate:
      return "duplicate";
  }
  return "unknown";
}

namespace {

// A JSON string: topics are whatever peers sent (any bytes), so escape everything below 0x20,
// quotes and backslashes, and bytes that are not ASCII as \u00XX (each byte on its own: the
// line stays valid JSON whatever the input).
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace

std::string trace_json(const TraceEvent& e, const PeerId& self, int64_t timestamp_ns) {
  std::string body = "\"topic\":" + json_string(e.topic);
  const char* field = "";
  switch (e.type) {
    case TraceType::publish:
      field = "publishMessage";
      break;
    case TraceType::deliver:
      field = "deliverMessage";
      break;
    case TraceType::reject:
      field = "rejectMessage";
      break;
    case TraceType::duplicate:
      field = "duplicateMessage";
      break;
    case TraceType::graft:
      field = "graft";
      break;
    case TraceType::prune:
      field = "prune";
      break;
    case TraceType::join:
      field = "join";
      break;
    case TraceType::leave:
      field = "leave";
      break;
  }
  bool message = e.type == TraceType::publish || e.type == TraceType::deliver ||
                 e.type == TraceType::reject || e.type == TraceType::duplicate;
  if (message) body = "\"messageID\":\"" + to_hex(e.id) + "\"," + body;
  if (e.peer)
    body += std::string(message ? ",\"receivedFrom\":\"" : ",\"peerID\":\"") + e.peer->to_string() +
            "\"";
  if (e.reason) body += ",\"reason\":" + json_string(reject_reason_name(*e.reason));
  return fmt::format("{{\"type\":\"{}\",\"peerID\":\"{}\",\"timestamp\":{},\"{}\":{{{}}}}}",
                     trace_type_name(e.type), self.to_string(), timestamp_ns, field, body);
}

}  // namespace p2pmq::pubsub
