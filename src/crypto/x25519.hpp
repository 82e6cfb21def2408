#pragma once
// X25519 Diffie-Hellman (RFC 7748), backed by libsodium.
#include <array>
#include <cstdint>

#include "core/result.hpp"

namespace p2pmq::crypto {

using X25519Key = std::array<uint8_t, 32>;

struct X25519Keypair {
  X25519Key secret;
  X25519Key public_key;

  static X25519Keypair generate();
};

// Fails with crypto_failure when the peer's point has small order (all-zero shared secret),
// which would let a peer force a known key.
Result<X25519Key> x25519(const X25519Key& secret, const X25519Key& peer_public);

}  // namespace p2pmq::crypto
