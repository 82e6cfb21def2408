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

void to_proto(const GapNotice& in, v1::Gap& out) {
  out.set_topic(in.topic);
  out.set_origin(in.origin);
  out.set_from_seqno(in.from);
  out.set_to_seqno(in.to);
}

void to_proto(const ListenItem& in, v1::ListenEvent& out) {
  if (const auto* m = std::get_if<AgentMessage>(&in)) {
    to_proto(*m, *out.mutable_message());
  } else {
    to_proto(std::get<GapNotice>(in), *out.mutable_gap());
  }
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
  for (const auto& t : in.topic_status) {
    auto* o = out.add_topic_status();
    o->set_topic(t.topic);
    o->set_published_seqno(t.published_seqno);
    for (const auto& w : t.origins) {
      auto* ow = o->add_origins();
      ow->set_origin(w.origin);
      ow->set_delivered_seqno(w.delivered_seqno);
    }
    o->set_gaps(t.gaps);
    o->set_synced_messages(t.synced_messages);
  }
  for (const auto& a : in.archives) {
    auto* o = out.add_archives();
    o->set_peer_id(a.peer_id);
    for (const auto& addr : a.addrs) o->add_addrs(addr);
    o->set_source(a.source);
  }
  auto* sync = out.mutable_sync();
  sync->set_fetches(in.sync.fetches);
  sync->set_fetched_messages(in.sync.fetched_messages);
  sync->set_fetch_failures(in.sync.fetch_failures);
  sync->set_served_requests(in.sync.served_requests);
  sync->set_served_messages(in.sync.served_messages);
  sync->set_archive_role(in.sync.archive_role);
  sync->set_archived_messages(in.sync.archived_messages);
  out.set_dht_mode(in.dht_mode);
  out.set_dht_table_size(in.dht_table_size);
  out.set_connected_peers(in.connected_peers);
  out.set_metrics_address(in.metrics_address);
  for (const auto& r : in.resources) {
    auto* o = out.add_resources();
    o->set_name(r.name);
    o->set_memory(r.memory);
    o->set_memory_limit(r.memory_limit);
    o->set_streams(r.streams);
    o->set_streams_limit(r.streams_limit);
    o->set_connections(r.connections);
    o->set_connections_limit(r.connections_limit);
    o->set_fds(r.fds);
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
