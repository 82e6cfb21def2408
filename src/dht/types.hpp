#pragma once
// Vocabulary shared by the Kademlia DHT (libp2p/specs kad-dht) modules.
#include <chrono>
#include <string>
#include <string_view>

#include "crypto/peer_id.hpp"

namespace p2pmq::dht {

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;
using Duration = Clock::duration;
using crypto::PeerId;
using crypto::PeerIdHash;

using namespace std::chrono_literals;

// The stock protocol id joins public libp2p DHTs; p2pmq networks use their own prefix so their
// routing tables are never polluted by (or pollute) the IPFS DHT.
inline constexpr std::string_view kKadProtocolSuffix = "/kad/1.0.0";
inline constexpr std::string_view kIpfsPrefix = "/ipfs";
inline constexpr std::string_view kP2pmqPrefix = "/p2pmq";
inline std::string kad_protocol_id(std::string_view prefix) {
  return std::string(prefix) + std::string(kKadProtocolSuffix);
}

// client: queries only, never answers (the adapter neither registers nor advertises the
// protocol, so peers keep it out of their routing tables). server: answers requests and stores
// records. bootstrapper: a server that is a well-known entry point; it answers and stores like
// a server but does not advertise topics of its own.
enum class Mode { client, server, bootstrapper };

}  // namespace p2pmq::dht
