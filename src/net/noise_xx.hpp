#pragma once
// The Noise protocol framework (noiseprotocol.org, revision 34) reduced to what libp2p uses:
// Noise_XX_25519_ChaChaPoly_SHA256. Internal to net/noise.hpp; separate so the test vectors
// (cacophony) can drive it with fixed keys, a prologue and raw payloads.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "crypto/aead.hpp"
#include "crypto/hash.hpp"
#include "crypto/x25519.hpp"

namespace p2pmq::noise::detail {

inline constexpr std::string_view kProtocolName = "Noise_XX_25519_ChaChaPoly_SHA256";
inline constexpr size_t kMaxMessage = 65535;  // Noise's bound, also the 2-byte frame's
inline constexpr size_t kDhLen = 32;
// 2^64-1 is reserved by the spec: a key that reaches it must not be used again.
inline constexpr uint64_t kMaxNonce = UINT64_MAX;

// A key and its nonce counter. The nonce is 4 zero bytes || little-endian 64-bit counter.
class CipherState {
 public:
  CipherState() = default;
  explicit CipherState(const crypto::AeadKey& key) : key_(key), has_key_(true) {}

  bool has_key() const { return has_key_; }
  uint64_t nonce() const { return n_; }
  void set_nonce(uint64_t n) { n_ = n; }  // tests only: reach the limit without 2^64 frames
  bool exhausted() const { return n_ == kMaxNonce; }

  // Writes plaintext.size() + 16 bytes to out (out may equal plaintext.data()).
  // Callers check exhausted() first.
  void seal(BytesView ad, BytesView plaintext, uint8_t* out) {
    crypto::aead_seal(key_, make_nonce(), ad, plaintext, out);
    ++n_;
  }
  // Writes ct.size() - 16 bytes to out. False on a bad tag or an exhausted nonce.
  [[nodiscard]] bool open(BytesView ad, BytesView ct, uint8_t* out) {
    if (exhausted() || !crypto::aead_open(key_, make_nonce(), ad, ct, out)) return false;
    ++n_;
    return true;
  }

 private:
  crypto::AeadNonce make_nonce() const {
    crypto::AeadNonce nonce{};
    for (size_t i = 0; i < 8; ++i) nonce[4 + i] = static_cast<uint8_t>(n_ >> (8 * i));
    return nonce;
  }

  crypto::AeadKey key_{};
  uint64_t n_ = 0;
  bool has_key_ = false;
};

// Noise's SymmetricState: chaining key, handshake hash and the current handshake cipher.
class SymmetricState {
 public:
  SymmetricState();
  void mix_hash(BytesView data);
  void mix_key(BytesView ikm);
  // Appends the ciphertext (or the plaintext, before the first key) to out; hashes it.
  void encrypt_and_hash(BytesView plaintext, Bytes& out);
  // Appends the plaintext to out. Fails on a bad tag.
  Result<void> decrypt_and_hash(BytesView ciphertext, Bytes& out);
  size_t overhead() const { return cipher_.has_key() ? crypto::kAeadTag : 0; }
  // (initiator-to-responder key, responder-to-initiator key).
  std::pair<crypto::AeadKey, crypto::AeadKey> split() const;
  const crypto::Digest32& handshake_hash() const { return h_; }

 private:
  crypto::Digest32 ck_{};
  crypto::Digest32 h_{};
  CipherState cipher_;
};

// The XX pattern:  -> e   <- e, ee, s, es   -> s, se
class XXState {
 public:
  XXState(bool initiator, const crypto::X25519Keypair& static_key,
          const crypto::X25519Keypair& ephemeral_key, BytesView prologue);

  // Appends this side's next handshake message (unframed) carrying payload.
  Result<void> write_message(BytesView payload, Bytes& out);
  // Reads the remote's next handshake message; appends its payload to payload_out.
  Result<void> read_message(BytesView message, Bytes& payload_out);

  bool initiator() const { return initiator_; }
  // Messages processed so far (0..3); 3 means the handshake is finished.
  int step() const { return step_; }
  bool finished() const { return step_ == 3; }
  bool my_turn_to_write() const { return !finished() && ((step_ % 2 == 0) == initiator_); }
  // Valid once the remote's s token was read (initiator: after message 2, responder: after 3).
  const crypto::X25519Key& remote_static() const { return rs_; }
  const crypto::X25519Key& local_static() const { return s_.public_key; }
  const crypto::Digest32& handshake_hash() const { return sym_.handshake_hash(); }
  std::pair<crypto::AeadKey, crypto::AeadKey> split() const { return sym_.split(); }

 private:
  Result<void> mix_dh(const crypto::X25519Key& secret, const crypto::X25519Key& remote);

  bool initiator_;
  int step_ = 0;
  SymmetricState sym_;
  crypto::X25519Keypair s_;
  crypto::X25519Keypair e_;
  crypto::X25519Key re_{};
  crypto::X25519Key rs_{};
};

}  // namespace p2pmq::noise::detail
