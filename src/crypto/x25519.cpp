#include "crypto/x25519.hpp"

#include <sodium.h>

#include <stdexcept>

#include "crypto/sodium.hpp"

namespace p2pmq::crypto {

X25519Keypair X25519Keypair::generate() {
  ensure_sodium();
  X25519Keypair kp;
  randombytes_buf(kp.secret.data(), kp.secret.size());
  if (crypto_scalarmult_base(kp.public_key.data(), kp.secret.data()) != 0)
    throw std::runtime_error("crypto_scalarmult_base failed");
  return kp;
}

Result<X25519Key> x25519(const X25519Key& secret, const X25519Key& peer_public) {
  ensure_sodium();
  X25519Key shared;
  // libsodium returns -1 exactly when the result is all zeros.
  if (crypto_scalarmult(shared.data(), secret.data(), peer_public.data()) != 0)
    return fail(Errc::crypto_failure, "x25519: low-order peer public key");
  return shared;
}

}  // namespace p2pmq::crypto
