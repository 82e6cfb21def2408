#pragma once
// The agent's HTTP listener (metrics.address): /metrics for Prometheus, / (the status page) and
// /status.json (what the page polls). Everything is read from the modules' probes and from
// AgentBackend::status_now(), the assembly `p2pmq status` uses, at request time on the io thread.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/config.hpp"
#include "api/backend.hpp"
#include "host/asio.hpp"
#include "metrics/collector.hpp"
#include "metrics/http_server.hpp"
#include "metrics/rate_history.hpp"

namespace p2pmq::api {
class ApiServer;
class ValidationClient;
}  // namespace p2pmq::api

namespace p2pmq::cli {

class AgentBackend;
class SyncAgent;

// The gRPC side: Listen streams, their missed messages, held messages, external validation.
class ApiProbe : public metrics::Probe {
 public:
  ApiProbe(const AgentBackend& backend, const std::unique_ptr<api::ApiServer>& server,
           const std::unique_ptr<api::ValidationClient>& validation)
      : backend_(backend), server_(server), validation_(validation) {}
  void collect(metrics::Collector& out) const override;

 private:
  const AgentBackend& backend_;
  const std::unique_ptr<api::ApiServer>& server_;  // null: grpc.address off
  const std::unique_ptr<api::ValidationClient>& validation_;
};

// Catch-up and ordered delivery (SyncAgent and its delivery tracker).
class SyncAgentProbe : public metrics::Probe {
 public:
  explicit SyncAgentProbe(const SyncAgent& sync) : sync_(sync) {}
  void collect(metrics::Collector& out) const override;

 private:
  const SyncAgent& sync_;
};

// The agent process: CPU time and peak RSS.
class ProcessProbe : public metrics::Probe {
 public:
  void collect(metrics::Collector& out) const override;
};

// AgentStatus as the page reads it (the field names of the gRPC Status answer).
nlohmann::json status_json(const api::AgentStatus& s);

class AgentHttp {
 public:
  AgentHttp(host::asio::any_io_executor ex, const agent::MetricsConfig& config,
            std::vector<const metrics::Probe*> probes, std::function<api::AgentStatus()> status,
            std::string agent_version);
  // Binds metrics.address and starts sampling the chart's history.
  Result<void> start();
  std::string bound_address() const { return server_.bound_address(); }
  void stop();

 private:
  metrics::HttpResponse handle(const std::string& path);
  void schedule_sample();

  agent::MetricsConfig config_;
  std::vector<const metrics::Probe*> probes_;
  std::function<api::AgentStatus()> status_;
  std::string agent_version_;
  metrics::RateHistory history_;
  host::asio::steady_timer sample_timer_;
  metrics::HttpServer server_;
};

// The page (plain HTML, inline script and SVG; no external assets).
extern const char* const kStatusPageHtml;

}  // namespace p2pmq::cli
