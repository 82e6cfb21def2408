#include "test_support.hpp"

#include <iostream>
#include <sstream>

namespace p2pmq::test {

// ---------------------------------------------------------------- LogCapture

class LogCapture::Sink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::function<void()> on_line;

  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    lines_.emplace_back(formatted.data(), formatted.size());
    if (on_line) on_line();
  }
  void flush_() override {}

 private:
  std::vector<std::string> lines_;
};

LogCapture::LogCapture(asio::any_io_executor ex)
    : sink_(std::make_shared<Sink>()), previous_(spdlog::default_logger()), signal_(ex) {
  sink_->set_pattern("[%l] %v");
  sink_->on_line = [this] { signal_.notify(); };
  auto logger = std::make_shared<spdlog::logger>("host-test", sink_);
  logger->set_level(spdlog::level::debug);
  spdlog::set_default_logger(logger);
}

LogCapture::~LogCapture() {
  spdlog::set_default_logger(previous_);
  sink_->on_line = nullptr;
}

size_t LogCapture::count(std::string_view needle) const {
  size_t n = 0;
  for (const auto& line : sink_->lines()) n += line.find(needle) != std::string::npos;
  return n;
}

Task<bool> LogCapture::wait_for(std::string needle, Clock::time_point deadline) {
  for (;;) {
    if (contains(needle)) co_return true;
    bool woken = co_await signal_.wait_until(deadline);
    if (!woken) co_return contains(needle);
  }
}

std::string LogCapture::dump() const {
  std::ostringstream out;
  for (const auto& line : sink_->lines()) out << "  " << line;
  return out.str();
}

// ---------------------------------------------------------------- Node

namespace {

host::HostConfig listening_on_loopback(host::HostConfig config) {
  config.listen.clear();
  config.listen.push_back(Multiaddr::parse("/ip4/127.0.0.1/tcp/0").value());
  return config;
}

}  // namespace

Node::Node(asio::io_context& io, host::HostConfig config)
    : host(io, crypto::PrivateKey::generate(), listening_on_loopback(std::move(config))),
      ping(host) {
  host.handle(std::string(kHoldProtocol),
              [this](std::shared_ptr<host::Stream> stream) -> Task<void> {
                held.push_back(std::move(stream));
                co_return;
              });
}

Multiaddr Node::addr() const {
  return host.listen_addrs().at(0).with_p2p(host.peer_id().bytes());
}

tcp::endpoint Node::endpoint() const {
  auto target = host.listen_addrs().at(0).tcp_target().value();
  return {asio::ip::make_address(target.host), target.port};
}

// ---------------------------------------------------------------- HostTest

Node& HostTest::make_node(host::HostConfig config) {
  nodes.push_back(std::make_unique<Node>(io, std::move(config)));
  auto started = nodes.back()->host.start();
  if (!started) throw std::runtime_error("host start: " + started.error().to_string());
  return *nodes.back();
}

void HostTest::run(std::function<Task<void>()> scenario, std::chrono::seconds limit) {
  // Shared with the completion handler, which runs later (or never) if the scenario is
  // abandoned at the deadline.
  struct State {
    bool done = false;
    std::exception_ptr error;
  };
  auto state = std::make_shared<State>();
  io.restart();
  asio::steady_timer watchdog(io, limit);
  watchdog.async_wait([this](boost::system::error_code ec) {
    if (!ec) io.stop();
  });
  asio::co_spawn(io, std::move(scenario), [this, state](std::exception_ptr e) {
    state->done = true;
    state->error = e;
    io.stop();
  });
  io.run();
  watchdog.cancel();
  if (!state->done) {
    abandoned_ = true;
    ADD_FAILURE() << "scenario did not finish within " << limit.count() << " s";
    return;
  }
  if (state->error) {
    try {
      std::rethrow_exception(state->error);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "scenario threw: " << e.what();
    }
  }
}

void HostTest::TearDown() {
  // An abandoned scenario still references the test body's locals: never resume it.
  if (!abandoned_)
    run([this]() -> Task<void> {
      for (auto& node : nodes) co_await node->host.shutdown();
    });
  if (HasFailure()) std::cerr << "captured log:\n" << logs.dump();
}

// ---------------------------------------------------------------- scenario helpers

Task<Result<void>> ping_once(Node& from, const std::shared_ptr<host::Connection>& conn) {
  co_return co_await from.ping.ping(conn, 1, nullptr);
}

Task<Result<std::shared_ptr<host::Connection>>> connect_and_ping(Node& from, Node& to) {
  auto conn = co_await from.host.connect(to.addr());
  if (!conn) co_return tl::unexpected(conn.error());
  auto pinged = co_await ping_once(from, *conn);
  if (!pinged) co_return tl::unexpected(pinged.error());
  co_return *conn;
}

Task<void> expect_still_serving(Node& target, Node& old_peer,
                                std::shared_ptr<host::Connection> old_conn, Node& newcomer) {
  EXPECT_TRUE(old_conn->is_open()) << "the healthy connection was closed too";
  auto old_ping = co_await ping_once(old_peer, old_conn);
  EXPECT_TRUE(old_ping) << "ping on the earlier connection: " << old_ping.error().to_string();
  auto fresh = co_await connect_and_ping(newcomer, target);
  EXPECT_TRUE(fresh) << "a new peer cannot connect and ping: " << fresh.error().to_string();
}

}  // namespace p2pmq::test
