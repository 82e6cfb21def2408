#include "api/convert.hpp"

#include <chrono>

namespace p2pmq::api {

void to_proto(const AgentMessage& in, v1::Message& out) {
  out.set_id(in.id.data(), in.id.size());
  out.set_topic(in.topic);
  out.set_data(in.data.data(), in.data.size());
  out.set_origin(in.origin);
  out.set_seqno(in.seqno);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(in.received.time_since_epoch());
  auto* ts = out.mutable_received_at();
  ts->set_seconds(ns.count() / 1'000'000'000);
  ts->set_nanos(static_cast<int32_t>(ns.count() % 1'000'000'000));
  if (ts->nanos() < 0) {  // times before 1970: Timestamp wants nanos in [0, 1e9)
    ts->set_seconds(ts->seconds() - 1);
    ts->set_nanos(ts->nanos() + 1'000'000'000);
  }
  out.set_synced(in.synced);
}

void to_proto(const AgentStatus& in, v1::StatusResponse& out) {
  out.set_peer_id(in.peer_id);
  for (const auto& a : in.listen_addrs) out.add_listen_addrs(a);
  for (const auto& t : in.topics) out.add_topics(t);
  for (const auto& p : in.peers) {
    auto* o = out.add_peers();
    o->set_peer_id(p.peer_id);
    for (const auto& a : p.addrs) o->add_addrs(a);
    for (const auto& t : p.topics) o->add_topics(t);
    for (const auto& t : p.mesh_topics) o->add_mesh_topics(t);
    o->set_score(p.score);
    o->set_agent_version(p.agent_version);
  }
}

v1::Verdict to_proto(Verdict v) {
  switch (v) {
    case Verdict::accept:
      return v1::VERDICT_ACCEPT;
    case Verdict::reject:
      return v1::VERDICT_REJECT;
    case Verdict::ignore:
      return v1::VERDICT_IGNORE;
  }
  return v1::VERDICT_IGNORE;
}

Verdict from_proto(v1::Verdict v, bool& unset) {
  unset = false;
  switch (v) {
    case v1::VERDICT_ACCEPT:
      return Verdict::accept;
    case v1::VERDICT_REJECT:
      return Verdict::reject;
    case v1::VERDICT_IGNORE:
      return Verdict::ignore;
    default:
      unset = true;
      return Verdict::ignore;
  }
}

grpc::Status to_status(const Error& e) {
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (e.code) {
    case Errc::invalid_input:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case Errc::limit_exceeded:
      code = grpc::StatusCode::RESOURCE_EXHAUSTED;
      break;
    case Errc::not_found:
      code = grpc::StatusCode::NOT_FOUND;
      break;
    case Errc::timeout:
      code = grpc::StatusCode::DEADLINE_EXCEEDED;
      break;
    case Errc::closed:
      code = grpc::StatusCode::UNAVAILABLE;
      break;
    case Errc::unsupported:
      code = grpc::StatusCode::UNIMPLEMENTED;
      break;
    default:
      break;
  }
  return grpc::Status(code, e.message);
}

}  // namespace p2pmq::api
