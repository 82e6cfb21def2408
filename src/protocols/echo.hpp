#pragma once
// /p2pmq/echo/1.0.0: returns every byte it receives and closes its side at EOF. Used by the
// interop tests and the throughput benchmarks.
#include "host/host.hpp"

namespace p2pmq::protocols {

inline constexpr std::string_view kEchoProtocol = "/p2pmq/echo/1.0.0";

void serve_echo(host::Host& host);

}  // namespace p2pmq::protocols
