#pragma once
// SHA-256, HMAC-SHA-256 and HKDF-SHA-256 (RFC 5869), backed by OpenSSL (uses SHA-NI when present).
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/bytes.hpp"

struct evp_md_ctx_st;

namespace p2pmq::crypto {

using Digest32 = std::array<uint8_t, 32>;

Digest32 sha256(BytesView data);

// Incremental SHA-256. finish() resets the state, so the object can be reused.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void update(BytesView data);
  Digest32 finish();

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

Digest32 hmac_sha256(BytesView key, BytesView data);

// RFC 5869 extract-then-expand. length must be <= 255 * 32 (throws std::invalid_argument otherwise:
// callers pass constants).
Bytes hkdf_sha256(BytesView salt, BytesView ikm, BytesView info, size_t length);

}  // namespace p2pmq::crypto
