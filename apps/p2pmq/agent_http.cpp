#include "agent_http.hpp"

#include <sys/resource.h>

#include <chrono>

#include "agent_backend.hpp"
#include "api/server.hpp"
#include "api/validation_client.hpp"
#include "sync_agent.hpp"

namespace p2pmq::cli {

namespace asio = host::asio;

void ApiProbe::collect(metrics::Collector& out) const {
  if (server_) {
    out.gauge("p2pmq_grpc_listen_streams", "Open gRPC Listen streams.",
              double(server_->listen_streams()));
    out.gauge("p2pmq_grpc_listen_buffered_bytes", "Bytes waiting in Listen stream buffers.",
              double(server_->listen_buffered_bytes()));
    out.counter("p2pmq_grpc_listen_missed_messages_total",
                "Messages dropped from full Listen buffers (sent as Missed events).",
                double(server_->listen_missed_messages()));
  }
  const auto& held = backend_.held();
  out.gauge("p2pmq_grpc_held_bytes", "Bytes held for subscribed topics without a listener.",
            double(held.bytes()));
  out.counter("p2pmq_grpc_held_dropped_messages_total",
              "Held messages dropped over grpc.max_held_bytes.", double(held.dropped()));
  if (validation_) {
    auto c = validation_->counters();
    const std::pair<const char*, uint64_t> verdicts[] = {
        {"accept", c.accepted}, {"reject", c.rejected}, {"ignore", c.ignored}};
    for (const auto& [verdict, n] : verdicts)
      out.counter("p2pmq_validation_verdicts_total", "Verdicts of the external validators.",
                  double(n), {{"verdict", verdict}});
    const std::pair<const char*, uint64_t> policy[] = {{"timeout", c.timeouts},
                                                       {"no_validator", c.no_validator},
                                                       {"overloaded", c.overloaded},
                                                       {"over_peer_share", c.over_peer_share}};
    for (const auto& [why, n] : policy)
      out.counter("p2pmq_validation_policy_verdicts_total",
                  "Messages answered by policy instead of a validator.", double(n),
                  {{"reason", why}});
    out.gauge("p2pmq_validation_validators", "Connected external validators.",
              double(validation_->connected_count()));
  }
}

void SyncAgentProbe::collect(metrics::Collector& out) const {
  const auto& s = sync_.stats();
  const auto& d = sync_.delivery_stats();
  const std::tuple<const char*, const char*, uint64_t> totals[] = {
      {"p2pmq_sync_catch_ups_total", "Catch-ups from archives (start, new peers, listeners).",
       s.catch_ups},
      {"p2pmq_sync_gap_fetches_total", "Fetches of gaps in an origin's sequence.", s.fetches},
      {"p2pmq_sync_synced_messages_total", "Fetched messages delivered to listeners.",
       s.synced_delivered},
      {"p2pmq_sync_synced_rejected_total", "Fetched messages rejected.", s.synced_rejected},
      {"p2pmq_sync_gaps_total", "Gaps given up and reported to listeners.", s.gaps},
      {"p2pmq_sync_ordered_duplicates_total", "Duplicates the delivery tracker dropped.",
       d.duplicates},
  };
  for (const auto& [name, help, value] : totals) out.counter(name, help, double(value));
}

void ProcessProbe::collect(metrics::Collector& out) const {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  out.counter("p2pmq_process_cpu_seconds_total", "User and system CPU time.",
              seconds(usage.ru_utime) + seconds(usage.ru_stime));
  out.gauge("p2pmq_process_max_resident_memory_bytes", "Peak resident set size.",
            double(usage.ru_maxrss) * 1024);
}

nlohmann::json status_json(const api::AgentStatus& s) {
  nlohmann::json peers = nlohmann::json::array();
  for (const auto& p : s.peers)
    peers.push_back({{"peer_id", p.peer_id},
                     {"addrs", p.addrs},
                     {"topics", p.topics},
                     {"mesh_topics", p.mesh_topics},
                     {"score", p.score},
                     {"agent_version", p.agent_version}});
  nlohmann::json topics = nlohmann::json::array();
  for (const auto& t : s.topic_status) {
    nlohmann::json origins = nlohmann::json::array();
    for (const auto& o : t.origins)
      origins.push_back({{"origin", o.origin}, {"delivered_seqno", o.delivered_seqno}});
    topics.push_back({{"topic", t.topic},
                      {"published_seqno", t.published_seqno},
                      {"origins", origins},
                      {"gaps", t.gaps},
                      {"synced_messages", t.synced_messages}});
  }
  nlohmann::json archives = nlohmann::json::array();
  for (const auto& a : s.archives)
    archives.push_back({{"peer_id", a.peer_id}, {"addrs", a.addrs}, {"source", a.source}});
  return {{"peer_id", s.peer_id},
          {"listen_addrs", s.listen_addrs},
          {"topics", s.topics},
          {"peers", peers},
          {"topic_status", topics},
          {"archives", archives},
          {"sync",
           {{"fetches", s.sync.fetches},
            {"fetched_messages", s.sync.fetched_messages},
            {"fetch_failures", s.sync.fetch_failures},
            {"served_requests", s.sync.served_requests},
            {"served_messages", s.sync.served_messages},
            {"archive_role", s.sync.archive_role},
            {"archived_messages", s.sync.archived_messages}}},
          {"dht_mode", s.dht_mode},
          {"dht_table_size", s.dht_table_size},
          {"connected_peers", s.connected_peers}};
}

namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

metrics::HttpLimits http_limits(const agent::MetricsConfig& c) {
  return {c.max_connections, c.max_request_bytes, c.request_timeout};
}

}  // namespace

AgentHttp::AgentHttp(asio::any_io_executor ex, const agent::MetricsConfig& config,
                     std::vector<const metrics::Probe*> probes,
                     std::function<api::AgentStatus()> status, std::string agent_version)
    : config_(config),
      probes_(std::move(probes)),
      status_(std::move(status)),
      agent_version_(std::move(agent_version)),
      history_({"p2pmq_pubsub_published_messages_total", "p2pmq_pubsub_delivered_messages_total"},
               config.history_samples, config.history_topics),
      sample_timer_(ex),
      server_(ex, http_limits(config), [this](const std::string& path) { return handle(path); }) {}

Result<void> AgentHttp::start() {
  if (auto r = server_.start(config_.address); !r) return r;
  history_.sample(unix_now(), metrics::collect_all(probes_));
  schedule_sample();
  return {};
}

void AgentHttp::stop() {
  sample_timer_.cancel();
  server_.stop();
}

void AgentHttp::schedule_sample() {
  sample_timer_.expires_after(config_.sample_interval);
  sample_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    history_.sample(unix_now(), metrics::collect_all(probes_));
    schedule_sample();
  });
}

metrics::HttpResponse AgentHttp::handle(const std::string& path) {
  if (path == "/metrics")
    return {200, "text/plain; version=0.0.4; charset=utf-8", metrics::collect_all(probes_).text()};
  if (path == "/status.json") {
    nlohmann::json j{
        {"agent_version", agent_version_},
        {"time", unix_now()},
        {"sample_interval_seconds", std::chrono::duration<double>(config_.sample_interval).count()},
        {"status", status_json(status_())},
        {"metrics", metrics::collect_all(probes_).json()},
        {"history", history_.json()}};
    return {200, "application/json",
            j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
  }
  if (path == "/" || path == "/index.html")
    return {200, "text/html; charset=utf-8", kStatusPageHtml};
  return {404, "text/plain; charset=utf-8", "not found: try /, /metrics or /status.json\n"};
}

}  // namespace p2pmq::cli
