// parse_request_head on arbitrary bytes (what a local client sends the metrics listener), then
// the answer the server would write for what it accepted. An accepted request is a GET or HEAD
// of an absolute path with no query or fragment, taken from the request line alone.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "metrics/http_server.hpp"

using namespace p2pmq;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view head(reinterpret_cast<const char*>(data), size);
  auto request = metrics::parse_request_head(head);
  if (!request) return 0;
  check(request->method == "GET" || request->method == "HEAD");
  check(!request->path.empty() && request->path.front() == '/');
  check(request->path.find_first_of("?#") == std::string::npos);
  check(request->path.find("\r\n") == std::string::npos);
  check(head.find(request->path) != std::string_view::npos);
  metrics::HttpResponse response{404, "text/plain; charset=utf-8", request->path};
  const auto bytes = metrics::format_response(response, request->method == "HEAD");
  check(bytes.starts_with("HTTP/1.1 404 "));
  check(bytes.find("\r\n\r\n") != std::string::npos);
  return 0;
}
