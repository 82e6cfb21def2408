#include "host/log_limit.hpp"

#include <cstdio>

namespace p2pmq::host {

bool LogLimit::allow(TimePoint now) {
  ++total_;
  if (in_window_ == 0 || now - window_start_ >= interval_) {
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= burst_) {
    ++suppressed_;
    return false;
  }
  ++in_window_;
  reported_suppressed_ = suppressed_;
  suppressed_ = 0;
  return true;
}

std::string escape_for_log(std::string_view text, size_t max_length) {
  std::string out;
  for (char ch : text) {
    if (out.size() >= max_length) {
      out += "...";
      break;
    }
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += ch;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

}  // namespace p2pmq::host
