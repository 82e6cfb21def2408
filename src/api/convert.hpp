#pragma once
// Conversions between the agent's types (backend.hpp) and the generated API messages.
#include <grpcpp/support/status.h>

#include "api/backend.hpp"
#include "core/result.hpp"
#include "p2pmq/v1/p2pmq.pb.h"

namespace p2pmq::api {

void to_proto(const AgentMessage& in, v1::Message& out);
void to_proto(const GapNotice& in, v1::Gap& out);
void to_proto(const ListenItem& in, v1::ListenEvent& out);
void to_proto(const AgentStatus& in, v1::StatusResponse& out);
v1::Verdict to_proto(Verdict v);
// VERDICT_UNSPECIFIED and unknown numbers map to ignore; `unset` tells the caller to log it.
Verdict from_proto(v1::Verdict v, bool& unset);

// The gRPC status for an agent error: invalid_input → INVALID_ARGUMENT, limit_exceeded →
// RESOURCE_EXHAUSTED, not_found → NOT_FOUND, timeout → DEADLINE_EXCEEDED, closed →
// UNAVAILABLE, unsupported → UNIMPLEMENTED, anything else → INTERNAL.
grpc::Status to_status(const Error& e);

}  // namespace p2pmq::api
