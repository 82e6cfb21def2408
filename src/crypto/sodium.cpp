#include "crypto/sodium.hpp"

#include <sodium.h>

#include <stdexcept>

namespace p2pmq::crypto {

void ensure_sodium() {
  // Function-local static: C++ guarantees one initialisation even across threads.
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium initialisation failed");
}

}  // namespace p2pmq::crypto
