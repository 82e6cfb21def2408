#pragma once
// A small HTTP/1.1 server on the agent's io context for /metrics and the status page. Off unless
// metrics.address is set. Bounded against a hostile local client: at most max_connections at
// once (more are closed on accept), a request head of at most max_request_bytes, and one
// deadline for reading the request and writing the answer. One request per connection (the
// answer says Connection: close); only GET and HEAD.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "host/asio.hpp"
#include "metrics/http/http_message.hpp"

namespace p2pmq::metrics {

struct HttpLimits {
  size_t max_connections = 16;
  size_t max_request_bytes = 8192;
  std::chrono::milliseconds request_timeout{5000};
};

class HttpServer {
 public:
  // Runs on the io thread, once per request; its answer is written back.
  using Handler = std::function<HttpResponse(const std::string& path)>;

  HttpServer(host::asio::any_io_executor ex, HttpLimits limits, Handler handler);
  ~HttpServer();  // stops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds "host:port" (port 0: chosen by the OS) and starts accepting.
  Result<void> start(const std::string& address);
  // "host:port" actually bound; empty before start().
  std::string bound_address() const;
  // Closes the listener and every open connection; the handler is not called afterwards.
  void stop();

  struct State;  // shared with the connection coroutines, which may outlive a stop()

 private:
  std::shared_ptr<State> state_;
};

}  // namespace p2pmq::metrics
