#pragma once
// libp2p identity keys (libp2p/specs peer-ids/peer-ids.md): the PublicKey/PrivateKey
// protobufs, signature verification for every key type, and Ed25519 signing for our own key.
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace p2pmq::crypto {

enum class KeyType { rsa = 0, ed25519 = 1, secp256k1 = 2, ecdsa = 3 };

// Bound on an encoded key protobuf from a peer; an 8192-bit RSA key needs ~1.1 KiB.
inline constexpr size_t kMaxKeyProtoSize = 4096;
// go-libp2p's RSA bounds: smaller keys are weak, larger ones are a verification DoS.
inline constexpr int kMinRsaBits = 2048;
inline constexpr int kMaxRsaBits = 8192;
// Larger public exponents make every verification a full modular exponentiation (a CPU DoS from
// one message); every real key uses 65537 (or 3). go's crypto/rsa refuses above 2^31 - 1.
inline constexpr int kMaxRsaExponentBits = 32;
// RSA and ECDSA keys are parsed once and kept (by their bytes) for the next verification: a
// small LRU, since one RPC can carry a thousand messages signed by the same key.
inline constexpr size_t kParsedKeyCacheSize = 256;

namespace detail {
// For tests: how many times PKIX key bytes were parsed, and the cache's current size.
uint64_t pkix_parses();
size_t parsed_key_cache_size();
}  // namespace detail

class PublicKey {
 public:
  // Trusts its input; decode() validates keys from peers.
  PublicKey(KeyType type, Bytes data) : type_(type), data_(std::move(data)) {}

  KeyType type() const { return type_; }
  const Bytes& data() const { return data_; }

  // The deterministic protobuf the spec requires: 0x08 <type> 0x12 <varint len> <data>.
  Bytes encode() const;
  // Accepts only that canonical encoding (so a peer id always hashes the bytes we were sent),
  // at most kMaxKeyProtoSize bytes, with Data well formed for its type:
  // Ed25519 32 bytes; Secp256k1 a compressed (or uncompressed) point; ECDSA PKIX DER on
  // P-256/P-384/P-521; RSA PKIX DER with kMinRsaBits..kMaxRsaBits and a public exponent of at
  // most kMaxRsaExponentBits bits.
  static Result<PublicKey> decode(BytesView protobuf);

  // Ed25519 over the message; the others over SHA-256 of it (Secp256k1 and ECDSA: DER
  // signatures, high S accepted as go-libp2p does; RSA: PKCS#1 v1.5). False on any garbage.
  bool verify(BytesView message, BytesView signature) const;

  bool operator==(const PublicKey&) const = default;

 private:
  KeyType type_;
  Bytes data_;
};

// Our own identity: Ed25519 only. The secret is wiped when the object dies.
class PrivateKey {
 public:
  using Seed = std::array<uint8_t, 32>;

  static PrivateKey generate();
  static PrivateKey from_seed(const Seed& seed);
  // Data: 64 bytes seed||public (go/js libp2p), the legacy 96 bytes seed||public||public,
  // or a bare 32-byte seed. The public half must match the seed.
  static Result<PrivateKey> decode(BytesView protobuf);
  Bytes encode() const;  // Data = seed||public

  PublicKey public_key() const;
  Bytes sign(BytesView message) const;  // 64-byte Ed25519 signature

  PrivateKey(const PrivateKey&) = default;
  PrivateKey& operator=(const PrivateKey&) = default;
  ~PrivateKey();

 private:
  PrivateKey() = default;
  std::array<uint8_t, 64> secret_{};  // libsodium layout: seed || public key
};

}  // namespace p2pmq::crypto
