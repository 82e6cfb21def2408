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
  std::vector<std::string> listen = {};
  std::vector<std::string> bootstrap = {};
  std::vector<std::string> topics = {};
  std::vector<std::string> gossip_params = {};  // KEY=VALUE
  bool echo = false;
  bool perf = false;
  bool stdio = false;
  std::string agent_version = {};
  std::string grpc_address = "127.0.0.1:0";  // "off" disables the gRPC API
  std::vector<std::string> validators = {};  // MsgValidation endpoints the agent dials
  unsigned validation_timeout_ms = 5000;
  std::string no_validator_policy = "ignore";  // or "accept"
};

int run_agent(AgentOptions options);

}  // namespace p2pmq::cli
