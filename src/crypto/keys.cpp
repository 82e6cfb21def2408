#include "crypto/keys.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <secp256k1.h>
#include <sodium.h>

#include <atomic>
#include <climits>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "core/varint.hpp"
#include "crypto/hash.hpp"
#include "crypto/sodium.hpp"

namespace p2pmq::crypto {
namespace {

// ---- the key protobuf ----

Bytes encode_key_proto(KeyType type, BytesView data) {
  Bytes out;
  out.reserve(3 + varint_size(data.size()) + data.size());
  out.push_back(0x08);  // field 1, varint
  out.push_back(static_cast<uint8_t>(type));
  out.push_back(0x12);  // field 2, length-delimited
  varint_append(out, data.size());
  append(out, data);
  return out;
}

struct KeyProto {
  KeyType type;
  BytesView data;
};

// Only the canonical form: both fields, in order, minimal varints, nothing else.
Result<KeyProto> decode_key_proto(BytesView in) {
  if (in.size() > kMaxKeyProtoSize) return fail(Errc::limit_exceeded, "key protobuf too large");
  if (in.size() < 4 || in[0] != 0x08 || in[2] != 0x12)
    return fail(Errc::invalid_input, "key protobuf: not the canonical Type, Data encoding");
  if (in[1] > static_cast<uint8_t>(KeyType::ecdsa)) {
    if (in[1] & 0x80) return fail(Errc::invalid_input, "key protobuf: bad key type varint");
    return fail(Errc::unsupported, "key protobuf: unknown key type");
  }
  auto len = varint_decode(in.subspan(3));
  if (!len || !*len) return fail(Errc::invalid_input, "key protobuf: bad Data length");
  BytesView rest = in.subspan(3 + (*len)->length);
  if ((*len)->value != rest.size())
    return fail(Errc::invalid_input, "key protobuf: Data length does not match");
  return KeyProto{static_cast<KeyType>(in[1]), rest};
}

// ---- OpenSSL (RSA, ECDSA) ----

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::atomic<uint64_t> pkix_parse_count{0};

// The RSA public exponent's size in bits, or INT_MAX when it cannot be read.
int rsa_exponent_bits(const EVP_PKEY* key) {
  BIGNUM* e = nullptr;
  if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
    ERR_clear_error();
    return INT_MAX;
  }
  int bits = BN_num_bits(e);
  BN_free(e);
  return bits;
}

// PKIX SubjectPublicKeyInfo DER of the given kind, or null. Trailing bytes are refused so the
// encoding stays unique.
Pkey parse_pkix(BytesView der, KeyType type) {
  if (der.empty() || der.size() > kMaxKeyProtoSize) return nullptr;
  ++pkix_parse_count;
  const unsigned char* p = der.data();
  Pkey key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();  // failures queue errors per thread; don't let them pile up
  if (!key || p != der.data() + der.size()) return nullptr;
  if (type == KeyType::rsa) {
    if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) return nullptr;
    int bits = EVP_PKEY_get_bits(key.get());
    if (bits < kMinRsaBits || bits > kMaxRsaBits) return nullptr;
    if (rsa_exponent_bits(key.get()) > kMaxRsaExponentBits) return nullptr;
    return key;
  }
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC) return nullptr;
  char group[64];
  size_t group_len = 0;
  if (EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                     &group_len) != 1) {
    ERR_clear_error();
    return nullptr;  // explicit curve parameters: refused
  }
  std::string_view name(group, group_len);
  if (name != "prime256v1" && name != "secp384r1" && name != "secp521r1") return nullptr;
  return key;
}

// Parsed keys by type and bytes, least recently used first out. Refused keys are cached too
// (as null), so a bad key repeated in a thousand messages is parsed once. EVP_PKEY is safe to
// share between threads for verification; the map itself is behind a mutex.
class ParsedKeyCache {
 public:
  std::shared_ptr<EVP_PKEY> get(BytesView der, KeyType type) {
    std::string id(1, static_cast<char>(type));
    id += as_string(der);
    std::lock_guard lock(mu_);
    if (auto it = index_.find(id); it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return it->second->second;
    }
    std::shared_ptr<EVP_PKEY> key(parse_pkix(der, type).release(), PkeyFree());
    order_.emplace_front(id, key);
    index_[std::move(id)] = order_.begin();
    if (order_.size() > kParsedKeyCacheSize) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    return key;
  }
  size_t size() {
    std::lock_guard lock(mu_);
    return order_.size();
  }

 private:
  using Entry = std::pair<std::string, std::shared_ptr<EVP_PKEY>>;
  std::mutex mu_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

ParsedKeyCache& parsed_keys() {
  static ParsedKeyCache cache;
  return cache;
}

bool openssl_verify(BytesView der, KeyType type, BytesView message, BytesView signature) {
  std::shared_ptr<EVP_PKEY> key = parsed_keys().get(der, type);
  if (!key) return false;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  // RSA defaults to PKCS#1 v1.5 padding.
  bool ok = ctx &&
            EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
            EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                             message.size()) == 1;
  ERR_clear_error();
  return ok;
}

// ---- libsecp256k1 ----

const secp256k1_context* secp_ctx() {
  // The static context suffices for parsing and verification.
  static const bool checked = (secp256k1_selftest(), true);
  (void)checked;
  return secp256k1_context_static;
}

bool secp256k1_parse(BytesView data, secp256k1_pubkey& out) {
  if (data.size() != 33 && data.size() != 65) return false;
  return secp256k1_ec_pubkey_parse(secp_ctx(), &out, data.data(), data.size()) == 1;
}

bool secp256k1_verify(BytesView data, BytesView message, BytesView signature) {
  secp256k1_pubkey key;
  secp256k1_ecdsa_signature sig;
  // The static context aborts the process on a null argument: an empty span's data() may be null.
  if (signature.empty() || !secp256k1_parse(data, key)) return false;
  if (secp256k1_ecdsa_signature_parse_der(secp_ctx(), &sig, signature.data(), signature.size()) !=
      1)
    return false;
  // libsecp256k1 only verifies low-S signatures; other implementations produce both.
  secp256k1_ecdsa_signature_normalize(secp_ctx(), &sig, &sig);
  Digest32 hash = sha256(message);
  return secp256k1_ecdsa_verify(secp_ctx(), &sig, hash.data(), &key) == 1;
}

}  // namespace

namespace detail {
uint64_t pkix_parses() {
  return pkix_parse_count.load();
}
size_t parsed_key_cache_size() {
  return parsed_keys().size();
}
}  // namespace detail

// ---- PublicKey ----

Bytes PublicKey::encode() const {
  return encode_key_proto(type_, data_);
}

Result<PublicKey> PublicKey::decode(BytesView protobuf) {
  auto proto = decode_key_proto(protobuf);
  if (!proto) return tl::unexpected(proto.error());
  BytesView data = proto->data;
  bool valid = false;
  switch (proto->type) {
    case KeyType::ed25519:
      valid = data.size() == crypto_sign_PUBLICKEYBYTES;
      break;
    case KeyType::secp256k1: {
      secp256k1_pubkey key;
      valid = secp256k1_parse(data, key);
      break;
    }
    case KeyType::ecdsa:
    case KeyType::rsa:
      valid = parsed_keys().get(data, proto->type) != nullptr;  // verify() finds it parsed
      break;
  }
  if (!valid) return fail(Errc::invalid_input, "public key: malformed or out-of-bounds key data");
  return PublicKey(proto->type, Bytes(data.begin(), data.end()));
}

bool PublicKey::verify(BytesView message, BytesView signature) const {
  switch (type_) {
    case KeyType::ed25519:
      if (data_.size() != crypto_sign_PUBLICKEYBYTES || signature.size() != crypto_sign_BYTES)
        return false;
      ensure_sodium();
      return crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                         data_.data()) == 0;
    case KeyType::secp256k1:
      return secp256k1_verify(data_, message, signature);
    case KeyType::ecdsa:
    case KeyType::rsa:
      return openssl_verify(data_, type_, message, signature);
  }
  return false;  // a KeyType outside the enum
}

// ---- PrivateKey ----

PrivateKey::~PrivateKey() {
  sodium_memzero(secret_.data(), secret_.size());
}

PrivateKey PrivateKey::generate() {
  ensure_sodium();
  Seed seed;
  randombytes_buf(seed.data(), seed.size());
  PrivateKey key = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return key;
}

PrivateKey PrivateKey::from_seed(const Seed& seed) {
  ensure_sodium();
  PrivateKey key;
  std::array<uint8_t, crypto_sign_PUBLICKEYBYTES> pk;
  crypto_sign_seed_keypair(pk.data(), key.secret_.data(), seed.data());
  return key;
}

Result<PrivateKey> PrivateKey::decode(BytesView protobuf) {
  auto proto = decode_key_proto(protobuf);
  if (!proto) return tl::unexpected(proto.error());
  if (proto->type != KeyType::ed25519)
    return fail(Errc::unsupported, "private key: only Ed25519 identities are supported");
  BytesView data = proto->data;
  if (data.size() != 32 && data.size() != 64 && data.size() != 96)
    return fail(Errc::invalid_input, "private key: Ed25519 data must be 32, 64 or 96 bytes");
  Seed seed;
  std::memcpy(seed.data(), data.data(), seed.size());
  PrivateKey key = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  // The stored public halves must be the seed's.
  BytesView derived = BytesView(key.secret_).subspan(32);
  for (size_t off = 32; off < data.size(); off += 32) {
    if (sodium_memcmp(data.data() + off, derived.data(), 32) != 0)
      return fail(Errc::crypto_failure, "private key: public key does not match the seed");
  }
  return key;
}

Bytes PrivateKey::encode() const {
  return encode_key_proto(KeyType::ed25519, secret_);
}

PublicKey PrivateKey::public_key() const {
  return PublicKey(KeyType::ed25519, Bytes(secret_.begin() + 32, secret_.end()));
}

Bytes PrivateKey::sign(BytesView message) const {
  Bytes sig(crypto_sign_BYTES);
  crypto_sign_detached(sig.data(), nullptr, message.data(), message.size(), secret_.data());
  return sig;
}

}  // namespace p2pmq::crypto
