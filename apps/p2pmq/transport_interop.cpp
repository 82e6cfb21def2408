#include "transport_interop.hpp"

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <thread>

#include "host/host.hpp"
#include "protocols/identify.hpp"
#include "protocols/ping.hpp"

namespace p2pmq::cli {

namespace asio = host::asio;
using host::Task;

namespace {

// The redis key the framework's listeners push their address to.
constexpr const char* kListenerAddrKey = "listenerAddr";
// How often to retry reaching redis while it may still be starting.
constexpr std::chrono::milliseconds kRedisRetry{100};

std::string agent_version() {
  return std::string("p2pmq/") + P2PMQ_VERSION;
}

// The few redis commands the test needs, over hiredis' blocking API. Every call happens while
// no libp2p work is pending (before the dialer dials, after the listener listens).
class Redis {
 public:
  // Retries until `deadline`: the framework starts redis and both peers at once.
  static Result<Redis> connect(const std::string& host, uint16_t port,
                               std::chrono::steady_clock::time_point deadline) {
    std::string last_error = "not tried";
    for (;;) {
      timeval tv{1, 0};
      Context ctx(redisConnectWithTimeout(host.c_str(), port, tv), &redisFree);
      if (!ctx) return fail(Errc::io, "redis: out of memory");
      if (ctx->err == 0) return Redis(std::move(ctx));
      last_error = ctx->errstr;
      if (std::chrono::steady_clock::now() + kRedisRetry >= deadline) break;
      std::this_thread::sleep_for(kRedisRetry);
    }
    return fail(Errc::timeout,
                fmt::format("redis at {}:{} not reachable: {}", host, port, last_error));
  }

  Result<void> rpush(const std::string& key, const std::string& value) {
    auto reply = command({"RPUSH", key, value});
    if (!reply) return tl::unexpected(reply.error());
    if ((*reply)->type != REDIS_REPLY_INTEGER)
      return fail(Errc::protocol_violation,
                  "redis: RPUSH answered with reply type " + std::to_string((*reply)->type));
    return {};
  }

  // The first element of `key`, waiting up to `wait` for one to be pushed.
  Result<std::string> blpop(const std::string& key, std::chrono::seconds wait) {
    // The socket must outlive the server-side wait.
    timeval tv{static_cast<time_t>(wait.count() + 5), 0};
    redisSetTimeout(ctx_.get(), tv);
    auto reply = command({"BLPOP", key, std::to_string(wait.count())});
    if (!reply) return tl::unexpected(reply.error());
    const redisReply* r = reply->get();
    if (r->type == REDIS_REPLY_NIL)
      return fail(Errc::timeout, "no " + key + " within " + std::to_string(wait.count()) + " s");
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_STRING)
      return fail(Errc::protocol_violation, "redis: unexpected BLPOP reply");
    return std::string(r->element[1]->str, r->element[1]->len);
  }

 private:
  using Context = std::unique_ptr<redisContext, decltype(&redisFree)>;
  using Reply = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

  explicit Redis(Context ctx) : ctx_(std::move(ctx)) {}

  Result<Reply> command(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    Reply reply(static_cast<redisReply*>(redisCommandArgv(ctx_.get(), static_cast<int>(argv.size()),
                                                          argv.data(), lens.data())),
                &freeReplyObject);
    if (!reply) return fail(Errc::io, std::string("redis: ") + ctx_->errstr);
    if (reply->type == REDIS_REPLY_ERROR)
      return fail(Errc::protocol_violation,
                  "redis: " + args[0] + ": " + std::string(reply->str, reply->len));
    return reply;
  }

  Context ctx_;
};

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("transport-interop: {}", ex.what());
  }
}

// Shuts the host down (every connection closed cleanly), then stops `io`.
void shutdown_and_stop(asio::io_context& io, host::Host& node) {
  asio::co_spawn(io, node.shutdown(), [&io](std::exception_ptr e) {
    log_exception(e);
    io.stop();
  });
}

// Ends the run with exit status 1 at the test's deadline (test_timeout_seconds = `limit` after
// the start).
void arm_test_timeout(asio::io_context& io, host::Host& node, asio::steady_timer& timer,
                      std::chrono::steady_clock::time_point deadline, std::chrono::seconds limit,
                      int& code, const char* what) {
  timer.expires_at(deadline);
  timer.async_wait([&io, &node, &code, what, limit](boost::system::error_code ec) {
    if (ec) return;  // cancelled: the test finished first
    spdlog::error("transport-interop: {} not done after test_timeout_seconds={}", what,
                  limit.count());
    code = 1;
    shutdown_and_stop(io, node);
  });
}

int run_dialer(const TransportInteropConfig& cfg, Redis& redis,
               std::chrono::steady_clock::time_point deadline) {
  // BLPOP waits whole seconds: the time left, rounded up.
  auto left = std::chrono::ceil<std::chrono::seconds>(deadline - std::chrono::steady_clock::now());
  auto text = redis.blpop(kListenerAddrKey, std::max(left, std::chrono::seconds{1}));
  if (!text) {
    spdlog::error("transport-interop: waiting for the listener: {}", text.error().to_string());
    return 1;
  }
  auto target = Multiaddr::parse(*text);
  if (!target) {
    spdlog::error("transport-interop: listener address '{}': {}", *text,
                  target.error().to_string());
    return 1;
  }
  spdlog::info("transport-interop: dialing {}", *text);

  asio::io_context io;
  host::Host node(io, crypto::PrivateKey::generate(), {});
  protocols::Identify identify(node, agent_version());
  protocols::Ping ping(node);
  int code = 1;
  asio::steady_timer timeout(io);
  arm_test_timeout(io, node, timeout, deadline, cfg.timeout, code, "dial and ping");
  asio::co_spawn(
      io,
      [&]() -> Task<void> {
        auto start = host::Clock::now();  // handshakeStartInstant
        auto conn = co_await node.connect(*target);
        if (!conn) {
          spdlog::error("transport-interop: dial {}: {}", *text, conn.error().to_string());
        } else {
          std::chrono::nanoseconds rtt{};
          auto r = co_await ping.ping(*conn, 1, [&](std::chrono::nanoseconds d) { rtt = d; });
          auto handshake_plus_rtt = host::Clock::now() - start;
          if (!r) {
            spdlog::error("transport-interop: ping {}: {}", *text, r.error().to_string());
          } else {
            using ms = std::chrono::duration<double, std::milli>;
            // The key's three l's are the framework's spelling.
            std::cout
                << fmt::format(
                       "{{\"handshakePlusOneRTTMillis\": {:.3f}, \"pingRTTMilllis\": {:.3f}}}",
                       ms(handshake_plus_rtt).count(), ms(rtt).count())
                << std::endl;
            code = 0;
          }
        }
        timeout.cancel();
        co_await node.shutdown();
      },
      [&](std::exception_ptr e) {
        log_exception(e);
        io.stop();
      });
  io.run();
  return code;
}

int run_listener(const TransportInteropConfig& cfg, Redis& redis,
                 std::chrono::steady_clock::time_point deadline) {
  auto ip = cfg.ip.find(':') == std::string::npos ? "/ip4/" + cfg.ip : "/ip6/" + cfg.ip;
  auto listen = Multiaddr::parse(ip + "/tcp/0");
  if (!listen) {
    spdlog::error("transport-interop: ip '{}': {}", cfg.ip, listen.error().to_string());
    return 2;
  }
  asio::io_context io;
  host::HostConfig host_cfg;
  host_cfg.listen = {*listen};
  host::Host node(io, crypto::PrivateKey::generate(), host_cfg);
  protocols::Identify identify(node, agent_version());
  protocols::Ping ping(node);
  // The framework's SIGTERM may come as soon as the address is out: catch it from now on
  // (a signal before the wait below is queued).
  asio::signal_set signals(io, SIGINT, SIGTERM);
  if (auto r = node.start(); !r) {
    spdlog::error("transport-interop: listen on {}: {}", listen->to_string(),
                  r.error().to_string());
    return 1;
  }
  // Non-loopback addresses come first (as go's listener picks one a container peer can reach).
  auto addrs = node.advertised_addrs();
  if (addrs.empty()) {
    spdlog::error("transport-interop: no address to announce for {}", listen->to_string());
    return 1;
  }
  auto announced = addrs.front().with_p2p(node.peer_id().bytes()).to_string();
  if (auto r = redis.rpush(kListenerAddrKey, announced); !r) {
    spdlog::error("transport-interop: publishing {}: {}", announced, r.error().to_string());
    return 1;
  }
  spdlog::info("transport-interop: listening on {}", announced);

  // The framework ends the listener once the dialer is done (SIGTERM here, a clean exit 0);
  // reaching the test timeout first is a failure.
  int code = 1;
  asio::steady_timer timeout(io);
  arm_test_timeout(io, node, timeout, deadline, cfg.timeout, code, "listener");
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("transport-interop: signal {}: done", sig);
    code = 0;
    timeout.cancel();
    shutdown_and_stop(io, node);
  });
  io.run();
  return code;
}

bool split_host_port(const std::string& addr, std::string& host, uint16_t& port) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = addr.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const char* first = addr.data() + colon + 1;
  const char* last = addr.data() + addr.size();
  auto [end, ec] = std::from_chars(first, last, port);
  return ec == std::errc() && end == last && first != last && port != 0;
}

}  // namespace

Result<TransportInteropConfig> transport_interop_config(
    const std::function<const char*(const char*)>& env) {
  auto get = [&](const char* name) -> std::string {
    const char* v = env(name);
    return v ? std::string(v) : std::string();
  };
  // p2pmq speaks one stack: TCP, Noise, Yamux.
  const std::pair<const char*, const char*> supported[] = {
      {"transport", "tcp"}, {"security", "noise"}, {"muxer", "yamux"}};
  for (const auto& [name, value] : supported) {
    auto got = get(name);
    if (got != value)
      return fail(Errc::unsupported,
                  fmt::format("{}='{}' is not supported (p2pmq supports {}={} only)", name, got,
                              name, value));
  }
  TransportInteropConfig cfg;
  auto dialer = get("is_dialer");
  if (dialer != "true" && dialer != "false")
    return fail(Errc::invalid_input, "is_dialer='" + dialer + "' must be true or false");
  cfg.is_dialer = dialer == "true";
  if (auto ip = get("ip"); !ip.empty()) cfg.ip = ip;
  if (auto redis = get("redis_addr"); !redis.empty()) {
    if (!split_host_port(redis, cfg.redis_host, cfg.redis_port))
      return fail(Errc::invalid_input, "redis_addr='" + redis + "' must be HOST:PORT");
  }
  if (auto t = get("test_timeout_seconds"); !t.empty()) {
    unsigned seconds = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), seconds);
    if (ec != std::errc() || end != t.data() + t.size() || seconds == 0)
      return fail(Errc::invalid_input,
                  "test_timeout_seconds='" + t + "' must be a positive integer");
    cfg.timeout = std::chrono::seconds{seconds};
  }
  return cfg;
}

int run_transport_interop() {
  auto cfg = transport_interop_config([](const char* name) { return std::getenv(name); });
  if (!cfg) {
    std::cerr << "error: transport-interop: " << cfg.error().message << std::endl;
    return 2;
  }
  auto deadline = std::chrono::steady_clock::now() + cfg->timeout;
  auto redis = Redis::connect(cfg->redis_host, cfg->redis_port, deadline);
  if (!redis) {
    spdlog::error("transport-interop: {}", redis.error().to_string());
    return 1;
  }
  return cfg->is_dialer ? run_dialer(*cfg, *redis, deadline) : run_listener(*cfg, *redis, deadline);
}

}  // namespace p2pmq::cli
