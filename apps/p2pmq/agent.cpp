#include "agent.hpp"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "agent/key_file.hpp"
#include "agent/log_limiter.hpp"
#include "agent/memory_trim.hpp"
#include "agent/state.hpp"
#include "agent/sync_batcher.hpp"
#include "agent/trace_writer.hpp"
#include "agent_backend.hpp"
#include "agent_http.hpp"
#include "api/server.hpp"
#include "api/validation_client.hpp"
#include "dht/io/dht_service.hpp"
#include "discovery.hpp"
#include "host/host.hpp"
#include "json_seqno.hpp"
#include "mdns/io/mdns_service.hpp"
#include "metrics/probes.hpp"
#include "protocols/echo.hpp"
#include "protocols/identify.hpp"
#include "protocols/perf.hpp"
#include "protocols/ping.hpp"
#include "pubsub/io/gossipsub_service.hpp"
#include "pubsub/params.hpp"
#include "sync/archive_topics.hpp"
#include "sync/store/archive_store.hpp"
#include "sync_agent.hpp"

namespace p2pmq::cli {

namespace asio = host::asio;
using host::Task;

namespace {

std::string hex(BytesView b) {
  return to_hex(b);
}

void emit(const nlohmann::json& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

// The resource manager's non-idle scopes, for `p2pmq status` and the stdio `resources`.
std::vector<api::ResourceScopeStatus> resource_status(const host::Host& host) {
  std::vector<api::ResourceScopeStatus> out;
  for (const auto& u : host.resource_usage())
    out.push_back({u.name, u.memory, u.limits.memory, u.streams_inbound + u.streams_outbound,
                   u.limits.streams, u.connections_inbound + u.connections_outbound,
                   u.limits.connections, u.fds});
  return out;
}

// Commands on stdin, one per line; answers and messages as JSON lines on stdout:
//   sub T | unsub T | pub T DATA... | connect MULTIADDR | peers | mesh T | scores | stats |
//   resources
class StdioControl {
 public:
  StdioControl(host::Host& host, pubsub::GossipsubService& gossip, dht::DhtService& dht,
               Discovery& discovery, AgentBackend& backend)
      : host_(host), gossip_(gossip), dht_(dht), discovery_(discovery), backend_(backend) {}

  Task<void> run(std::function<void()> on_eof) {
    asio::posix::stream_descriptor in(host_.executor(), ::dup(STDIN_FILENO));
    asio::streambuf buffer(1 << 20);  // a line longer than 1 MiB ends the control channel
    for (;;) {
      boost::system::error_code ec;
      size_t n = co_await asio::async_read_until(in, buffer, '\n',
                                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      std::string line(asio::buffers_begin(buffer.data()),
                       asio::buffers_begin(buffer.data()) + static_cast<ptrdiff_t>(n));
      buffer.consume(n);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      co_await handle(line);
    }
    on_eof();
  }

 private:
  Task<void> handle(const std::string& line) {
    std::istringstream words(line);
    std::string cmd, arg;
    words >> cmd >> arg;
    if (cmd.empty()) co_return;
    if (cmd == "sub" && !arg.empty()) {
      backend_.subscribe(arg, [this, arg](Result<void>) {
        discovery_.poke();
        emit({{"event", "subscribed"}, {"topic", arg}});
      });
    } else if (cmd == "unsub" && !arg.empty()) {
      backend_.unsubscribe(arg, [arg](Result<void>) {
        emit({{"event", "unsubscribed"}, {"topic", arg}});
      });
    } else if ((cmd == "block" || cmd == "unblock") && !arg.empty()) {
      // Test and operator tool: a connection gater (see Host::block).
      auto peer = crypto::PeerId::parse(arg);
      if (!peer) {
        emit({{"event", "error"}, {"message", cmd + ": " + peer.error().message}});
        co_return;
      }
      if (cmd == "block")
        host_.block(*peer);
      else
        host_.unblock(*peer);
      emit({{"event", cmd == "block" ? "blocked" : "unblocked"}, {"peer", arg}});
    } else if (cmd == "pub" && !arg.empty()) {
      // The data is the rest of the line after "pub TOPIC ".
      size_t start = line.find(arg, 3) + arg.size();
      std::string data = start < line.size() ? line.substr(start + 1) : std::string();
      // Through the backend: the same persisted counter as gRPC publications.
      backend_.publish(arg, to_bytes(data), [arg](Result<api::PublishResult> r) {
        if (!r)
          emit({{"event", "error"}, {"message", "pub " + arg + ": " + r.error().to_string()}});
        else
          emit({{"event", "published"},
                {"topic", arg},
                {"seqno", json_seqno(r->seqno)},
                {"id", hex(r->id)}});
      });
    } else if (cmd == "connect" && !arg.empty()) {
      auto addr = Multiaddr::parse(arg);
      if (!addr) {
        emit({{"event", "error"}, {"message", "connect: " + addr.error().message}});
        co_return;
      }
      auto conn = co_await host_.connect(*addr);
      if (!conn)
        emit({{"event", "error"}, {"message", "connect " + arg + ": " + conn.error().to_string()}});
      else
        emit({{"event", "connected"}, {"peer", (*conn)->remote_peer().to_string()}});
    } else if (cmd == "peers") {
      std::vector<std::string> peers;
      for (const auto& p : gossip_.router().peers()) peers.push_back(p.to_string());
      emit({{"event", "peers"},
            {"peers", peers},
            {"connections", host_.connections().size()},
            {"trimmed", discovery_.stats().trimmed}});
    } else if (cmd == "mesh" && !arg.empty()) {
      std::vector<std::string> peers;
      for (const auto& p : gossip_.router().mesh(arg)) peers.push_back(p.to_string());
      emit({{"event", "mesh"}, {"topic", arg}, {"peers", peers}});
    } else if (cmd == "scores") {
      // What the reference peers answer too (tests/interop/README.md): the router's score of
      // every pubsub peer, to check that no honest peer of another implementation goes negative.
      nlohmann::json scores = nlohmann::json::object();
      auto now = pubsub::Clock::now();
      for (const auto& p : gossip_.router().peers())
        scores[p.to_string()] = gossip_.router().score(p, now);
      emit({{"event", "scores"}, {"scores", scores}});
    } else if (cmd == "stats") {
      const auto& c = gossip_.router().counters();
      rusage usage{};
      ::getrusage(RUSAGE_SELF, &usage);
      auto ms = [](const timeval& t) { return t.tv_sec * 1000 + t.tv_usec / 1000; };
      emit({{"event", "stats"},
            {"cpu_ms", ms(usage.ru_utime) + ms(usage.ru_stime)},
            {"max_rss_kb", usage.ru_maxrss},
            {"published", c.published},
            {"received", c.delivered - c.published},
            {"duplicates", c.duplicates},
            {"ihave_sent", c.ihave_sent},
            {"iwant_served", c.iwant_served},
            {"iwant_asked", c.iwant_asked},
            {"ihave_received", c.ihave_received},
            {"throttled", c.throttled},
            {"rejected", c.rejected},
            {"broken_promises", c.broken_promises},
            {"truncated_items", gossip_.truncated_items()}});
    } else if (cmd == "resources") {
      nlohmann::json scopes = nlohmann::json::array();
      for (const auto& r : resource_status(host_))
        scopes.push_back({{"scope", r.name},
                          {"memory", r.memory},
                          {"memory_limit", r.memory_limit},
                          {"streams", r.streams},
                          {"streams_limit", r.streams_limit},
                          {"connections", r.connections},
                          {"connections_limit", r.connections_limit},
                          {"fds", r.fds}});
      emit({{"event", "resources"}, {"scopes", scopes}});
    } else if (cmd.starts_with("dht-")) {
      co_await handle_dht(cmd, arg);
    } else {
      emit({{"event", "error"}, {"message", "unknown command: " + line}});
    }
  }

  static nlohmann::json peer_json(const dht::KadPeer& p) {
    std::vector<std::string> addrs;
    for (const auto& a : p.addrs) addrs.push_back(a.to_string());
    return {{"peer", p.id.to_string()}, {"addrs", addrs}};
  }

  Task<void> handle_dht(const std::string& cmd, const std::string& arg) {
    if (cmd == "dht-table") {
      std::vector<std::string> peers;
      const auto& table = dht_.core().table();
      for (size_t i = 0; i < dht::RoutingTable::kBuckets; ++i)
        for (const auto& e : table.bucket(i)) peers.push_back(e.id.to_string());
      emit({{"event", "dht-table"}, {"peers", peers}});
    } else if (cmd == "dht-find-peer" && !arg.empty()) {
      auto peer = crypto::PeerId::parse(arg);
      if (!peer) {
        emit({{"event", "error"}, {"message", "dht-find-peer: " + peer.error().message}});
        co_return;
      }
      auto found = co_await dht_.find_peer(*peer);
      nlohmann::json j = found ? peer_json(*found) : nlohmann::json{{"peer", arg}};
      j["event"] = "dht-peer";
      j["found"] = found.has_value();
      if (!found) j["addrs"] = std::vector<std::string>{};
      emit(j);
    } else if (cmd == "dht-provide-topic" && !arg.empty()) {
      size_t sent = co_await dht_.provide(dht::topic_key(arg));
      emit({{"event", "dht-provided"}, {"topic", arg}, {"peers", sent}});
    } else if (cmd == "dht-find-topic" && !arg.empty()) {
      auto providers = co_await dht_.find_providers(dht::topic_key(arg), 0);
      std::vector<nlohmann::json> list;
      for (const auto& p : providers) list.push_back(peer_json(p));
      emit({{"event", "dht-providers"}, {"topic", arg}, {"providers", list}});
    } else {
      emit({{"event", "error"}, {"message", "unknown command: " + cmd + " " + arg}});
    }
  }

  host::Host& host_;
  pubsub::GossipsubService& gossip_;
  dht::DhtService& dht_;
  Discovery& discovery_;
  AgentBackend& backend_;
};

}  // namespace

namespace {

Result<crypto::PrivateKey> load_or_create_identity(const std::string& path) {
  bool created = false;
  auto key = agent::load_or_create_key_file(path, created);
  if (key && created) spdlog::info("created identity {}", path);
  return key;
}

}  // namespace

dht::DhtConfig dht_config(const agent::AgentConfig& cfg) {
  dht::DhtConfig c;
  using M = agent::DhtSettings::Mode;
  switch (cfg.dht.mode) {
    case M::automatic:
      c.mode =
          cfg.has_role(agent::Role::bootstrapper) ? dht::Mode::bootstrapper : dht::Mode::server;
      break;
    case M::client:
      c.mode = dht::Mode::client;
      break;
    case M::server:
      c.mode = dht::Mode::server;
      break;
    case M::bootstrapper:
      c.mode = dht::Mode::bootstrapper;
      break;
  }
  c.protocol_prefix = cfg.dht.protocol_prefix;
  c.seed = cfg.rng_seed(1);  // random refresh keys: from the OS unless a test pins gossip.seed
  c.query.alpha = cfg.dht.alpha;
  c.query.k = cfg.dht.k;
  c.table.k = cfg.dht.k;
  c.query.beta = cfg.dht.beta;
  c.query.request_timeout = cfg.dht.request_timeout;
  c.providers.max_returned = cfg.dht.k;
  c.providers.max_providers_per_key_per_ip = cfg.dht.providers_per_key_per_ip;
  c.providers.max_providers_per_key_per_subnet = cfg.dht.providers_per_key_per_subnet;
  c.providers.max_records_per_ip = cfg.dht.provider_records_per_ip;
  c.providers.max_records_per_subnet = cfg.dht.provider_records_per_subnet;
  c.providers.max_keys_per_ip = cfg.dht.provider_keys_per_ip;
  c.providers.max_keys_per_subnet = cfg.dht.provider_keys_per_subnet;
  c.providers.max_addrs_per_record = cfg.dht.max_provider_addrs;
  c.table.max_peers_per_ip_group_per_bucket = cfg.dht.max_peers_per_ip_group_per_bucket;
  c.table.max_peers_per_ip_group = cfg.dht.max_peers_per_ip_group;
  c.query.query_timeout = cfg.dht.query_timeout;
  c.bootstrap_interval = cfg.dht.bootstrap_interval;
  c.query.max_candidates = std::max(c.query.max_candidates, c.query.k);
  return c;
}

int run_agent(AgentOptions options) {
  const auto& cfg = options.config;
  if (!options.log_level_from_cli) spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  auto key = options.ephemeral_identity ? Result<crypto::PrivateKey>(crypto::PrivateKey::generate())
                                        : load_or_create_identity(cfg.key_file_path());
  if (!key) {
    std::cerr << "error: " << key.error().message << std::endl;
    return 2;
  }
  host::HostConfig config;
  config.listen = cfg.listen;
  agent::apply_limits(cfg.limits, config);
  agent::apply_resources(cfg.resources, config);
  pubsub::GossipsubConfig gossip_config = cfg.router_config();
  const auto& bootstrap = cfg.bootstrap;

  asio::io_context io;
  host::Host node(io, *key, config);
  protocols::Identify identify(node, options.agent_version);
  protocols::Ping ping(node);
  if (options.echo) protocols::serve_echo(node);
  if (options.perf) protocols::serve_perf(node);
  // Topics without their own score parameters are scored with the defaults, so a validator's
  // REJECT always counts against the peer that sent the message (P4).
  auto score_params = cfg.score;
  if (!score_params.default_topic) score_params.default_topic = pubsub::TopicScoreParams{};
  pubsub::ServiceConfig gossip_service;
  gossip_service.write_stall_timeout = cfg.resources.stall_timeout;
  for (const auto& addr : cfg.direct_peers)
    if (auto mh = addr.p2p())
      if (auto id = crypto::PeerId::from_bytes(*mh))
        gossip_service.direct_peer_addrs[*id].push_back(addr);
  pubsub::GossipsubService gossip(node, gossip_config, score_params, cfg.thresholds,
                                  gossip_service);
  // Event trace (trace.file): the router's events as NDJSON lines, stamped and formatted here,
  // written to disk by the writer's own thread (dropped and counted when it falls behind).
  std::unique_ptr<agent::TraceWriter> tracer;
  if (!cfg.trace.file.empty()) {
    auto opened = agent::TraceWriter::open(
        {cfg.trace.file, cfg.trace.max_bytes, cfg.trace.files, cfg.trace.max_pending_events});
    if (!opened) {
      std::cerr << "error: " << opened.error().message << std::endl;
      return 1;
    }
    tracer = std::move(*opened);
    gossip.router().set_trace_sink([&tracer, self = node.peer_id()](pubsub::TraceEvent e) {
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
      tracer->push(pubsub::trace_json(e, self, static_cast<int64_t>(ns)));
    });
  }
  api::HoldConfig hold;
  hold.max_bytes = cfg.grpc.max_held_bytes;
  AgentBackend backend(node, gossip, hold, cfg.grpc.max_topics);

  // Persisted state: the publish counters, delivered watermarks and subscriptions (only with a
  // data dir chosen by --config or --data-dir).
  std::unique_ptr<agent::StateStore> state;
  if (options.persistent_state) {
    if (options.repair_state) {
      if (auto r = agent::StateStore::repair(cfg.data_dir + "/state"); !r) {
        std::cerr << "error: " << r.error().message << std::endl;
        return 1;
      }
      spdlog::warn("state {}/state: repaired (records RocksDB could not read are gone)",
                   cfg.data_dir);
    }
    auto opened =
        agent::StateStore::open(cfg.data_dir + "/state",
                                cfg.sync.durability == agent::SyncSettings::Durability::power_loss);
    if (!opened) {
      std::cerr << "error: state " << cfg.data_dir << "/state: " << opened.error().message
                << std::endl;
      return 1;
    }
    state = std::move(*opened);
  }
  // power_loss: a publish's counter is fsynced before the seqno is used, on a worker thread and
  // shared by the publishes of a burst (declared after the store: stopped before it closes).
  std::unique_ptr<agent::SyncBatcher> durability;
  if (state && cfg.sync.durability == agent::SyncSettings::Durability::power_loss)
    durability = std::make_unique<agent::SyncBatcher>([&state] { return state->sync_wal(); });
  agent::LogLimiter state_errors;

  // Discovery: the DHT (bootstrappers, topic providers) and the connection manager.
  auto kad_config = dht_config(cfg);
  if (auto r = dht::validate(kad_config); !r) {
    std::cerr << "error: " << r.error().message << std::endl;
    return 2;
  }
  dht::DhtService kad(node, identify, kad_config, bootstrap);
  DiscoveryConfig dc;
  dc.interval = cfg.dht.discovery_interval;
  dc.advertise_topics = kad_config.mode != dht::Mode::bootstrapper;
  dc.advertise_archive = cfg.has_role(agent::Role::archive);
  dc.low_water = cfg.connmgr.low_water;
  dc.high_water = cfg.connmgr.high_water;
  dc.grace = cfg.connmgr.grace;
  Discovery discovery(node, kad, gossip, dc);
  // mDNS (off by default): peers on the local network, dialed when found.
  mdns::MdnsConfig mc;
  mc.enabled = cfg.dht.mdns;
  mdns::MdnsService local_discovery(node, mc);

  // External validation: every remote message, live or synced, waits for the parent's verdict.
  std::unique_ptr<api::ValidationClient> validation;
  std::function<void(const pubsub::DeliverMessage&, bool, std::function<void(pubsub::Verdict)>)>
      validate_externally;
  if (!cfg.validation.endpoints.empty()) {
    api::ValidationConfig vc;
    agent::apply_validation(cfg.validation, vc);
    validation = std::make_unique<api::ValidationClient>(cfg.validation.endpoints, vc);
    validate_externally = [&validation, ex = node.executor()](
                              const pubsub::DeliverMessage& d, bool synced,
                              std::function<void(pubsub::Verdict)> done) {
      validation->validate(
          AgentBackend::to_agent_message(d, synced),
          [ex, done = std::move(done)](api::Verdict verdict) {
            // Verdicts arrive on gRPC threads; the router lives on the io thread.
            asio::post(ex, [done, verdict] {
              done(verdict == api::Verdict::accept   ? pubsub::Verdict::accept
                   : verdict == api::Verdict::reject ? pubsub::Verdict::reject
                                                     : pubsub::Verdict::ignore);
            });
          },
          // Each peer gets its share of the pending validations (validation.max_pending_per_peer).
          d.received_from.to_string());
    };
    gossip.set_validator([&validate_externally](const pubsub::ValidateMessage& v,
                                                std::function<void(pubsub::Verdict)> done) {
      validate_externally(pubsub::DeliverMessage{v.id, v.message, v.received_from}, false,
                          std::move(done));
    });
  }

  // Sync: the archive (archive role), /p2pmq/sync/1.0.0, and the delivery tracker every message
  // goes through on its way to the listeners.
  // Without a data dir the archive is scratch space, removed at exit (after the store closes:
  // declared first, destroyed last).
  struct ScratchDir {
    std::string path;
    ~ScratchDir() {
      std::error_code ec;
      if (!path.empty()) std::filesystem::remove_all(path, ec);
    }
  } scratch;
  std::unique_ptr<sync::ArchiveStore> archive;
  if (cfg.has_role(agent::Role::archive)) {
    sync::ArchiveOptions ao;
    ao.durability = cfg.sync.durability == agent::SyncSettings::Durability::power_loss
                        ? sync::Durability::power_loss
                        : sync::Durability::process_crash;
    ao.retention.max_messages = cfg.sync.retention_messages;
    ao.retention.max_age = cfg.sync.retention_age;
    ao.retention.max_messages_per_origin = cfg.sync.retention_messages_per_origin;
    std::string path = !options.persistent_state
                           ? std::filesystem::temp_directory_path().string() + "/p2pmq-archive-" +
                                 node.peer_id().to_string()
                           : cfg.data_dir + "/archive";
    if (!options.persistent_state) scratch.path = path;
    auto opened = sync::ArchiveStore::open(path, ao);
    if (!opened) {
      std::cerr << "error: archive " << path << ": " << opened.error().message << std::endl;
      return 1;
    }
    archive = std::move(*opened);
  }
  sync::SyncServiceConfig sc;
  sc.request_timeout = cfg.sync.request_timeout;
  sc.inbound_request_timeout = cfg.sync.inbound_request_timeout;
  sc.max_pending_store_bytes = cfg.sync.max_pending_store_bytes;
  sc.server.requests_per_second = cfg.sync.archive_requests_per_second;
  sc.server.burst = cfg.sync.archive_burst;
  sc.server.total_requests_per_second = cfg.sync.archive_total_requests_per_second;
  sc.server.total_burst = cfg.sync.archive_total_burst;
  sync::SyncService syncer(node, archive.get(), sc);
  syncer.on_misbehaviour([&gossip](const crypto::PeerId& peer, const std::string& reason) {
    spdlog::info("sync: penalising {}: {}", peer.to_string(), reason);
    gossip.router().penalize(peer);
  });
  SyncAgentConfig sac;
  sac.delivery.gap_wait = cfg.sync.gap_wait;
  sac.delivery.fetch_retry = cfg.sync.fetch_retry;
  sac.delivery.gap_give_up = cfg.sync.gap_give_up;
  sac.delivery.fetch_history = true;  // an origin met mid-stream: its earlier messages too
  sac.delivery.max_gap_fetch = cfg.sync.max_gap_fetch;
  sac.delivery.max_streams = cfg.sync.max_tracked_origins;
  sac.delivery.max_retired = cfg.sync.max_retired_watermarks;
  sac.delivery.new_origins_per_second = cfg.sync.new_origins_per_second;
  sac.delivery.new_origin_burst = cfg.sync.new_origin_burst;
  sac.fetch_slots = {cfg.sync.max_fetches_per_topic, cfg.sync.max_fetches};
  sac.archives = cfg.sync.archives;
  sac.archive_role = archive != nullptr;
  sac.catch_up = cfg.sync.catch_up_on_start;
  SyncAgent::Hooks sh;
  sh.deliver = [&backend, &node, stdio = options.stdio](const pubsub::DeliverMessage& d,
                                                        bool synced) {
    backend.deliver(AgentBackend::to_agent_message(d, synced));
    // Our own publications are answered with "published", not echoed as messages.
    if (!stdio || (d.message.from && *d.message.from == node.peer_id().bytes())) return;
    nlohmann::json j{{"event", "message"},
                     {"topic", d.message.topic},
                     {"data", std::string(as_string(d.message.data))},
                     {"id", hex(d.id)},
                     {"synced", synced}};
    if (d.message.from) {
      auto from = crypto::PeerId::from_bytes(*d.message.from);
      j["from"] = from ? from->to_string() : hex(*d.message.from);
    }
    if (auto seqno = pubsub::seqno_value(d.message)) j["seqno"] = json_seqno(*seqno);
    emit(j);
  };
  sh.gap = [&backend, stdio = options.stdio](const sync::GapEvent& g) {
    auto origin = crypto::PeerId::from_bytes(g.origin);
    std::string who = origin ? origin->to_string() : hex(g.origin);
    backend.deliver_gap(api::GapNotice{g.topic, who, g.from, g.to});
    if (stdio)
      emit({{"event", "gap"},
            {"topic", g.topic},
            {"origin", who},
            {"from", json_seqno(g.from)},
            {"to", json_seqno(g.to)}});
  };
  if (validate_externally)
    sh.validate = [&validate_externally](const pubsub::DeliverMessage& d,
                                         std::function<void(pubsub::Verdict)> done) {
      validate_externally(d, true, std::move(done));
    };
  if (archive) {
    // put() applies retention to the topic it writes; age also expires topics nobody writes.
    sh.prune = [&syncer, &archive] {
      auto* store = archive.get();
      syncer.with_archive([store](sync::Archive&) {
        if (auto r = store->prune(sync::WallClock::now()); !r)
          spdlog::error("sync: archive retention: {}", r.error().to_string());
      });
    };
  }
  std::vector<sync::WatermarkEntry> watermarks;
  if (state) {
    sh.save_watermarks = [&state, &state_errors](const std::vector<sync::WatermarkEntry>& entries) {
      std::vector<agent::WatermarkRecord> records;
      for (const auto& e : entries) records.push_back({e.topic, e.origin, e.seqno});
      uint64_t held_back = 0;
      if (auto r = state->save_watermarks(records);
          !r && state_errors.allow(agent::LogLimiter::Clock::now(), held_back))
        spdlog::error("state: saving watermarks: {} ({} more state errors held back)",
                      r.error().to_string(), held_back);
    };
    for (const auto& w : state->load_watermarks())
      watermarks.push_back({w.topic, w.origin, w.seqno});
  }
  SyncAgent sync_agent(node, gossip, syncer, &discovery, sac, sh, std::move(watermarks));
  gossip.on_message([&sync_agent](const pubsub::DeliverMessage& d) { sync_agent.on_live(d); });
  {
    AgentBackend::Hooks bh;
    bh.own_delivery = true;
    bh.listeners_changed = [&sync_agent](const std::string& topic, size_t ordered) {
      sync_agent.on_listener(topic, ordered > 0);
    };
    if (state) {
      bh.topic_number = [&state](const std::string& topic) { return state->topic_number(topic); };
      bh.next_seqno = [&state, deferred = durability != nullptr](const std::string& topic) {
        return state->next_seqno(topic, deferred);
      };
      if (durability)
        bh.make_durable = [&durability,
                           ex = node.executor()](std::function<void(Result<void>)> done) {
          durability->request([ex, done = std::move(done)](Result<void> r) {
            asio::post(ex, [done, r] { done(r); });
          });
        };
      bh.rollback_seqno = [&state](const std::string& topic, uint64_t seqno) {
        (void)state->rollback_seqno(topic, seqno);
      };
      bh.subscription_changed = [&state, &state_errors](const std::string& topic, bool subscribed) {
        auto r = subscribed ? state->add_subscription(topic) : state->remove_subscription(topic);
        uint64_t held_back = 0;
        if (!r && state_errors.allow(agent::LogLimiter::Clock::now(), held_back))
          spdlog::error("state: subscription {}: {} ({} more state errors held back)", topic,
                        r.error().to_string(), held_back);
      };
    }
    backend.set_hooks(std::move(bh));
  }
  std::string metrics_address;  // as bound, once the metrics listener runs
  backend.set_status_extender([&](api::AgentStatus& s) {
    s.metrics_address = metrics_address;
    s.dht_mode = kad.core().mode() == dht::Mode::client   ? "client"
                 : kad.core().mode() == dht::Mode::server ? "server"
                                                          : "bootstrapper";
    s.dht_table_size = kad.core().table().size();
    s.resources = resource_status(node);
    std::map<std::string, std::vector<api::OriginWatermark>> marks;
    for (const auto& w : sync_agent.watermarks()) {
      auto origin = crypto::PeerId::from_bytes(w.origin);
      marks[w.topic].push_back({origin ? origin->to_string() : hex(w.origin), w.seqno});
    }
    for (auto& ts : s.topic_status) {
      ts.origins = marks[ts.topic];
      if (state) ts.published_seqno = state->last_seqno(ts.topic);
      auto counters = sync_agent.topic_counters(ts.topic);
      ts.synced_messages = counters.synced;
      ts.gaps = counters.gaps;
      for (const auto& a : sync_agent.archives(ts.topic)) {
        bool known =
            std::any_of(s.archives.begin(), s.archives.end(),
                        [&](const api::ArchiveInfo& i) { return i.peer_id == a.peer.to_string(); });
        if (known) continue;
        api::ArchiveInfo info;
        info.peer_id = a.peer.to_string();
        auto it = node.peer_store().find(a.peer);
        if (it != node.peer_store().end())
          for (const auto& addr : it->second.addrs) info.addrs.push_back(addr.to_string());
        info.source = archive_source_name(a.source);
        s.archives.push_back(std::move(info));
      }
    }
    const auto& st = sync_agent.stats();
    const auto& ss = syncer.stats();
    s.sync.fetches = ss.fetches;
    s.sync.fetched_messages = ss.fetched_messages;
    s.sync.fetch_failures = ss.fetch_failures;
    s.sync.served_requests = ss.requests_served;
    s.sync.served_messages = ss.messages_served;
    s.sync.archive_role = archive != nullptr;
    // What the store holds, not what this run stored: an archive restarted on its data dir
    // still serves everything it kept.
    s.sync.archived_messages = archive ? archive->total_size() : st.archived;
  });

  // Archive role: the topics it keeps (sync.archive_topics). Names are joined at start;
  // patterns adopt the topics peers announce, up to sync.max_archive_topics.
  sync::ArchiveTopics archive_topics(cfg.sync.archive_topics, cfg.sync.max_archive_topics);
  agent::LogLimiter archive_cap_warnings;
  if (archive && archive_topics.has_patterns()) {
    gossip.on_topic_announced([&](const crypto::PeerId& peer, const std::string& topic) {
      if (gossip.router().is_subscribed(topic)) return;  // kept already (--topic, a client)
      switch (archive_topics.offer(topic)) {
        case sync::ArchiveTopics::Offer::adopted:
          spdlog::info("archive: keeping topic {} (announced by {}; {} of {} adopted)", topic,
                       peer.to_string(), archive_topics.adopted(), cfg.sync.max_archive_topics);
          gossip.join(topic);
          discovery.poke();  // advertise it as an archive of the topic
          break;
        case sync::ArchiveTopics::Offer::over_cap: {
          uint64_t held_back = 0;
          if (archive_cap_warnings.allow(agent::LogLimiter::Clock::now(), held_back))
            spdlog::warn(
                "archive: not keeping topic {}: sync.max_archive_topics ({}) topics adopted "
                "already ({} more held back)",
                topic, cfg.sync.max_archive_topics, held_back);
          break;
        }
        case sync::ArchiveTopics::Offer::already_kept:
        case sync::ArchiveTopics::Offer::not_matching:
          break;
      }
    });
  }

  if (auto r = node.start(); !r) {
    std::cerr << "error: agent: " << r.error().to_string() << std::endl;
    return 1;
  }
  std::unique_ptr<api::ApiServer> api_server;
  if (cfg.grpc.address != "off") {
    api::ApiConfig ac;
    agent::apply_grpc(cfg.grpc, ac);
    api_server = std::make_unique<api::ApiServer>(backend, ac);
    if (auto r = api_server->start(); !r) {
      std::cerr << "error: grpc " << cfg.grpc.address << ": " << r.error().to_string() << std::endl;
      return 1;
    }
  }
  // Metrics and the status page (metrics.address; off when empty): a probe per module, read
  // at request time on this thread.
  metrics::HostProbe host_probe(node);
  metrics::GossipProbe gossip_probe(gossip);
  metrics::DhtProbe dht_probe(kad);
  metrics::SyncProbe sync_probe(syncer, archive.get());
  SyncAgentProbe sync_agent_probe(sync_agent);
  ApiProbe api_probe(backend, api_server, validation);
  ProcessProbe process_probe;
  std::unique_ptr<AgentHttp> http;
  if (!cfg.metrics.address.empty()) {
    http = std::make_unique<AgentHttp>(
        io.get_executor(), cfg.metrics,
        std::vector<const metrics::Probe*>{&host_probe, &gossip_probe, &dht_probe, &sync_probe,
                                           &sync_agent_probe, &api_probe, &process_probe},
        [&backend] { return backend.status_now(); }, options.agent_version);
    if (auto r = http->start(); !r) {
      std::cerr << "error: metrics.address " << cfg.metrics.address << ": " << r.error().to_string()
                << std::endl;
      return 1;
    }
  }
  gossip.start();
  syncer.start();
  sync_agent.start();
  // --topic topics and an archive's named topics: joined at start, held for no client.
  std::set<std::string> own_topics(options.topics.begin(), options.topics.end());
  if (archive) own_topics.insert(archive_topics.named().begin(), archive_topics.named().end());
  std::set<std::string> topics = own_topics;
  if (state)
    for (const auto& t : state->subscriptions()) {
      // A client's subscription from before the restart keeps its messages for the client.
      if (!own_topics.contains(t)) backend.hold_for(t);
      topics.insert(t);
    }
  for (const auto& t : topics) {
    gossip.join(t);
    if (state) (void)state->add_subscription(t);
  }
  if (archive && topics.empty() && !archive_topics.has_patterns())
    spdlog::warn(
        "archive: keeps no topic: name topics or patterns in sync.archive_topics ([\"*\"]: "
        "every topic peers announce) or give --topic");
  if (!archive && !cfg.sync.archive_topics.empty())
    spdlog::warn("sync.archive_topics is ignored: the agent does not have the archive role");
  kad.start();
  discovery.start();
  if (cfg.dht.mdns)
    if (auto r = local_discovery.start(); !r) spdlog::warn("mdns: {}", r.error().to_string());
  for (const auto& a : node.listen_addrs())
    std::cout << "listening " << a.with_p2p(node.peer_id().bytes()).to_string() << std::endl;
  if (api_server) std::cout << "grpc " << api_server->bound_address() << std::endl;
  if (http) {
    metrics_address = http->bound_address();
    std::cout << "metrics " << metrics_address << std::endl;
    spdlog::info("metrics and status page on http://{}/", http->bound_address());
  }
  spdlog::info("p2pmq agent {} started as {}", options.agent_version, node.peer_id().to_string());

  // Memory comes back: glibc keeps freed heap in its arenas, so after a large release (a Listen
  // stream or a peer that held hundreds of MB went away) RSS would stay at the peak. A timer
  // hands it back to the OS, at most once a second and only after such a release.
  asio::steady_timer trim_timer(io);
  agent::TrimPolicy trim_policy;
  std::function<void()> schedule_trim = [&] {
    trim_timer.expires_after(std::chrono::seconds(1));
    trim_timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      const auto now = std::chrono::steady_clock::now();
      if (size_t free_bytes = ::mallinfo2().fordblks; trim_policy.should_trim(free_bytes, now)) {
        ::malloc_trim(0);
        trim_policy.trimmed(::mallinfo2().fordblks, now);
        spdlog::debug("memory: {} MiB freed in the heap, returned to the OS", free_bytes >> 20);
      }
      schedule_trim();
    });
  };
  schedule_trim();

  bool stopping = false;
  auto stop = [&] {
    if (stopping) return;
    stopping = true;
    trim_timer.cancel();
    if (http) http->stop();
    asio::co_spawn(
        io,
        [&]() -> Task<void> {
          local_discovery.stop();
          sync_agent.stop();
          syncer.stop();
          discovery.stop();
          kad.stop();
          gossip.stop();
          co_await node.shutdown();
        },
        [&](std::exception_ptr) { io.stop(); });
  };
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", sig);
    stop();
  });
  std::unique_ptr<StdioControl> control;
  if (options.stdio) {
    control = std::make_unique<StdioControl>(node, gossip, kad, discovery, backend);
    asio::co_spawn(io, control->run(stop), asio::detached);
  }
  // A handler that throws must not take the agent down (finding 20): log it and go on.
  for (;;) {
    try {
      io.run();
      break;
    } catch (const std::exception& e) {
      spdlog::error("io: unexpected exception (the agent keeps running): {}", e.what());
    }
  }
  // gRPC threads may still post to the io context: stop them before it goes away.
  if (api_server) api_server->stop();
  validation.reset();
  if (tracer) {
    gossip.router().set_trace_sink(nullptr);
    tracer->flush();
    if (uint64_t dropped = tracer->dropped(); dropped > 0)
      spdlog::warn("trace: {} events dropped (the writer fell behind; trace.max_pending_events)",
                   dropped);
  }
  return 0;
}

}  // namespace p2pmq::cli
