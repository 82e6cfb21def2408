#pragma once
// The agent daemon: a libp2p host with identify, ping and gossipsub, plus (for scripts and
// tests) a line protocol on stdin/stdout. The gRPC API comes on top of this.
#include <optional>
#include <string>
#include <vector>

#include "crypto/keys.hpp"

namespace p2pmq::cli {

struct AgentOptions {
  crypto::PrivateKey key;
  std::vector<std::string> listen;
  std::vector<std::string> bootstrap;
  std::vector<std::string> topics;
  std::vector<std::string> gossip_params;  // KEY=VALUE
  bool echo = false;
  bool perf = false;
  bool stdio = false;
  std::string agent_version;
};

int run_agent(AgentOptions options);

}  // namespace p2pmq::cli
