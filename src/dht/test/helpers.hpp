#pragma once
// Shared test helpers: deterministic peer ids and addresses.
#include <string>

#include "core/multiaddr.hpp"
#include "core/multihash.hpp"
#include "crypto/hash.hpp"
#include "crypto/peer_id.hpp"

namespace p2pmq::dht::test {

// A sha2-256 peer id: the same shape as an RSA/secp peer id, cheap to make by the thousand.
inline crypto::PeerId peer(int i) {
  auto d = crypto::sha256(as_bytes("peer-" + std::to_string(i)));
  return crypto::PeerId::from_bytes(
             Multihash{multihash::kSha2_256, Bytes(d.begin(), d.end())}.encode())
      .value();
}

inline Multiaddr addr(int port) {
  return Multiaddr::parse("/ip4/10.0.0.1/tcp/" + std::to_string(port)).value();
}

}  // namespace p2pmq::dht::test
