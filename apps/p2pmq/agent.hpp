#pragma once
// The agent daemon: a libp2p host with identify, ping and gossipsub, the gRPC API, external
// validation, and (for scripts and tests) a line protocol on stdin/stdout.
#include <string>
#include <vector>

#include "agent/config.hpp"

namespace p2pmq::cli {

struct AgentOptions {
  agent::AgentConfig config;
  // Without a data dir (no --config, --data-dir or --key) the identity is fresh each run.
  bool ephemeral_identity = false;
  // State (seqno counters, watermarks, subscriptions, archive) lives in the data dir only when
  // one was chosen (--config or --data-dir): `--key` alone keeps an identity, not a data dir.
  bool persistent_state = false;
  std::vector<std::string> topics = {};  // joined at start
  bool echo = false;
  bool perf = false;
  bool stdio = false;
  bool log_level_from_cli = false;
  // Repair a corrupt state store (RocksDB RepairDB) before opening it.
  bool repair_state = false;
  std::string agent_version = {};
};

int run_agent(AgentOptions options);

}  // namespace p2pmq::cli
