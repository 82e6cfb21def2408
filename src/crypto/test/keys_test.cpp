#include "crypto/keys.hpp"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <secp256k1.h>

#include <memory>

#include "core/varint.hpp"
#include "crypto/hash.hpp"
#include "spec_vectors.hpp"
#include "test_util.hpp"

namespace p2pmq::crypto {
namespace {

using test::hex;
using test::hex_array;

// Data field of a key protobuf (test input is canonical).
Bytes proto_data(const Bytes& proto) {
  auto len = varint_decode(BytesView(proto).subspan(3));
  return Bytes(proto.begin() + 3 + (*len)->length, proto.end());
}

// ---- OpenSSL helpers to make keys and signatures the way other implementations do ----

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey load_private_der(const Bytes& der) {
  const unsigned char* p = der.data();
  return Pkey(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der.size())));
}

Bytes pkix(EVP_PKEY* key) {
  unsigned char* buf = nullptr;
  int n = i2d_PUBKEY(key, &buf);
  Bytes out(buf, buf + n);
  OPENSSL_free(buf);
  return out;
}

Bytes openssl_sign(EVP_PKEY* key, BytesView message) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key), 1);
  size_t len = 0;
  EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()), 1);
  Bytes sig(len);
  EXPECT_EQ(EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()), 1);
  sig.resize(len);
  return sig;
}

PublicKey decode_ok(std::string_view proto_hex) {
  auto key = PublicKey::decode(hex(proto_hex));
  EXPECT_TRUE(key) << key.error().to_string();
  return *key;
}

const Bytes kMessage = to_bytes("libp2p key test message");

// ---- the protobuf ----

TEST(PublicKeyProto, SpecVectorsRoundTrip) {
  const std::pair<std::string_view, KeyType> vectors[] = {
      {test::kEd25519Public, KeyType::ed25519},
      {test::kSecp256k1Public, KeyType::secp256k1},
      {test::kEcdsaPublic, KeyType::ecdsa},
      {test::kRsaPublic, KeyType::rsa},
  };
  for (auto [h, type] : vectors) {
    PublicKey key = decode_ok(h);
    EXPECT_EQ(key.type(), type);
    EXPECT_EQ(key.data(), proto_data(hex(h)));
    EXPECT_EQ(key.encode(), hex(h));
  }
}

TEST(PublicKeyProto, RejectsNonCanonicalAndMalformed) {
  const Bytes good = hex(test::kEd25519Public);
  auto rejects = [](const Bytes& b, Errc code) {
    auto r = PublicKey::decode(b);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, code);
  };
  rejects({}, Errc::invalid_input);
  rejects(Bytes(good.begin(), good.end() - 1), Errc::invalid_input);  // truncated
  Bytes trailing = good;
  trailing.push_back(0);
  rejects(trailing, Errc::invalid_input);
  // Data before Type.
  Bytes swapped = {0x12, 0x20};
  swapped.insert(swapped.end(), good.begin() + 4, good.end());
  swapped.insert(swapped.end(), {0x08, 0x01});
  rejects(swapped, Errc::invalid_input);
  // Non-minimal length varint (0xa0 0x00 for 32).
  Bytes overlong = {0x08, 0x01, 0x12, 0xa0, 0x00};
  overlong.insert(overlong.end(), good.begin() + 4, good.end());
  rejects(overlong, Errc::invalid_input);
  Bytes unknown_type = good;
  unknown_type[1] = 9;
  rejects(unknown_type, Errc::unsupported);
  Bytes big_type = good;
  big_type[1] = 0x81;
  rejects(big_type, Errc::invalid_input);
  // Ed25519 with 31 bytes of data.
  Bytes short_key = {0x08, 0x01, 0x12, 0x1f};
  short_key.insert(short_key.end(), good.begin() + 4, good.end() - 1);
  rejects(short_key, Errc::invalid_input);
  // Secp256k1 that is not a curve point.
  Bytes bad_point = hex(test::kSecp256k1Public);
  bad_point[4] = 0x05;
  rejects(bad_point, Errc::invalid_input);
  // An RSA key with an ECDSA body and vice versa.
  Bytes ecdsa_as_rsa = hex(test::kEcdsaPublic);
  ecdsa_as_rsa[1] = 0;
  rejects(ecdsa_as_rsa, Errc::invalid_input);
  Bytes rsa_as_ecdsa = hex(test::kRsaPublic);
  rsa_as_ecdsa[1] = 3;
  rejects(rsa_as_ecdsa, Errc::invalid_input);
  // Over the size bound.
  Bytes huge = {0x08, 0x00, 0x12};
  varint_append(huge, kMaxKeyProtoSize);
  huge.resize(huge.size() + kMaxKeyProtoSize);
  rejects(huge, Errc::limit_exceeded);
}

// ---- Ed25519 ----

TEST(Ed25519, SpecPrivateKeyVector) {
  auto priv = PrivateKey::decode(hex(test::kEd25519Private));
  ASSERT_TRUE(priv) << priv.error().to_string();
  EXPECT_EQ(priv->public_key().encode(), hex(test::kEd25519Public));
  EXPECT_EQ(priv->encode(), hex(test::kEd25519Private));
  Bytes sig = priv->sign(kMessage);
  EXPECT_TRUE(decode_ok(test::kEd25519Public).verify(kMessage, sig));
}

// RFC 8032 section 7.1, tests 1 and 2.
TEST(Ed25519, Rfc8032) {
  struct Case {
    std::string_view secret, public_key, message, signature;
  };
  const Case cases[] = {
      {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
       "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
       "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
       "1cf9b46bd25bf5f0595bbe24655141438e7a100b"},
      {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
       "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
       "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613"
       "d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
  };
  for (const auto& c : cases) {
    PrivateKey priv = PrivateKey::from_seed(hex_array<32>(c.secret));
    PublicKey pub = priv.public_key();
    EXPECT_EQ(pub, PublicKey(KeyType::ed25519, hex(c.public_key)));
    Bytes msg = hex(c.message);
    EXPECT_EQ(priv.sign(msg), hex(c.signature));
    EXPECT_TRUE(pub.verify(msg, hex(c.signature)));
    Bytes bad = hex(c.signature);
    bad[10] ^= 4;
    EXPECT_FALSE(pub.verify(msg, bad));
    EXPECT_FALSE(pub.verify(msg, BytesView(hex(c.signature)).first(63)));
  }
}

TEST(Ed25519, GenerateSignVerify) {
  PrivateKey a = PrivateKey::generate();
  PrivateKey b = PrivateKey::generate();
  EXPECT_NE(a.public_key(), b.public_key());
  Bytes sig = a.sign(kMessage);
  EXPECT_TRUE(a.public_key().verify(kMessage, sig));
  EXPECT_FALSE(b.public_key().verify(kMessage, sig));
  EXPECT_FALSE(a.public_key().verify(as_bytes("other"), sig));
  PrivateKey copy = a;
  EXPECT_EQ(copy.sign(kMessage), sig);  // Ed25519 is deterministic
  auto decoded = PrivateKey::decode(a.encode());
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->public_key(), a.public_key());
}

TEST(Ed25519, PrivateKeyFormats) {
  Bytes full = proto_data(hex(test::kEd25519Private));  // seed || public
  auto make = [](BytesView data) {
    Bytes p = {0x08, 0x01, 0x12};
    varint_append(p, data.size());
    append(p, data);
    return p;
  };
  const Bytes expected_pub = proto_data(hex(test::kEd25519Public));
  auto seed_only = PrivateKey::decode(make(BytesView(full).first(32)));
  ASSERT_TRUE(seed_only);
  EXPECT_EQ(seed_only->public_key().data(), expected_pub);
  Bytes legacy = full;
  append(legacy, BytesView(full).subspan(32));
  auto from_legacy = PrivateKey::decode(make(legacy));
  ASSERT_TRUE(from_legacy);
  EXPECT_EQ(from_legacy->public_key().data(), expected_pub);
  Bytes mismatched = legacy;
  mismatched.back() ^= 1;
  EXPECT_FALSE(PrivateKey::decode(make(mismatched)));
  Bytes wrong_pub = full;
  wrong_pub[40] ^= 1;
  EXPECT_FALSE(PrivateKey::decode(make(wrong_pub)));
  EXPECT_FALSE(PrivateKey::decode(make(BytesView(full).first(48))));
  auto secp = PrivateKey::decode(hex(test::kSecp256k1Private));
  ASSERT_FALSE(secp);
  EXPECT_EQ(secp.error().code, Errc::unsupported);
}

// ---- Secp256k1 ----

struct SecpCtx {
  secp256k1_context* ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
  ~SecpCtx() { secp256k1_context_destroy(ctx); }
};

TEST(Secp256k1, SpecVectorSignVerify) {
  SecpCtx s;
  Bytes secret = proto_data(hex(test::kSecp256k1Private));
  ASSERT_EQ(secret.size(), 32u);
  // The spec's public key belongs to its private key.
  secp256k1_pubkey pub;
  ASSERT_EQ(secp256k1_ec_pubkey_create(s.ctx, &pub, secret.data()), 1);
  Bytes compressed(33);
  size_t len = compressed.size();
  secp256k1_ec_pubkey_serialize(s.ctx, compressed.data(), &len, &pub, SECP256K1_EC_COMPRESSED);
  PublicKey key = decode_ok(test::kSecp256k1Public);
  EXPECT_EQ(key.data(), compressed);

  Digest32 hash = sha256(kMessage);
  secp256k1_ecdsa_signature sig;
  ASSERT_EQ(secp256k1_ecdsa_sign(s.ctx, &sig, hash.data(), secret.data(), nullptr, nullptr), 1);
  Bytes der(72);
  len = der.size();
  secp256k1_ecdsa_signature_serialize_der(s.ctx, der.data(), &len, &sig);
  der.resize(len);
  EXPECT_TRUE(key.verify(kMessage, der));
  EXPECT_FALSE(key.verify(as_bytes("other"), der));

  // The same signature with high S (s -> n - s) also verifies, as in go-libp2p.
  uint8_t compact[64];
  secp256k1_ecdsa_signature_serialize_compact(s.ctx, compact, &sig);
  ASSERT_EQ(secp256k1_ec_seckey_negate(s.ctx, compact + 32), 1);
  secp256k1_ecdsa_signature high;
  ASSERT_EQ(secp256k1_ecdsa_signature_parse_compact(s.ctx, &high, compact), 1);
  Bytes high_der(72);
  len = high_der.size();
  secp256k1_ecdsa_signature_serialize_der(s.ctx, high_der.data(), &len, &high);
  high_der.resize(len);
  EXPECT_NE(high_der, der);
  EXPECT_TRUE(key.verify(kMessage, high_der));

  // The uncompressed form of the same point is a valid key too.
  Bytes uncompressed(65);
  len = uncompressed.size();
  secp256k1_ec_pubkey_serialize(s.ctx, uncompressed.data(), &len, &pub, SECP256K1_EC_UNCOMPRESSED);
  Bytes proto = {0x08, 0x02, 0x12, 65};
  append(proto, uncompressed);
  auto long_key = PublicKey::decode(proto);
  ASSERT_TRUE(long_key);
  EXPECT_TRUE(long_key->verify(kMessage, der));

  EXPECT_FALSE(key.verify(kMessage, {}));
  EXPECT_FALSE(key.verify(kMessage, BytesView(compact, 64)));  // compact is not DER
}

// ---- ECDSA ----

TEST(Ecdsa, SpecVectorSignVerify) {
  Pkey priv = load_private_der(proto_data(hex(test::kEcdsaPrivate)));
  ASSERT_TRUE(priv);
  PublicKey key = decode_ok(test::kEcdsaPublic);
  EXPECT_EQ(pkix(priv.get()), key.data());
  Bytes sig = openssl_sign(priv.get(), kMessage);
  EXPECT_TRUE(key.verify(kMessage, sig));
  EXPECT_FALSE(key.verify(as_bytes("other"), sig));
  sig.back() ^= 1;
  EXPECT_FALSE(key.verify(kMessage, sig));
  EXPECT_FALSE(key.verify(kMessage, {}));
}

TEST(Ecdsa, CurvesAccepted) {
  for (const char* curve : {"P-384", "P-521"}) {
    Pkey priv(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
    ASSERT_TRUE(priv);
    Bytes proto = PublicKey(KeyType::ecdsa, pkix(priv.get())).encode();
    auto key = PublicKey::decode(proto);
    ASSERT_TRUE(key) << curve;
    EXPECT_TRUE(key->verify(kMessage, openssl_sign(priv.get(), kMessage)));
  }
  // secp256k1 belongs under its own key type, not ECDSA.
  Pkey k1(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "secp256k1"));
  ASSERT_TRUE(k1);
  EXPECT_FALSE(PublicKey::decode(PublicKey(KeyType::ecdsa, pkix(k1.get())).encode()));
}

// ---- RSA ----

TEST(Rsa, SpecVectorSignVerify) {
  Pkey priv = load_private_der(proto_data(hex(test::kRsaPrivate)));
  ASSERT_TRUE(priv);
  PublicKey key = decode_ok(test::kRsaPublic);
  EXPECT_EQ(pkix(priv.get()), key.data());
  Bytes sig = openssl_sign(priv.get(), kMessage);
  EXPECT_TRUE(key.verify(kMessage, sig));
  EXPECT_FALSE(key.verify(as_bytes("other"), sig));
  sig[5] ^= 1;
  EXPECT_FALSE(key.verify(kMessage, sig));
  EXPECT_FALSE(key.verify(kMessage, BytesView(sig).first(10)));
}

TEST(Rsa, RejectsSmallKeys) {
  Pkey small(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
  ASSERT_TRUE(small);
  PublicKey unchecked(KeyType::rsa, pkix(small.get()));
  EXPECT_FALSE(PublicKey::decode(unchecked.encode()));
  // verify() applies the same bounds to keys built without decode().
  EXPECT_FALSE(unchecked.verify(kMessage, openssl_sign(small.get(), kMessage)));
}

// ---- garbage ----

TEST(PublicKey, GarbageNeverVerifies) {
  const Bytes garbage = hex("3006020101020101deadbeef");
  for (auto type : {KeyType::rsa, KeyType::ed25519, KeyType::secp256k1, KeyType::ecdsa}) {
    PublicKey bogus(type, garbage);
    EXPECT_FALSE(bogus.verify(kMessage, garbage));
    EXPECT_FALSE(bogus.verify({}, {}));
  }
  for (auto h :
       {test::kEd25519Public, test::kSecp256k1Public, test::kEcdsaPublic, test::kRsaPublic}) {
    PublicKey key = decode_ok(h);
    EXPECT_FALSE(key.verify(kMessage, garbage));
    EXPECT_FALSE(key.verify(kMessage, Bytes(64, 0)));
  }
  EXPECT_FALSE(PublicKey(static_cast<KeyType>(7), garbage).verify(kMessage, garbage));
}

}  // namespace
}  // namespace p2pmq::crypto

namespace p2pmq::crypto {
namespace {

// An RSA public key with the spec vector's modulus and the given exponent (PKIX DER), as a
// hostile peer would make one: nothing checks that it matches any private key.
Bytes rsa_with_exponent(const char* exponent_hex) {
  Pkey spec = load_private_der(proto_data(hex(test::kRsaPrivate)));
  BIGNUM* n = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(spec.get(), OSSL_PKEY_PARAM_RSA_N, &n), 1);
  BIGNUM* e = nullptr;
  EXPECT_GT(BN_hex2bn(&e, exponent_hex), 0);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* raw = nullptr;
  EXPECT_EQ(EVP_PKEY_fromdata_init(ctx.get()), 1);
  EXPECT_EQ(EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params), 1);
  Pkey key(raw);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(n);
  BN_free(e);
  return pkix(key.get());
}

TEST(Rsa, RefusesExponentsAbove32Bits) {
  // 2^32 + 1 and a 3072-bit exponent: every verification would be a full modexp.
  const std::string exponent_3072_bits(768, 'f');
  for (const char* huge : {"100000001", exponent_3072_bits.c_str()}) {
    PublicKey unchecked(KeyType::rsa, rsa_with_exponent(huge));
    auto decoded = PublicKey::decode(unchecked.encode());
    EXPECT_FALSE(decoded);
    EXPECT_FALSE(unchecked.verify(kMessage, Bytes(256, 1)));
  }
  // 65537, 3 and the largest 32-bit odd exponent are keys like any other.
  for (const char* fine : {"10001", "3", "ffffffff"})
    EXPECT_TRUE(PublicKey::decode(PublicKey(KeyType::rsa, rsa_with_exponent(fine)).encode()))
        << fine;
}

TEST(Rsa, RepeatedVerificationsParseTheKeyOnce) {
  Pkey priv = load_private_der(proto_data(hex(test::kRsaPrivate)));
  PublicKey key = decode_ok(test::kRsaPublic);
  Bytes sig = openssl_sign(priv.get(), kMessage);
  ASSERT_TRUE(key.verify(kMessage, sig));
  uint64_t before = detail::pkix_parses();
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(key.verify(kMessage, sig));
  EXPECT_EQ(detail::pkix_parses(), before);
  // decode() of the same bytes is served from the cache too.
  EXPECT_TRUE(PublicKey::decode(hex(test::kRsaPublic)));
  EXPECT_EQ(detail::pkix_parses(), before);
}

TEST(Ecdsa, ParsedKeyCacheIsBounded) {
  for (size_t i = 0; i < kParsedKeyCacheSize + 50; ++i) {
    Pkey k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    PublicKey key(KeyType::ecdsa, pkix(k.get()));
    EXPECT_TRUE(key.verify(kMessage, openssl_sign(k.get(), kMessage)));
  }
  EXPECT_LE(detail::parsed_key_cache_size(), kParsedKeyCacheSize);
}

}  // namespace
}  // namespace p2pmq::crypto
