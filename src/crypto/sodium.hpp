#pragma once
// libsodium must be initialised once before use (it picks CPU-specific code and seeds its RNG).

namespace p2pmq::crypto {

// Thread-safe and idempotent; throws std::runtime_error if libsodium cannot start.
void ensure_sodium();

}  // namespace p2pmq::crypto
