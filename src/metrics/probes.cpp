#include "metrics/probes.hpp"

#include "dht/io/dht_service.hpp"
#include "host/host.hpp"
#include "pubsub/io/gossipsub_service.hpp"
#include "sync/io/sync_service.hpp"
#include "sync/store/archive_store.hpp"

namespace p2pmq::metrics {

void HostProbe::collect(Collector& out) const {
  size_t in = 0, outbound = 0;
  for (const auto& c : host_.connections()) (c->info().outbound ? outbound : in)++;
  out.gauge("p2pmq_connections", "Open connections.", double(in), {{"direction", "inbound"}});
  out.gauge("p2pmq_connections", "Open connections.", double(outbound),
            {{"direction", "outbound"}});
  for (const auto& u : host_.resource_usage()) {
    bool protocol = u.name.starts_with("protocol:");
    bool shared = u.name == "system" || u.name == "transient" || u.name.starts_with("service:");
    if (!protocol && !shared) continue;  // peer scopes: one series per peer, unbounded
    if (protocol) {
      std::string id = u.name.substr(9);
      out.gauge("p2pmq_streams", "Open streams by negotiated protocol.", double(u.streams_inbound),
                {{"protocol", id}, {"direction", "inbound"}});
      out.gauge("p2pmq_streams", "Open streams by negotiated protocol.", double(u.streams_outbound),
                {{"protocol", id}, {"direction", "outbound"}});
    }
    const Labels scope{{"scope", u.name}};
    out.gauge("p2pmq_resource_memory_bytes", "Memory reserved in a resource-manager scope.",
              double(u.memory), scope);
    out.gauge("p2pmq_resource_memory_limit_bytes", "Memory limit of a resource-manager scope.",
              double(u.limits.memory), scope);
    out.gauge("p2pmq_resource_streams", "Streams open in a resource-manager scope.",
              double(u.streams_inbound + u.streams_outbound), scope);
    out.gauge("p2pmq_resource_streams_limit", "Stream limit of a resource-manager scope.",
              double(u.limits.streams), scope);
    out.gauge("p2pmq_resource_connections", "Connections open in a resource-manager scope.",
              double(u.connections_inbound + u.connections_outbound), scope);
    out.gauge("p2pmq_resource_connections_limit", "Connection limit of a resource-manager scope.",
              double(u.limits.connections), scope);
  }
  const auto& r = host_.resource_counters();
  const std::pair<const char*, uint64_t> refused[] = {{"memory", r.memory_refused},
                                                      {"streams", r.streams_refused},
                                                      {"connections", r.connections_refused},
                                                      {"handshakes", r.handshakes_refused},
                                                      {"negotiations", r.negotiations_refused}};
  for (const auto& [resource, n] : refused)
    out.counter("p2pmq_resource_refused_total", "Reservations the resource manager refused.",
                double(n), {{"resource", resource}});
}

void GossipProbe::collect(Collector& out) const {
  const auto& router = gossip_.router();
  const auto& c = router.counters();
  const std::tuple<const char*, const char*, uint64_t> totals[] = {
      {"p2pmq_pubsub_forwarded_messages_total", "Message copies sent to peers.", c.forwarded},
      {"p2pmq_pubsub_validation_timeouts_total", "Validations that timed out (IGNORE).",
       c.validation_timeouts},
      {"p2pmq_pubsub_too_large_messages_total", "Messages over the size limit.", c.too_large},
      {"p2pmq_pubsub_unsubscribed_messages_total", "Messages of topics not joined.",
       c.not_subscribed},
      {"p2pmq_pubsub_graylisted_rpcs_total", "RPCs ignored from graylisted peers.",
       c.graylisted_rpcs},
      {"p2pmq_pubsub_subscriptions_refused_total", "Peer subscriptions over the limit.",
       c.subscriptions_refused},
      {"p2pmq_pubsub_ihave_sent_total", "IHAVE control messages sent.", c.ihave_sent},
      {"p2pmq_pubsub_ihave_received_ids_total", "Message ids offered to us by IHAVE.",
       c.ihave_received},
      {"p2pmq_pubsub_iwant_sent_ids_total", "Message ids we asked for by IWANT.", c.iwant_asked},
      {"p2pmq_pubsub_iwant_served_total", "Messages sent in answer to IWANT.", c.iwant_served},
      {"p2pmq_pubsub_idontwant_sent_total", "IDONTWANT control messages sent.", c.idontwant_sent},
      {"p2pmq_pubsub_idontwant_suppressed_total", "Sends skipped because a peer sent IDONTWANT.",
       c.idontwant_suppressed},
      {"p2pmq_pubsub_broken_promises_total", "IWANT promises peers did not keep.",
       c.broken_promises},
      {"p2pmq_pubsub_truncated_items_total", "RPC items dropped over the per-RPC limits.",
       gossip_.truncated_items()},
  };
  for (const auto& [name, help, value] : totals) out.counter(name, help, double(value));
  out.gauge("p2pmq_pubsub_peers", "Peers with a pubsub stream.", double(router.peers().size()));
  out.gauge("p2pmq_pubsub_validation_queue", "Messages waiting for validation, all topics.",
            double(router.pending_validations()));

  for (const auto& topic : router.topics()) {
    const Labels t{{"topic", topic}};
    out.gauge("p2pmq_pubsub_mesh_peers", "Mesh size of a joined topic.",
              double(router.mesh(topic).size()), t);
    out.gauge("p2pmq_pubsub_topic_peers", "Peers subscribed to a joined topic.",
              double(router.topic_peers(topic).size()), t);
    out.gauge("p2pmq_pubsub_validation_queue_depth", "Messages of a topic waiting for validation.",
              double(router.pending_validations(topic)), t);
    const auto* tc = router.topic_counters(topic);
    if (!tc) continue;
    out.counter("p2pmq_pubsub_published_messages_total", "Messages published by this agent.",
                double(tc->published), t);
    out.counter("p2pmq_pubsub_delivered_messages_total",
                "Messages delivered (validated remote ones and our own).", double(tc->delivered),
                t);
    out.counter("p2pmq_pubsub_duplicate_messages_total", "Copies of messages already seen.",
                double(tc->duplicates), t);
    out.counter("p2pmq_pubsub_rejected_messages_total",
                "Messages rejected (local checks or validator REJECT).", double(tc->rejected), t);
    out.counter("p2pmq_pubsub_ignored_messages_total",
                "Messages ignored (validator IGNORE or timeout).", double(tc->ignored), t);
    out.counter("p2pmq_pubsub_throttled_messages_total",
                "Messages dropped before validation: the queue was full.", double(tc->throttled),
                t);
    out.histogram("p2pmq_pubsub_validation_duration_seconds",
                  "From receipt to the validation verdict.", tc->validation_seconds, t);
  }

  Histogram scores{kScoreBuckets};
  auto now = pubsub::Clock::now();
  for (const auto& p : router.peers()) scores.observe(router.score(p, now));
  out.histogram("p2pmq_pubsub_peer_score", "Scores of the pubsub peers, now.", scores);
}

void DhtProbe::collect(Collector& out) const {
  const auto& s = dht_.stats();
  out.gauge("p2pmq_dht_routing_table_peers", "Peers in the Kademlia routing table.",
            double(dht_.core().table().size()));
  out.counter("p2pmq_dht_queries_total", "Lookups run.", double(s.queries));
  out.counter("p2pmq_dht_requests_sent_total", "Requests sent by lookups.",
              double(s.requests_sent));
  out.counter("p2pmq_dht_request_failures_total", "Requests that failed or timed out.",
              double(s.request_failures));
  out.counter("p2pmq_dht_requests_served_total", "Requests answered.", double(s.requests_served));
  out.counter("p2pmq_dht_requests_refused_total", "Requests refused (malformed, rate limited).",
              double(s.requests_refused));
  out.histogram("p2pmq_dht_query_duration_seconds", "Lookup duration.", s.query_seconds);
}

void SyncProbe::collect(Collector& out) const {
  const auto& s = sync_.stats();
  const std::tuple<const char*, const char*, uint64_t> totals[] = {
      {"p2pmq_sync_fetches_total", "Fetch requests sent to archives.", s.fetches},
      {"p2pmq_sync_fetch_failures_total", "Fetch requests that failed.", s.fetch_failures},
      {"p2pmq_sync_fetched_messages_total", "Messages received from archives.", s.fetched_messages},
      {"p2pmq_sync_served_requests_total", "Requests answered as an archive.", s.requests_served},
      {"p2pmq_sync_served_messages_total", "Messages sent as an archive.", s.messages_served},
      {"p2pmq_sync_rate_limited_total", "Requests refused by the archive's rate limits.",
       s.rate_limited},
      {"p2pmq_sync_stored_messages_total", "Messages written to the archive.", s.stores},
      {"p2pmq_sync_store_failures_total", "Archive writes that failed.", s.store_failures},
  };
  for (const auto& [name, help, value] : totals) out.counter(name, help, double(value));
  if (archive_)
    out.gauge("p2pmq_sync_archive_messages", "Messages the archive holds.",
              double(archive_->total_size()));
}

}  // namespace p2pmq::metrics
