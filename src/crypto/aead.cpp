#include "crypto/aead.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "crypto/sodium.hpp"

namespace p2pmq::crypto {
namespace {

// Both libraries compute the same RFC 8439 construction. libsodium has less set-up cost, so it
// wins on small messages; OpenSSL's AVX-512 code wins from ~1 KiB (3.4 vs 1.35 GB/s at 64 KiB).
constexpr size_t kSodiumBelow = 512;

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

// One context per thread, keyed with the cipher once: later inits only reset key and nonce,
// which skips the provider set-up (~100 ns a message).
EVP_CIPHER_CTX* context() {
  thread_local std::unique_ptr<EVP_CIPHER_CTX, CtxFree> ctx = [] {
    std::unique_ptr<EVP_CIPHER_CTX, CtxFree> c(EVP_CIPHER_CTX_new());
    EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
    bool ok = c && cipher && EVP_EncryptInit_ex2(c.get(), cipher, nullptr, nullptr, nullptr) == 1;
    EVP_CIPHER_free(cipher);  // the context keeps its own reference
    if (!ok) throw std::runtime_error("ChaCha20-Poly1305: OpenSSL set-up failed");
    return c;
  }();
  return ctx.get();
}

[[noreturn]] void evp_failed() {
  throw std::runtime_error("ChaCha20-Poly1305: OpenSSL failure");
}

// EVP takes int lengths; feed large inputs in pieces (the cipher streams).
void update(EVP_CIPHER_CTX* ctx, bool encrypt, uint8_t* out, BytesView in) {
  constexpr size_t kChunk = size_t{1} << 30;
  for (size_t off = 0; off < in.size(); off += kChunk) {
    int n = static_cast<int>(std::min(kChunk, in.size() - off));
    int len = 0;
    uint8_t* dst = out ? out + off : nullptr;
    int ok = encrypt ? EVP_EncryptUpdate(ctx, dst, &len, in.data() + off, n)
                     : EVP_DecryptUpdate(ctx, dst, &len, in.data() + off, n);
    if (ok != 1) evp_failed();
  }
}

}  // namespace

void aead_seal(const AeadKey& key, const AeadNonce& nonce, BytesView ad, BytesView plaintext,
               uint8_t* out) {
  if (plaintext.size() < kSodiumBelow) {
    ensure_sodium();
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(
        out, out + plaintext.size(), nullptr, plaintext.data(), plaintext.size(), ad.data(),
        ad.size(), nullptr, nonce.data(), key.data());
    return;
  }
  EVP_CIPHER_CTX* ctx = context();
  if (EVP_EncryptInit_ex2(ctx, nullptr, key.data(), nonce.data(), nullptr) != 1) evp_failed();
  if (!ad.empty()) update(ctx, true, nullptr, ad);
  update(ctx, true, out, plaintext);
  int len = 0;
  if (EVP_EncryptFinal_ex(ctx, out + plaintext.size(), &len) != 1) evp_failed();
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kAeadTag, out + plaintext.size()) != 1)
    evp_failed();
}

bool aead_open(const AeadKey& key, const AeadNonce& nonce, BytesView ad,
               BytesView ciphertext_and_tag, uint8_t* out) {
  if (ciphertext_and_tag.size() < kAeadTag) return false;
  const size_t n = ciphertext_and_tag.size() - kAeadTag;
  if (n < kSodiumBelow) {
    ensure_sodium();
    // libsodium checks the tag before writing anything.
    if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(
            out, nullptr, ciphertext_and_tag.data(), n, ciphertext_and_tag.data() + n, ad.data(),
            ad.size(), nonce.data(), key.data()) == 0)
      return true;
    if (n) sodium_memzero(out, n);
    return false;
  }
  // EVP_CTRL_AEAD_SET_TAG wants a mutable pointer; the input is const.
  std::array<uint8_t, kAeadTag> tag;
  std::copy_n(ciphertext_and_tag.data() + n, kAeadTag, tag.data());
  EVP_CIPHER_CTX* ctx = context();
  if (EVP_DecryptInit_ex2(ctx, nullptr, key.data(), nonce.data(), nullptr) != 1) evp_failed();
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kAeadTag, tag.data()) != 1) evp_failed();
  if (!ad.empty()) update(ctx, false, nullptr, ad);
  update(ctx, false, out, ciphertext_and_tag.first(n));
  int len = 0;
  if (EVP_DecryptFinal_ex(ctx, out + n, &len) != 1) {
    // OpenSSL decrypts before it checks: never hand out unauthenticated plaintext.
    OPENSSL_cleanse(out, n);
    return false;
  }
  return true;
}

}  // namespace p2pmq::crypto
