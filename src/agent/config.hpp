#pragma once
// The agent's YAML configuration (docs/configuration.md is the key reference; config/ has
// examples). Loading is strict: unknown keys at any depth, wrong types, malformed values and
// inconsistent values are refused with the key's full path, e.g.
//   "gossip.D_lo: must be <= D (6), got 7 (line 4)"
//   "grpc.adress: unknown key (did you mean grpc.address?) (line 9)"
//
// This library depends on core and pubsub only (no Asio, no gRPC). The host, API and validation
// settings are plain mirrors of host::HostConfig, api::ApiConfig and api::ValidationConfig; the
// apply_*() templates at the end copy them over, so the mapping lives next to the fields.
//
// Command-line flags are applied on top of the file with apply_override() (same key paths, same
// parsing, same messages), then validate_config() checks the result as a whole:
//   AgentConfig cfg = path ? TRY(load_config(path)) : AgentConfig{};
//   apply_override(cfg, "listen", listen_flags);          // --listen (repeatable)
//   apply_override(cfg, "grpc.address", grpc_flag);       // --grpc
//   apply_override(cfg, "gossip.D=8");                    // --gossip D=8 (prefix "gossip.")
//   validate_config(cfg);
#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/multiaddr.hpp"
#include "core/result.hpp"
#include "host/resource_manager.hpp"
#include "pubsub/router.hpp"
#include "pubsub/score.hpp"

namespace p2pmq::agent {

enum class Role { agent, archive, bootstrapper };
const char* role_name(Role role);

// host::HostConfig (and its UpgradeConfig / yamux::Config) limits, by the same names where the
// host has them. Defaults are the host's.
struct LimitsConfig {
  size_t max_inbound_connections = 256;                  // HostConfig::max_inbound_connections
  size_t max_outbound_connections = 256;                 // HostConfig::max_outbound_connections
  size_t max_pending_dials = 64;                         // HostConfig::max_pending_dials
  size_t max_connections_per_peer = 2;                   // HostConfig::max_connections_per_peer
  size_t max_streams_per_connection = 1024;              // HostConfig::upgrade.yamux.max_streams
  size_t max_negotiating_streams = 128;                  // HostConfig::max_negotiating_streams
  std::chrono::milliseconds handshake_timeout{15000};    // HostConfig::upgrade.timeout
  std::chrono::milliseconds dial_timeout{10000};         // HostConfig::dial_timeout
  std::chrono::milliseconds negotiation_timeout{10000};  // HostConfig::negotiation_timeout
};

// The resource manager's limits (host::ResourceLimits, same names) and the host's related
// bounds (the `resources:` section).
struct ResourcesConfig {
  host::ResourceLimits limits;
  std::chrono::milliseconds write_timeout{10000};      // HostConfig::write_timeout
  std::chrono::milliseconds stall_timeout{20000};      // pubsub::ServiceConfig::write_stall_timeout
  size_t max_peer_store_peers = 10000;                 // HostConfig::max_peer_store_peers
  size_t max_addrs_per_peer = 32;                      // HostConfig::max_addrs_per_peer
  std::chrono::milliseconds address_ttl{3600 * 1000};  // HostConfig::address_ttl
  size_t max_session_output = 1 << 20;                 // HostConfig::upgrade.yamux.max_output
  size_t max_pending_pongs = 16;  // HostConfig::upgrade.yamux.max_pending_pongs
};

// Per-topic overrides (the `topics:` section). Unset fields take the gossip-wide value.
struct TopicConfig {
  std::optional<pubsub::MessageIdFn> message_id_fn;
  std::optional<size_t> max_message_size;
  std::optional<std::chrono::milliseconds> validation_timeout;
};

// api::ValidationConfig plus the validator endpoints.
struct ValidationSettings {
  enum class Policy { ignore, accept };
  std::vector<std::string> endpoints;  // host:port (or unix:path) of MsgValidation servers
  std::chrono::milliseconds timeout{5000};
  Policy no_validator_policy = Policy::ignore;
  // Messages awaiting a verdict: all together, their bytes, and from one peer. Beyond any of
  // them a message gets IGNORE at once, never the no_validator_policy.
  size_t max_pending = 4096;
  size_t max_pending_bytes = 64 << 20;
  size_t max_pending_per_peer = 512;
};

// api::ApiConfig. The address is loopback: exposing the API is a deliberate choice.
struct GrpcConfig {
  std::string address = "127.0.0.1:5050";
  std::string tls_cert;  // PEM; with tls_key the server speaks TLS only
  std::string tls_key;
  std::string tls_client_ca;  // PEM; clients must present a certificate it signed (mTLS)
  size_t max_listen_streams = 1024;
  // Messages held for subscribed topics without a Listen stream, all topics together.
  size_t max_held_bytes = 64 << 20;
  // Listen buffers: one stream's, and all streams' together (each stream gets at most an equal
  // share of the total while it is full).
  size_t max_listen_buffer_bytes = 16 << 20;
  size_t max_listen_total_bytes = 64 << 20;
  // Publish payloads accepted but not yet handed to the router; beyond: RESOURCE_EXHAUSTED.
  size_t max_pending_publish_bytes = 64 << 20;
  // Topics the agent has joined; a Subscribe, Publish or Listen that would join one more is
  // refused with RESOURCE_EXHAUSTED.
  size_t max_topics = 1024;
  // Serve without TLS on an address other than loopback (anyone who reaches it can publish).
  bool allow_insecure_remote = false;
};

// dht::DhtConfig plus discovery. Mode follows the roles unless set: bootstrapper role ->
// bootstrapper, otherwise server.
struct DhtSettings {
  enum class Mode { automatic, client, server, bootstrapper };
  Mode mode = Mode::automatic;
  std::string protocol_prefix = "/p2pmq";  // "/ipfs" joins the public DHTs
  size_t alpha = 10;
  size_t k = 20;
  size_t beta = 20;
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds query_timeout{60000};
  std::chrono::milliseconds bootstrap_interval{300000};
  std::chrono::milliseconds discovery_interval{10000};  // topic provider lookups while < D_lo
  bool mdns = false;  // multicast DNS on the local network (libp2p mDNS spec)
  // Provider records by the source of ADD_PROVIDER (hostile-peers finding 11): the IP the
  // announcement's connection comes from, and its /24 (IPv4) or /64 (IPv6).
  size_t providers_per_key_per_ip = 4;  // providers of one key from one IP
  size_t providers_per_key_per_subnet = 8;
  size_t provider_records_per_ip = 1000;  // records over all keys from one IP
  size_t provider_records_per_subnet = 2000;
  size_t provider_keys_per_ip = 500;  // keys holding a record from one IP
  size_t provider_keys_per_subnet = 1000;
  size_t max_provider_addrs = 8;  // addresses kept per provider record
  // Routing-table diversity (go-libp2p-kad-dht's peer-diversity filter): peers connecting from
  // one public IP group (/16 IPv4, legacy class-A /8, /32 IPv6) per bucket and per table.
  // 0: no limit.
  size_t max_peers_per_ip_group_per_bucket = 2;
  size_t max_peers_per_ip_group = 3;
};

// Connection manager: above high_water, close the least useful connections down to low_water;
// mesh peers, direct peers, bootstrappers in use and connections younger than grace are kept.
struct ConnManagerSettings {
  size_t low_water = 64;
  size_t high_water = 96;
  std::chrono::milliseconds grace{30000};
};

// The HTTP endpoint for Prometheus (/metrics) and the status page (/, /status.json). Off unless
// an address is set; loopback is the documented choice (the page shows peers and addresses).
struct MetricsConfig {
  std::string address;  // host:port; empty: off; port 0: chosen by the OS (printed at start)
  // Bounds against a hostile local client: connections at once, the size of a request head, and
  // the time to send a request and read the answer.
  size_t max_connections = 16;
  size_t max_request_bytes = 8192;
  std::chrono::milliseconds request_timeout{5000};
  // The status page's chart: per-topic counters sampled every interval, the last
  // history_samples kept (120 x 5 s: ten minutes), for at most history_topics topics.
  std::chrono::milliseconds sample_interval{5000};
  size_t history_samples = 120;
  size_t history_topics = 32;
};

// Sync (DESIGN.md §5): archives, gap handling, ordered delivery, retention of the archive role.
struct SyncSettings {
  std::vector<Multiaddr> archives;  // static archives, each with /p2p/<peer id>
  std::chrono::milliseconds gap_wait{2000};
  std::chrono::milliseconds fetch_retry{5000};
  std::chrono::milliseconds gap_give_up{30000};
  std::chrono::milliseconds request_timeout{10000};
  uint64_t retention_messages = 10000;    // archive role, per topic
  std::chrono::seconds retention_age{0};  // 0: no age bound
  enum class Durability { process_crash, power_loss };
  Durability durability = Durability::process_crash;
  bool catch_up_on_start = true;
  // Hostile-peer bounds (docs/security.md, "Sync and DHT").
  // Archive role: reading a request and writing its whole answer must fit in this, from the
  // request's first byte (a deadline, not an idle timer: a trickling peer loses the stream).
  std::chrono::milliseconds inbound_request_timeout{20000};
  uint64_t max_gap_fetch = 10000;            // seqnos fetched for one jump; below: a gap at once
  size_t max_fetches_per_topic = 4;          // gap fetches in flight per topic
  size_t max_fetches = 32;                   // gap fetches in flight in total
  double archive_requests_per_second = 1.0;  // archive role: per requesting peer
  double archive_burst = 20.0;               // per requesting peer
  double archive_total_requests_per_second = 50.0;  // archive role: over all peers
  double archive_total_burst = 200.0;
  size_t max_tracked_origins = 10000;                 // (topic, origin) delivery streams tracked
  size_t max_retired_watermarks = 100000;             // watermarks of evicted streams kept
  double new_origins_per_second = 10.0;               // per topic
  double new_origin_burst = 1000.0;                   // per topic
  uint64_t retention_messages_per_origin = 5000;      // archive role: per topic and origin
  size_t max_pending_store_bytes = size_t{64} << 20;  // archive role: write queue, bytes
  // Archive role: the topics kept, besides --topic: names, or glob patterns ('*', '?') matched
  // against the topics peers announce ("*": every topic seen).
  std::vector<std::string> archive_topics;
  // Archive role: topics adopted through archive_topics patterns; any peer can announce topics.
  size_t max_archive_topics = 1000;
};

// The event trace (trace.file): gossipsub events as NDJSON, size-bounded and rotated.
struct TraceSettings {
  std::string file;                         // empty: no trace
  uint64_t max_bytes = uint64_t{64} << 20;  // one file; then it is rotated
  size_t files = 4;                         // kept, the current one included
  size_t max_pending_events = 65536;        // queued for the writer thread; beyond: dropped
};

struct AgentConfig {
  std::string key_file;  // identity.key_file; empty: <data_dir>/identity.key (key_file_path())
  std::string data_dir = "./p2pmq-data";
  // Loopback and an OS-chosen port unless configured: an agent is not reachable from other
  // machines by accident.
  std::vector<Multiaddr> listen = {Multiaddr::from_ip_tcp("127.0.0.1", 0)};
  std::vector<Multiaddr> bootstrap;  // each with /p2p/<peer id>
  std::vector<Role> roles = {Role::agent};
  LimitsConfig limits;
  ResourcesConfig resources;
  // Gossip-wide parameters. The per-topic maps and direct_peers of this struct are left empty:
  // router_config() fills them from `topics` and `direct_peers`.
  pubsub::GossipsubConfig gossip;
  std::vector<Multiaddr> direct_peers;  // gossip.direct_peers, each with /p2p/<peer id>
  // gossip.seed: unset in production (every RNG seeded from the OS, so peer selection cannot be
  // predicted); tests and the simulator pin it. `gossip.seed` of this struct is not used.
  std::optional<uint64_t> gossip_seed;
  pubsub::PeerScoreParams score;
  pubsub::PeerScoreThresholds thresholds;
  std::map<std::string, TopicConfig> topics;
  ValidationSettings validation;
  GrpcConfig grpc;
  DhtSettings dht;
  ConnManagerSettings connmgr;
  SyncSettings sync;
  TraceSettings trace;
  MetricsConfig metrics;
  std::string log_level = "info";  // trace|debug|info|warn|error|critical|off (spdlog names)

  std::string key_file_path() const;
  bool has_role(Role role) const;
  // `gossip` with the per-topic overrides of `topics`, the direct peers' ids and the seed
  // (gossip_seed, else drawn from the OS on each call).
  pubsub::GossipsubConfig router_config() const;
  // A seed for one of the agent's RNGs (`stream` tells them apart: DHT, discovery...): from
  // gossip_seed when pinned, else from the OS (getrandom).
  uint64_t rng_seed(uint64_t stream) const;
  // Validation timeout for a topic: its override, else validation.timeout.
  std::chrono::milliseconds validation_timeout(const std::string& topic) const;
};

// Reads and parses a file; errors start with the path ("agent.yaml: gossip.D: ...").
Result<AgentConfig> load_config(const std::string& path);
// Parses YAML text over the defaults and validates the result. An empty document is the
// defaults.
Result<AgentConfig> parse_config(std::string_view yaml_text);

// Sets one key by its full path, as if the file had `key: value` (lists take one element per
// value; a topic name may contain dots: "topics.a.b.max_message_size" is topic "a.b"). Checks the
// value itself; call validate_config() once all overrides are in.
Result<void> apply_override(AgentConfig& config, std::string_view key, std::string_view value);
Result<void> apply_override(AgentConfig& config, std::string_view key,
                            const std::vector<std::string>& values);
// "key=value".
Result<void> apply_override(AgentConfig& config, std::string_view assignment);

// The checks across keys and the value ranges (gossip degrees, score parameters, threshold
// order, TLS file pairs...). parse_config and load_config already ran it.
Result<void> validate_config(const AgentConfig& config);

// Every key as YAML, with its effective value (`p2pmq agent --print-config`). parse_config of
// the output gives the same configuration.
std::string dump_config(const AgentConfig& config);

// Every key's full path; "<topic>" stands for a topic name.
std::vector<std::string> config_keys();

// ---- Mapping onto the runtime configs (templates: this library does not link host or api) ----

// host::HostConfig.
template <class HostConfig>
void apply_limits(const LimitsConfig& l, HostConfig& h) {
  h.max_inbound_connections = l.max_inbound_connections;
  h.max_outbound_connections = l.max_outbound_connections;
  h.max_pending_dials = l.max_pending_dials;
  h.max_connections_per_peer = l.max_connections_per_peer;
  h.max_negotiating_streams = l.max_negotiating_streams;
  h.dial_timeout = l.dial_timeout;
  h.negotiation_timeout = l.negotiation_timeout;
  h.upgrade.timeout = l.handshake_timeout;
  h.upgrade.yamux.max_streams = l.max_streams_per_connection;
}

// host::HostConfig, the resource manager part.
template <class HostConfig>
void apply_resources(const ResourcesConfig& r, HostConfig& h) {
  h.resources = r.limits;
  h.write_timeout = r.write_timeout;
  h.max_peer_store_peers = r.max_peer_store_peers;
  h.max_addrs_per_peer = r.max_addrs_per_peer;
  h.address_ttl = r.address_ttl;
  h.upgrade.yamux.max_output = r.max_session_output;
  h.upgrade.yamux.max_pending_pongs = r.max_pending_pongs;
}

// api::ApiConfig.
template <class ApiConfig>
void apply_grpc(const GrpcConfig& g, ApiConfig& a) {
  a.address = g.address;
  a.tls_cert_file = g.tls_cert;
  a.tls_key_file = g.tls_key;
  a.tls_client_ca_file = g.tls_client_ca;
  a.max_listen_streams = g.max_listen_streams;
  a.max_listen_buffer_bytes = g.max_listen_buffer_bytes;
  a.max_listen_total_bytes = g.max_listen_total_bytes;
  a.max_pending_publish_bytes = g.max_pending_publish_bytes;
  a.allow_insecure_remote = g.allow_insecure_remote;
}

// api::ValidationConfig (the endpoints go to the ValidationClient constructor).
template <class ValidationConfig>
void apply_validation(const ValidationSettings& v, ValidationConfig& c) {
  c.timeout = v.timeout;
  c.no_validator_policy = v.no_validator_policy == ValidationSettings::Policy::accept
                              ? ValidationConfig::Policy::accept
                              : ValidationConfig::Policy::ignore;
  c.max_pending = v.max_pending;
  c.max_pending_bytes = v.max_pending_bytes;
  c.max_pending_per_peer = v.max_pending_per_peer;
}

}  // namespace p2pmq::agent
