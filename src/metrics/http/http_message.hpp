#pragma once
// The bytes of the metrics listener's HTTP/1.1 exchange: the request head it accepts and the
// answer it writes. Pure functions over bytes a local client sent, fuzzed (fuzz/http_head_fuzz).
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace p2pmq::metrics {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// The path of a GET or HEAD request (query string dropped), from a complete request head (up to
// and including the blank line). An error for anything else: the server answers 400 or 405.
struct HttpRequest {
  std::string method;
  std::string path;
};
Result<HttpRequest> parse_request_head(std::string_view head);
// The bytes of an answer (status line, headers, body unless `head_only`).
std::string format_response(const HttpResponse& r, bool head_only);

}  // namespace p2pmq::metrics
