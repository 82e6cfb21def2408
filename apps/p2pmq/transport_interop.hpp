#pragma once
// `p2pmq transport-interop`: the ping test of libp2p/test-plans transport-interop. Configured by
// the framework's environment variables; the listener RPUSHes its address to `listenerAddr` in
// redis, the dialer BLPOPs it, dials, pings once and prints its result as JSON on stdout.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "core/result.hpp"

namespace p2pmq::cli {

struct TransportInteropConfig {
  bool is_dialer = false;
  std::string ip = "0.0.0.0";  // where the listener binds
  std::string redis_host = "redis";
  uint16_t redis_port = 6379;
  std::chrono::seconds timeout{180};  // the whole test, either role
};

// Reads `transport`, `security`, `muxer`, `is_dialer`, `ip`, `redis_addr` and
// `test_timeout_seconds` through `env` (std::getenv in the binary; nullptr when unset), with the
// framework's defaults. Only tcp/noise/yamux is supported: anything else is an error naming it.
Result<TransportInteropConfig> transport_interop_config(
    const std::function<const char*(const char*)>& env);

// Runs one role; returns the exit status (0: done, 1: failed or timed out, 2: bad environment).
int run_transport_interop();

}  // namespace p2pmq::cli
