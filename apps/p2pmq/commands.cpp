#include "commands.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent.hpp"
#include "agent/key_file.hpp"
#include "host/host.hpp"
#include "protocols/echo.hpp"
#include "protocols/identify.hpp"
#include "protocols/perf.hpp"
#include "protocols/ping.hpp"
#include "transport_interop.hpp"

namespace p2pmq::cli {

namespace asio = host::asio;
using host::Task;

namespace {

int g_exit = 0;

std::string agent_version() {
  return std::string("p2pmq/") + P2PMQ_VERSION;
}

Result<Multiaddr> parse_target(const std::string& text) {
  auto addr = Multiaddr::parse(text);
  if (!addr)
    return fail(Errc::invalid_input, "bad multiaddr '" + text + "': " + addr.error().message);
  if (!addr->tcp_target()) return fail(Errc::unsupported, "not a TCP multiaddr: " + text);
  return addr;
}

// Runs one client coroutine on a fresh host with a fresh identity; returns its exit code.
int run_client(const std::function<Task<int>(host::Host&, protocols::Identify&)>& body) {
  asio::io_context io;
  host::Host node(io, crypto::PrivateKey::generate(), {});
  protocols::Identify identify(node, agent_version());
  int code = 1;
  asio::co_spawn(
      io,
      [&]() -> Task<void> {
        code = co_await body(node, identify);
        co_await node.shutdown();
      },
      [&](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            spdlog::error("{}", ex.what());
          }
        }
        io.stop();
      });
  io.run();
  return code;
}

void fail_with(const std::string& what, const Error& e) {
  std::cerr << "error: " << what << ": " << e.to_string() << std::endl;
}

// Parses `target` (exit 2 when malformed), connects with a fresh identity (exit 1 when the
// peer cannot be reached) and runs `body` on the connection.
int run_connected(const std::string& what, const std::string& target,
                  const std::function<Task<int>(host::Host&, protocols::Identify&,
                                                std::shared_ptr<host::Connection>)>& body) {
  auto addr = parse_target(target);
  if (!addr) {
    fail_with(what, addr.error());
    return 2;
  }
  return run_client([&](host::Host& node, protocols::Identify& identify) -> Task<int> {
    auto conn = co_await node.connect(*addr);
    if (!conn) {
      fail_with("cannot reach " + target, conn.error());
      co_return 1;
    }
    co_return co_await body(node, identify, *conn);
  });
}

// Deterministic bytes for stream `index`, so both ends can check them.
Bytes pattern(size_t index, size_t size) {
  Bytes out(size);
  uint64_t x = 0x9E3779B97F4A7C15ull ^ (index + 1) * 0xBF58476D1CE4E5B9ull;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<uint8_t>(x);
  }
  return out;
}

void add_keygen(CLI::App& app) {
  auto* cmd = app.add_subcommand("keygen", "write a new Ed25519 identity (libp2p protobuf)");
  static std::string out;
  static bool force = false;
  cmd->add_option("--out", out, "key file to write")->required();
  cmd->add_flag("--force", force, "overwrite an existing file");
  cmd->callback([] {
    std::error_code ec;
    if (!force && std::filesystem::exists(out, ec)) {
      std::cerr << "error: " << out << " exists (use --force to overwrite)" << std::endl;
      g_exit = 1;
      return;
    }
    auto key = crypto::PrivateKey::generate();
    if (auto r = agent::write_key_file(out, key); !r) {
      fail_with("keygen", r.error());
      g_exit = 1;
      return;
    }
    std::cout << crypto::PeerId::from_public_key(key.public_key()).to_string() << std::endl;
  });
}

void add_id(CLI::App& app) {
  auto* cmd = app.add_subcommand("id", "print the peer id of a key file");
  static std::string key_path;
  static bool cid = false;
  cmd->add_option("--key", key_path, "key file")->required();
  cmd->add_flag("--cid", cid, "print the CIDv1 (base32) form");
  cmd->callback([] {
    auto key = agent::read_key_file(key_path);
    if (!key) {
      fail_with("id", key.error());
      g_exit = 1;
      return;
    }
    auto id = crypto::PeerId::from_public_key(key->public_key());
    std::cout << (cid ? id.to_cid_string() : id.to_string()) << std::endl;
  });
}

void add_ping(CLI::App& app) {
  auto* cmd = app.add_subcommand("ping", "ping a libp2p peer");
  static std::string target;
  static size_t count = 3;
  cmd->add_option("multiaddr", target, "peer address, with /p2p/<id> to check the identity")
      ->required();
  cmd->add_option("--count", count, "number of pings");
  cmd->callback([] {
    g_exit = run_connected(
        "ping", target,
        [&](host::Host& node, protocols::Identify&,
            std::shared_ptr<host::Connection> connection) -> Task<int> {
          protocols::Ping ping(node);
          size_t i = 0;
          auto peer = connection->remote_peer().to_string();
          auto r = co_await ping.ping(connection, count, [&](std::chrono::nanoseconds rtt) {
            std::cout << "pong " << ++i << " from " << peer << " rtt="
                      << fmt::format("{:.3f}",
                                     std::chrono::duration<double, std::milli>(rtt).count())
                      << " ms" << std::endl;
          });
          if (!r) {
            fail_with("ping " + target, r.error());
            co_return 1;
          }
          co_return 0;
        });
  });
}

void add_identify(CLI::App& app) {
  auto* cmd = app.add_subcommand("identify", "print what a libp2p peer says of itself (JSON)");
  static std::string target;
  cmd->add_option("multiaddr", target, "peer address")->required();
  cmd->callback([] {
    g_exit = run_connected(
        "identify", target,
        [&](host::Host&, protocols::Identify& identify,
            std::shared_ptr<host::Connection> connection) -> Task<int> {
          auto info = co_await identify.identify(connection);
          if (!info) {
            fail_with("identify " + target, info.error());
            co_return 1;
          }
          nlohmann::json j;
          j["peer"] = info->peer.to_string();
          j["agentVersion"] = info->agent_version;
          j["protocolVersion"] = info->protocol_version;
          j["protocols"] = info->protocols;
          std::vector<std::string> addrs;
          for (const auto& a : info->listen_addrs) addrs.push_back(a.to_string());
          j["listenAddrs"] = addrs;
          j["observedAddr"] = info->observed_addr ? nlohmann::json(info->observed_addr->to_string())
                                                  : nlohmann::json();
          std::cout << j.dump() << std::endl;
          co_return 0;
        });
  });
}

Task<bool> echo_one(host::Host& node, std::shared_ptr<host::Connection> conn, size_t index,
                    size_t bytes) {
  std::vector<std::string> wanted{std::string(protocols::kEchoProtocol)};
  auto stream = co_await node.new_stream(conn, wanted);
  if (!stream) {
    spdlog::error("echo stream {}: {}", index, stream.error().to_string());
    co_return false;
  }
  auto s = *stream;
  Bytes data = pattern(index, bytes);
  bool write_ok = true;
  // Write and read at once: the echo peer only has a window's worth of room.
  asio::co_spawn(
      node.executor(),
      [s, &data, &write_ok]() -> Task<void> {
        constexpr size_t kChunk = 64 * 1024;
        for (size_t off = 0; off < data.size(); off += kChunk) {
          auto w =
              co_await s->write(BytesView(data.data() + off, std::min(kChunk, data.size() - off)));
          if (!w) {
            write_ok = false;
            co_return;
          }
        }
        s->close_write();
      },
      asio::detached);
  Bytes received;
  received.reserve(bytes);
  Bytes buffer(64 * 1024);
  for (;;) {
    auto n = co_await s->read_some(buffer);
    if (!n) {
      spdlog::error("echo stream {}: {}", index, n.error().to_string());
      co_return false;
    }
    if (*n == 0) break;
    received.insert(received.end(), buffer.begin(), buffer.begin() + static_cast<ptrdiff_t>(*n));
    if (received.size() > bytes) break;
  }
  co_return write_ok&& received == data;
}

void add_echo(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("echo", "send bytes through /p2pmq/echo/1.0.0 streams and check them");
  static std::string target;
  static size_t streams = 1, bytes = 1 << 20;
  cmd->add_option("multiaddr", target, "peer address")->required();
  cmd->add_option("--streams", streams, "concurrent streams");
  cmd->add_option("--bytes", bytes, "bytes per stream");
  cmd->callback([] {
    g_exit = run_connected("echo", target,
                           [&](host::Host& node, protocols::Identify&,
                               std::shared_ptr<host::Connection> connection) -> Task<int> {
                             auto start = host::Clock::now();
                             size_t pending = streams, good = 0;
                             host::Signal done(node.executor());
                             for (size_t i = 0; i < streams; ++i) {
                               asio::co_spawn(
                                   node.executor(),
                                   [&, i, c = connection]() -> Task<void> {
                                     good += co_await echo_one(node, c, i, bytes);
                                     --pending;
                                     done.notify();
                                   },
                                   asio::detached);
                             }
                             while (pending > 0) co_await done.wait();
                             double seconds =
                                 std::chrono::duration<double>(host::Clock::now() - start).count();
                             nlohmann::json j;
                             j["ok"] = good == streams;
                             j["streams"] = streams;
                             j["bytes"] = bytes;
                             j["seconds"] = seconds;
                             j["MBps"] = static_cast<double>(streams * bytes) / seconds / 1e6;
                             std::cout << j.dump() << std::endl;
                             co_return good == streams ? 0 : 1;
                           });
  });
}

void add_dialbench(CLI::App& app) {
  auto* cmd = app.add_subcommand("dialbench", "measure connection establishment (TCP+Noise+Yamux)");
  static std::string target;
  static size_t count = 100;
  cmd->add_option("multiaddr", target, "peer address")->required();
  cmd->add_option("--count", count, "sequential connections");
  cmd->callback([] {
    auto addr = parse_target(target);
    if (!addr) {
      fail_with("dialbench", addr.error());
      g_exit = 2;
      return;
    }
    g_exit = run_client([&](host::Host& node, protocols::Identify&) -> Task<int> {
      std::vector<double> ms;
      auto start = host::Clock::now();
      for (size_t i = 0; i < count; ++i) {
        auto t0 = host::Clock::now();
        auto conn = co_await node.connect(addr->without_p2p());
        if (!conn) {
          fail_with("dial " + target, conn.error());
          co_return 1;
        }
        ms.push_back(std::chrono::duration<double, std::milli>(host::Clock::now() - t0).count());
        (*conn)->close("dialbench");
      }
      double seconds = std::chrono::duration<double>(host::Clock::now() - start).count();
      std::sort(ms.begin(), ms.end());
      nlohmann::json j;
      j["count"] = count;
      j["per_second"] = static_cast<double>(count) / seconds;
      j["p50_ms"] = ms.empty() ? 0.0 : ms[ms.size() / 2];
      j["p99_ms"] = ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
      std::cout << j.dump() << std::endl;
      co_return 0;
    });
  });
}

void add_perf(CLI::App& app) {
  auto* cmd = app.add_subcommand("perf", "measure throughput with /perf/1.0.0 (libp2p perf spec)");
  static std::string target;
  static uint64_t upload = 256ull << 20, download = 256ull << 20;
  cmd->add_option("multiaddr", target, "peer address")->required();
  cmd->add_option("--upload", upload, "bytes to send");
  cmd->add_option("--download", download, "bytes to ask back");
  cmd->callback([] {
    g_exit = run_connected(
        "perf", target,
        [&](host::Host& node, protocols::Identify&,
            std::shared_ptr<host::Connection> connection) -> Task<int> {
          auto r = co_await protocols::run_perf(node, connection, upload, download);
          if (!r) {
            fail_with("perf " + target, r.error());
            co_return 1;
          }
          nlohmann::json j;
          j["upload_bytes"] = upload;
          j["download_bytes"] = download;
          j["upload_seconds"] = r->upload.count();
          j["download_seconds"] = r->download.count();
          j["upload_MBps"] =
              r->upload.count() > 0 ? static_cast<double>(upload) / r->upload.count() / 1e6 : 0.0;
          j["download_MBps"] = r->download.count() > 0
                                   ? static_cast<double>(download) / r->download.count() / 1e6
                                   : 0.0;
          std::cout << j.dump() << std::endl;
          co_return 0;
        });
  });
}

void add_agent(CLI::App& app) {
  auto* cmd = app.add_subcommand("agent", "run the p2pmq agent daemon");
  static std::string config_path, key_path, data_dir, grpc, validation_timeout, policy, dht_mode;
  static std::string metrics_address;
  static std::vector<std::string> listen, bootstrap, roles, validators, gossip, settings, archives;
  static bool print_config = false;
  static AgentOptions options;
  cmd->add_option("--config", config_path, "YAML config file (docs/configuration.md)");
  cmd->add_option("--listen", listen, "multiaddr to listen on (repeatable)");
  cmd->add_option("--key", key_path, "identity key file (created when missing)");
  cmd->add_option("--data-dir", data_dir, "data directory (identity, state)");
  cmd->add_option("--role", roles, "agent, archive or bootstrapper (repeatable)");
  cmd->add_option("--bootstrap", bootstrap, "peer to connect to at start (repeatable)");
  cmd->add_option("--grpc", grpc, "gRPC API address host:port (port 0 picks one; off disables)");
  cmd->add_option("--metrics", metrics_address,
                  "Prometheus /metrics and status page address host:port (metrics.address)");
  cmd->add_option("--validator", validators,
                  "MsgValidation endpoint host:port the agent dials (repeatable)");
  cmd->add_option("--validation-timeout", validation_timeout,
                  "how long a message waits for a verdict (e.g. 5s)");
  cmd->add_option("--no-validator-policy", policy,
                  "verdict when no validator answers: ignore or accept");
  cmd->add_option("--gossip", gossip,
                  "gossipsub parameter KEY=VALUE (repeatable), e.g. D=8, heartbeat_interval=700ms");
  cmd->add_option("--dht-mode", dht_mode, "DHT mode: auto, client, server or bootstrapper");
  cmd->add_option("--archive", archives, "archive peer for sync (repeatable; sync.archives)");
  cmd->add_option("--set", settings,
                  "any configuration key KEY=VALUE (repeatable), e.g. dht.alpha=3");
  cmd->add_option("--topic", options.topics, "topic to join at start (repeatable)");
  cmd->add_flag("--stdio", options.stdio,
                "line protocol on stdin/stdout: sub, unsub, pub, connect, peers, mesh, dht-table, "
                "dht-find-peer, dht-provide-topic, dht-find-topic");
  cmd->add_flag("--echo", options.echo, "serve /p2pmq/echo/1.0.0 (tests, benchmarks)");
  cmd->add_flag("--perf", options.perf, "serve /perf/1.0.0 (throughput benchmarks)");
  cmd->add_flag("--print-config", print_config, "print the effective configuration and exit");
  cmd->add_flag("--repair-state", options.repair_state,
                "repair a corrupt state store in the data dir (keeps what is readable)");
  cmd->callback([cmd] {
    auto bad = [](const Error& e) {
      std::cerr << "error: " << e.message << std::endl;
      g_exit = 2;
    };
    agent::AgentConfig cfg;
    if (!config_path.empty()) {
      auto loaded = agent::load_config(config_path);
      if (!loaded) return bad(loaded.error());
      cfg = std::move(*loaded);
    } else {
      // Without a file: an ephemeral agent for scripts and tests (port 0, no data dir).
      cfg.grpc.address = "127.0.0.1:0";
      options.ephemeral_identity = true;
    }
    std::vector<std::pair<std::string, std::vector<std::string>>> lists{
        {"listen", listen},
        {"bootstrap", bootstrap},
        {"role", roles},
        {"sync.archives", archives},
        {"validation.endpoints", validators}};
    for (const auto& [key, values] : lists) {
      if (values.empty()) continue;
      if (auto r = agent::apply_override(cfg, key, values); !r) return bad(r.error());
    }
    std::vector<std::pair<std::string, std::string>> scalars{
        {"identity.key_file", key_path},
        {"data_dir", data_dir},
        {"grpc.address", grpc},
        {"metrics.address", metrics_address},
        {"validation.timeout", validation_timeout},
        {"validation.no_validator_policy", policy},
        {"dht.mode", dht_mode}};
    for (const auto& [key, value] : scalars) {
      if (value.empty()) continue;
      if (key == "identity.key_file" || key == "data_dir") options.ephemeral_identity = false;
      if (auto r = agent::apply_override(cfg, key, value); !r) return bad(r.error());
    }
    for (const auto& g : gossip) {
      if (auto r = agent::apply_override(cfg, "gossip." + g); !r) return bad(r.error());
    }
    for (const auto& kv : settings) {
      if (auto r = agent::apply_override(cfg, kv); !r) return bad(r.error());
    }
    if (auto r = agent::validate_config(cfg); !r) return bad(r.error());
    if (print_config) {
      std::cout << agent::dump_config(cfg);
      g_exit = 0;
      return;
    }
    options.persistent_state = !config_path.empty() || !data_dir.empty();
    options.config = std::move(cfg);
    options.agent_version = agent_version();
    options.log_level_from_cli = cmd->get_parent()->get_option("--log-level")->count() > 0 ||
                                 std::getenv("P2PMQ_LOG") != nullptr;
    g_exit = run_agent(std::move(options));
  });
}

void add_client_commands(CLI::App& app) {
  static std::string agent = "127.0.0.1:5050";
  {
    auto* cmd = app.add_subcommand("pub", "publish through an agent (gRPC)");
    static std::string topic;
    static std::optional<std::string> data;
    cmd->add_option("--agent", agent, "the agent's gRPC address");
    cmd->add_option("--topic", topic, "topic")->required();
    cmd->add_option("--data", data, "message (default: one message per line of stdin)");
    cmd->callback([] { g_exit = run_pub(agent, topic, data); });
  }
  {
    auto* cmd = app.add_subcommand("sub", "print the messages of topics (gRPC Listen)");
    static std::vector<std::string> topics;
    static bool json = false;
    static uint64_t count = 0;
    static bool ordered = false;
    cmd->add_option("--agent", agent, "the agent's gRPC address");
    cmd->add_option("--topic", topics, "topic (repeatable)")->required();
    cmd->add_flag("--json", json, "one JSON object per line");
    cmd->add_option("--count", count, "exit after this many messages (0: never)");
    cmd->add_flag("--ordered", ordered,
                  "per-origin seqno order; unfillable holes are reported as gap events");
    cmd->callback([] { g_exit = run_sub(agent, topics, json, count, ordered); });
  }
  {
    auto* cmd = app.add_subcommand("devnet", "a local network of agents on loopback");
    static size_t nodes = 5, messages = 10;
    static std::string topic = "devnet";
    static bool exit_after = false;
    cmd->add_option("--nodes", nodes, "agents (plus one bootstrap agent)");
    cmd->add_option("--messages", messages, "sample messages to publish");
    cmd->add_option("--topic", topic, "topic of the sample traffic");
    cmd->add_flag("--exit-after-traffic", exit_after, "stop once the sample traffic arrived");
    cmd->callback(
        [] { g_exit = run_devnet(std::max<size_t>(nodes, 1), messages, topic, !exit_after); });
  }
  {
    auto* cmd = app.add_subcommand(
        "status", "peer id, addresses, peers, topics, mesh, scores, sync and DHT state");
    cmd->add_option("--agent", agent, "the agent's gRPC address");
    cmd->callback([] { g_exit = run_status(agent); });
  }
}

void add_transport_interop(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "transport-interop",
      "libp2p/test-plans transport-interop ping test; configured by its environment variables "
      "(transport, security, muxer, is_dialer, ip, redis_addr, test_timeout_seconds)");
  cmd->callback([] { g_exit = run_transport_interop(); });
}

}  // namespace

void register_commands(CLI::App& app) {
  add_client_commands(app);
  add_keygen(app);
  add_id(app);
  add_ping(app);
  add_identify(app);
  add_echo(app);
  add_dialbench(app);
  add_perf(app);
  add_agent(app);
  add_transport_interop(app);
  add_bench_command(app, g_exit);
}

int exit_code() {
  return g_exit;
}

}  // namespace p2pmq::cli
