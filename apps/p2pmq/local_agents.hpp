#pragma once
// Agents as child processes of this binary on loopback, for `p2pmq devnet` and `p2pmq bench`:
// each runs `p2pmq agent` with ports 0 and prints its addresses, which the parent reads back.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace p2pmq::cli {

struct LocalAgent {
  pid_t pid = -1;
  int out = -1;           // its stdout (the addresses it printed at start)
  std::string multiaddr;  // its first listen address
  std::string grpc;       // host:port of its gRPC API
  std::string metrics;    // host:port of its /metrics and status page
  std::string name;
  std::string log;  // its stderr
};

// The path of the running p2pmq binary (/proc/self/exe), empty if unknown.
std::string self_binary();

// Starts `self agent` listening on 127.0.0.1 port 0 (libp2p, gRPC and metrics) with `extra`
// arguments, its stderr into `log_path`, and waits until it printed the three addresses. The pid is
// registered for kill_started_agents() until stop_agents() reaped it.
Result<LocalAgent> spawn_agent(const std::string& self, const std::string& name,
                               const std::vector<std::string>& extra, const std::string& log_path,
                               std::chrono::seconds startup_limit = std::chrono::seconds(30));

// SIGTERM to each, SIGKILL to those still running after `grace`; reaps them and closes their
// pipes. Leaves every entry with pid -1.
void stop_agents(std::vector<LocalAgent>& agents,
                 std::chrono::seconds grace = std::chrono::seconds(10));

// utime + stime of a process in seconds (/proc/PID/stat), 0 if unknown.
double cpu_seconds(pid_t pid);
// Its peak resident set size in bytes (/proc/PID/status VmHWM), 0 if unknown.
uint64_t peak_rss_bytes(pid_t pid);

// SIGKILL to every agent started and not yet stopped. Async-signal-safe: for a signal handler
// that must not leave agents behind when the process dies.
void kill_started_agents();

}  // namespace p2pmq::cli
