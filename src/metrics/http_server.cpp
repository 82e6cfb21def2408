#include "metrics/http_server.hpp"

#include <spdlog/spdlog.h>

#include <set>

namespace p2pmq::metrics {

namespace asio = host::asio;
using host::Task;
using host::tcp;

struct HttpServer::State {
  State(asio::any_io_executor ex, HttpLimits l, Handler h)
      : limits(l), handler(std::move(h)), acceptor(ex) {}
  HttpLimits limits;
  Handler handler;
  tcp::acceptor acceptor;
  bool stopped = false;
  std::set<std::shared_ptr<tcp::socket>> open;  // at most limits.max_connections
};

namespace {

Task<void> serve(std::shared_ptr<HttpServer::State> state, std::shared_ptr<tcp::socket> socket) {
  // One deadline for the whole exchange: a client that sends slowly or never reads is cut off.
  asio::steady_timer deadline(socket->get_executor());
  deadline.expires_after(state->limits.request_timeout);
  deadline.async_wait([socket](boost::system::error_code ec) {
    if (!ec) socket->close(ec);
  });
  std::string buffer;
  boost::system::error_code ec;
  co_await asio::async_read_until(*socket,
                                  asio::dynamic_buffer(buffer, state->limits.max_request_bytes),
                                  "\r\n\r\n", asio::redirect_error(asio::use_awaitable, ec));
  HttpResponse response;
  bool head_only = false;
  if (ec == asio::error::not_found) {  // the buffer filled up before the blank line
    response = {431, "text/plain; charset=utf-8", "request head too large\n"};
  } else if (ec || state->stopped) {
    deadline.cancel();
    state->open.erase(socket);
    co_return;
  } else if (auto request = parse_request_head(buffer); !request) {
    int status = request.error().code == Errc::unsupported ? 405 : 400;
    response = {status, "text/plain; charset=utf-8", request.error().message + "\n"};
  } else {
    head_only = request->method == "HEAD";
    response = state->handler(request->path);
  }
  std::string bytes = format_response(response, head_only);
  co_await asio::async_write(*socket, asio::buffer(bytes),
                             asio::redirect_error(asio::use_awaitable, ec));
  socket->shutdown(tcp::socket::shutdown_both, ec);
  socket->close(ec);
  deadline.cancel();
  state->open.erase(socket);
}

Task<void> accept_loop(std::shared_ptr<HttpServer::State> state) {
  for (;;) {
    auto socket = std::make_shared<tcp::socket>(state->acceptor.get_executor());
    boost::system::error_code ec;
    co_await state->acceptor.async_accept(*socket, asio::redirect_error(asio::use_awaitable, ec));
    if (state->stopped) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      continue;  // EMFILE and the like: try the next one
    }
    if (state->open.size() >= state->limits.max_connections) {
      socket->close(ec);  // over metrics.max_connections: refused, nothing read
      continue;
    }
    state->open.insert(socket);
    asio::co_spawn(state->acceptor.get_executor(), serve(state, socket), asio::detached);
  }
}

}  // namespace

HttpServer::HttpServer(asio::any_io_executor ex, HttpLimits limits, Handler handler)
    : state_(std::make_shared<State>(ex, limits, std::move(handler))) {}

HttpServer::~HttpServer() {
  stop();
}

Result<void> HttpServer::start(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return fail(Errc::invalid_input, "expected host:port");
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (ec) return fail(Errc::invalid_input, "not an IP address: " + host);
  unsigned long port = 0;
  try {
    port = std::stoul(address.substr(colon + 1));
  } catch (const std::exception&) {
    return fail(Errc::invalid_input, "bad port in " + address);
  }
  if (port > 65535) return fail(Errc::invalid_input, "bad port in " + address);
  tcp::endpoint endpoint(ip, static_cast<unsigned short>(port));
  auto& acceptor = state_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(Errc::io, address + ": " + ec.message());
  asio::co_spawn(acceptor.get_executor(), accept_loop(state_), asio::detached);
  return {};
}

std::string HttpServer::bound_address() const {
  boost::system::error_code ec;
  if (!state_->acceptor.is_open()) return {};
  auto ep = state_->acceptor.local_endpoint(ec);
  if (ec) return {};
  auto ip = ep.address();
  return (ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string()) + ":" +
         std::to_string(ep.port());
}

void HttpServer::stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  boost::system::error_code ec;
  state_->acceptor.close(ec);
  for (const auto& s : state_->open) s->close(ec);
}

}  // namespace p2pmq::metrics
