#include "agent.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent_backend.hpp"
#include "api/server.hpp"
#include "api/validation_client.hpp"
#include "dht/io/dht_service.hpp"
#include "discovery.hpp"
#include "host/host.hpp"
#include "protocols/echo.hpp"
#include "protocols/identify.hpp"
#include "protocols/perf.hpp"
#include "protocols/ping.hpp"
#include "pubsub/io/gossipsub_service.hpp"
#include "pubsub/params.hpp"

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

// Commands on stdin, one per line; answers and messages as JSON lines on stdout:
//   sub T | unsub T | pub T DATA... | connect MULTIADDR | peers | mesh T
class StdioControl {
 public:
  StdioControl(host::Host& host, pubsub::GossipsubService& gossip, dht::DhtService& dht,
               Discovery& discovery, std::map<std::string, uint64_t>& seqnos)
      : host_(host), gossip_(gossip), dht_(dht), discovery_(discovery), seqnos_(seqnos) {}

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
      gossip_.join(arg);
      discovery_.poke();
      emit({{"event", "subscribed"}, {"topic", arg}});
    } else if (cmd == "unsub" && !arg.empty()) {
      gossip_.leave(arg);
      emit({{"event", "unsubscribed"}, {"topic", arg}});
    } else if (cmd == "pub" && !arg.empty()) {
      // The data is the rest of the line after "pub TOPIC ".
      size_t start = line.find(arg, 3) + arg.size();
      std::string data = start < line.size() ? line.substr(start + 1) : std::string();
      uint64_t seqno = ++seqnos_[arg];
      auto id = gossip_.publish(arg, to_bytes(data), seqno);
      if (!id) {
        --seqnos_[arg];
        emit({{"event", "error"}, {"message", "pub " + arg + ": " + id.error().to_string()}});
      } else {
        emit({{"event", "published"}, {"topic", arg}, {"seqno", seqno}, {"id", hex(*id)}});
      }
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
      emit({{"event", "peers"}, {"peers", peers}});
    } else if (cmd == "mesh" && !arg.empty()) {
      std::vector<std::string> peers;
      for (const auto& p : gossip_.router().mesh(arg)) peers.push_back(p.to_string());
      emit({{"event", "mesh"}, {"topic", arg}, {"peers", peers}});
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
  std::map<std::string, uint64_t>& seqnos_;
};

}  // namespace

namespace {

Result<crypto::PrivateKey> load_or_create_identity(const std::string& path) {
  std::error_code ec;
  std::filesystem::path file(path);
  if (std::filesystem::exists(file, ec)) {
    std::ifstream in(path, std::ios::binary);
    Bytes data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto key = crypto::PrivateKey::decode(data);
    if (!key) return fail(Errc::invalid_input, "identity " + path + ": " + key.error().message);
    return key;
  }
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  if (ec)
    return fail(Errc::io, "cannot create " + file.parent_path().string() + ": " + ec.message());
  auto key = crypto::PrivateKey::generate();
  Bytes data = key.encode();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) return fail(Errc::io, "cannot write identity " + path);
  std::filesystem::permissions(
      file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
  spdlog::info("created identity {}", path);
  return key;
}

}  // namespace

dht::DhtConfig dht_config(const agent::AgentConfig& cfg) {
  dht::DhtConfig c;
  using M = agent::DhtSettings::Mode;
  switch (cfg.dht.mode) {
    case M::automatic:
      c.mode = cfg.has_role(agent::Role::bootstrapper) ? dht::Mode::bootstrapper : dht::Mode::server;
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
  c.query.alpha = cfg.dht.alpha;
  c.query.k = cfg.dht.k;
  c.table.k = cfg.dht.k;
  c.query.beta = cfg.dht.beta;
  c.query.request_timeout = cfg.dht.request_timeout;
  c.query.query_timeout = cfg.dht.query_timeout;
  c.bootstrap_interval = cfg.dht.bootstrap_interval;
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
  pubsub::GossipsubService gossip(node, gossip_config, score_params, cfg.thresholds);
  std::map<std::string, uint64_t> seqnos;
  if (options.stdio) {
    gossip.on_message([&node](const pubsub::DeliverMessage& d) {
      // Our own publications are answered with "published", not echoed as messages.
      if (d.message.from && *d.message.from == node.peer_id().bytes()) return;
      nlohmann::json j{{"event", "message"},
                       {"topic", d.message.topic},
                       {"data", std::string(as_string(d.message.data))},
                       {"id", hex(d.id)}};
      if (d.message.from) {
        auto from = crypto::PeerId::from_bytes(*d.message.from);
        j["from"] = from ? from->to_string() : hex(*d.message.from);
      }
      if (auto seqno = pubsub::seqno_value(d.message)) j["seqno"] = *seqno;
      emit(j);
    });
  }
  AgentBackend backend(node, gossip);

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

  // External validation: every remote message waits for the parent's verdict.
  std::unique_ptr<api::ValidationClient> validation;
  if (!cfg.validation.endpoints.empty()) {
    api::ValidationConfig vc;
    agent::apply_validation(cfg.validation, vc);
    validation = std::make_unique<api::ValidationClient>(cfg.validation.endpoints, vc);
    gossip.set_validator([&validation, ex = node.executor()](
                             const pubsub::ValidateMessage& v,
                             std::function<void(pubsub::Verdict)> done) {
      pubsub::DeliverMessage as_delivered{v.id, v.message, v.received_from};
      validation->validate(AgentBackend::to_agent_message(as_delivered, false),
                           [ex, done = std::move(done)](api::Verdict verdict) {
                             // Verdicts arrive on gRPC threads; the router lives on the io thread.
                             asio::post(ex, [done, verdict] {
                               done(verdict == api::Verdict::accept   ? pubsub::Verdict::accept
                                    : verdict == api::Verdict::reject ? pubsub::Verdict::reject
                                                                      : pubsub::Verdict::ignore);
                             });
                           });
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
  gossip.start();
  for (const auto& t : options.topics) gossip.join(t);
  kad.start();
  discovery.start();
  for (const auto& a : node.listen_addrs())
    std::cout << "listening " << a.with_p2p(node.peer_id().bytes()).to_string() << std::endl;
  if (api_server) std::cout << "grpc " << api_server->bound_address() << std::endl;
  spdlog::info("p2pmq agent {} started as {}", options.agent_version, node.peer_id().to_string());

  bool stopping = false;
  auto stop = [&] {
    if (stopping) return;
    stopping = true;
    asio::co_spawn(
        io,
        [&]() -> Task<void> {
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
    control = std::make_unique<StdioControl>(node, gossip, kad, discovery, seqnos);
    asio::co_spawn(io, control->run(stop), asio::detached);
  }
  io.run();
  // gRPC threads may still post to the io context: stop them before it goes away.
  if (api_server) api_server->stop();
  validation.reset();
  return 0;
}

}  // namespace p2pmq::cli
