#pragma once
// Turns a raw TCP socket into a libp2p connection: multistream-select /noise, the Noise XX
// handshake, multistream-select /yamux/1.0.0 inside Noise, then the Yamux session.
#include <optional>

#include "host/connection.hpp"

namespace p2pmq::host {

struct UpgradeConfig {
  yamux::Config yamux;
  std::chrono::milliseconds timeout{15000};
};

// On success the connection is built but not started. expected_peer, when dialing a /p2p/
// address, must match the key the remote proves in the handshake. The handshake ends (socket
// closed) at config.timeout, or when `abort` is notified.
Task<Result<std::shared_ptr<Connection>>> upgrade(tcp::socket socket, bool initiator,
                                                  const crypto::PrivateKey& identity,
                                                  std::optional<crypto::PeerId> expected_peer,
                                                  const UpgradeConfig& config,
                                                  Signal* abort = nullptr);

// The multiaddr of a TCP endpoint (ip4 or ip6).
Multiaddr to_multiaddr(const tcp::endpoint& endpoint);

}  // namespace p2pmq::host
