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
  StdioControl(host::Host& host, pubsub::GossipsubService& gossip,
               std::map<std::string, uint64_t>& seqnos)
      : host_(host), gossip_(gossip), seqnos_(seqnos) {}

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
    } else {
      emit({{"event", "error"}, {"message", "unknown command: " + line}});
    }
  }

  host::Host& host_;
  pubsub::GossipsubService& gossip_;
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
          gossip.stop();
          co_await node.shutdown();
        },
        [&](std::exception_ptr) { io.stop(); });
  };
  for (const auto& addr : bootstrap) {
    asio::co_spawn(
        io,
        [&node, addr]() -> Task<void> {
          auto conn = co_await node.connect(addr);
          if (!conn) spdlog::warn("bootstrap {}: {}", addr.to_string(), conn.error().to_string());
        },
        asio::detached);
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", sig);
    stop();
  });
  std::unique_ptr<StdioControl> control;
  if (options.stdio) {
    control = std::make_unique<StdioControl>(node, gossip, seqnos);
    asio::co_spawn(io, control->run(stop), asio::detached);
  }
  io.run();
  // gRPC threads may still post to the io context: stop them before it goes away.
  if (api_server) api_server->stop();
  validation.reset();
  return 0;
}

}  // namespace p2pmq::cli
