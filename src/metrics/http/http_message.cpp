#include "metrics/http/http_message.hpp"

namespace p2pmq::metrics {

namespace {

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

}  // namespace

Result<HttpRequest> parse_request_head(std::string_view head) {
  auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) return fail(Errc::invalid_input, "no request line");
  std::string_view line = head.substr(0, eol);
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return fail(Errc::invalid_input, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!version.starts_with("HTTP/1.")) return fail(Errc::invalid_input, "not HTTP/1.x");
  if (target.empty() || target.front() != '/') return fail(Errc::invalid_input, "bad target");
  if (method != "GET" && method != "HEAD") return fail(Errc::unsupported, "method not allowed");
  auto query = target.find_first_of("?#");
  return HttpRequest{std::string(method), std::string(target.substr(0, query))};
}

std::string format_response(const HttpResponse& r, bool head_only) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n";
  if (!head_only) out += r.body;
  return out;
}

}  // namespace p2pmq::metrics
