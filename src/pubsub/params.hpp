#pragma once
// Setting gossipsub parameters by name, for command-line flags (`--gossip D=8`) and, later, the
// YAML config. Names are GossipsubConfig's field names; durations take a unit suffix (ms, s).
#include <string>
#include <string_view>
#include <vector>

#include "pubsub/router.hpp"

namespace p2pmq::pubsub {

// "D_lo=4" style; names the key in the error.
Result<void> set_gossip_param(GossipsubConfig& config, std::string_view key,
                              std::string_view value);
Result<void> set_gossip_param(GossipsubConfig& config, std::string_view assignment);
std::vector<std::string> gossip_param_names();

}  // namespace p2pmq::pubsub
