#include "crypto/hash.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <new>
#include <stdexcept>

namespace p2pmq::crypto {
namespace {

// Fetched once: avoids the provider look-up that EVP_sha256() costs on every init.
const EVP_MD* sha256_md() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

void check(int ok) {
  // Only allocation failure can make these fail.
  if (ok != 1) throw std::bad_alloc();
}

}  // namespace

Digest32 sha256(BytesView data) {
  Digest32 out;
  check(EVP_Digest(data.data(), data.size(), out.data(), nullptr, sha256_md(), nullptr));
  return out;
}

void Sha256::Free::operator()(evp_md_ctx_st* ctx) const {
  EVP_MD_CTX_free(ctx);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_) throw std::bad_alloc();
  check(EVP_DigestInit_ex(ctx_.get(), sha256_md(), nullptr));
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(BytesView data) {
  check(EVP_DigestUpdate(ctx_.get(), data.data(), data.size()));
}

Digest32 Sha256::finish() {
  Digest32 out;
  check(EVP_DigestFinal_ex(ctx_.get(), out.data(), nullptr));
  check(EVP_DigestInit_ex(ctx_.get(), sha256_md(), nullptr));
  return out;
}

Digest32 hmac_sha256(BytesView key, BytesView data) {
  Digest32 out;
  unsigned int len = 0;
  // A null key pointer would make OpenSSL reuse the previous key; point at something valid.
  static const uint8_t empty = 0;
  if (!HMAC(sha256_md(), key.empty() ? &empty : key.data(), static_cast<int>(key.size()),
            data.data(), data.size(), out.data(), &len))
    throw std::bad_alloc();
  return out;
}

Bytes hkdf_sha256(BytesView salt, BytesView ikm, BytesView info, size_t length) {
  if (length > 255 * 32) throw std::invalid_argument("hkdf_sha256: length > 255*HashLen");
  // RFC 5869 2.2: an absent salt is HashLen zero bytes, which HMAC pads to the same key as "".
  Digest32 prk = hmac_sha256(salt, ikm);
  Bytes out;
  out.reserve(length + 32);
  Bytes block;  // T(i-1) || info || i
  Digest32 t{};
  for (uint8_t i = 1; out.size() < length; ++i) {
    block.clear();
    if (i > 1) block.insert(block.end(), t.begin(), t.end());
    append(block, info);
    block.push_back(i);
    t = hmac_sha256(prk, block);
    out.insert(out.end(), t.begin(), t.end());
  }
  out.resize(length);
  OPENSSL_cleanse(prk.data(), prk.size());
  OPENSSL_cleanse(t.data(), t.size());
  OPENSSL_cleanse(block.data(), block.size());
  return out;
}

}  // namespace p2pmq::crypto
