// The raw Noise XX layer against the cacophony test vector for
// Noise_XX_25519_ChaChaPoly_SHA256 (the vectors noise-c, snow and others check against).
#include "net/noise_xx.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace p2pmq::noise::detail {
namespace {

Bytes hex(std::string_view s) {
  Bytes out;
  EXPECT_TRUE(from_hex(s, out)) << s;
  return out;
}

crypto::X25519Keypair keypair(std::string_view secret_hex) {
  crypto::X25519Keypair kp{};
  Bytes secret = hex(secret_hex);
  std::copy(secret.begin(), secret.end(), kp.secret.begin());
  const crypto::X25519Key base{9};  // the curve's base point u = 9
  kp.public_key = *crypto::x25519(kp.secret, base);
  return kp;
}

struct Message {
  const char* payload;
  const char* ciphertext;
};

// cacophony.txt, protocol_name "Noise_XX_25519_ChaChaPoly_SHA256".
constexpr const char* kPrologue = "4a6f686e2047616c74";
constexpr const char* kInitStatic =
    "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1";
constexpr const char* kInitEphemeral =
    "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a";
constexpr const char* kRespStatic =
    "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893";
constexpr const char* kRespEphemeral =
    "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b";
constexpr const char* kHandshakeHash =
    "c8e5f64e846193be2a834104c2a009868d6c9f3bd3c186299888b488b2f1f58e";
const Message kMessages[] = {
    {"4c756477696720766f6e204d69736573",
     "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79444c756477696720766f6e204d6973"
     "6573"},
    {"4d757272617920526f746862617264",
     "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884381cbad1f276e038c48378ffce2b6"
     "5285e08d6b68aaa3629a5a8639392490e5b9bd5269c2f1e4f488ed8831161f19b7815528f8982ffe09be9b5c412f"
     "8a0db50f8814c7194e83f23dbd8d162c9326ad"},
    {"462e20412e20486179656b",
     "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a80ae475b9df0f169ae80a89be0865"
     "b57f58c9fea0d4ec82a286427402f113e4b6ae769a1d95941d49b25030"},
    {"4361726c204d656e676572", "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df"},
    {"4a65616e2d426170746973746520536179",
     "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07f5"},
    {"457567656e2042f6686d20766f6e2042617765726b",
     "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3a58502ae3f"},
};

TEST(NoiseXXTest, CacophonyVector) {
  const Bytes prologue = hex(kPrologue);
  XXState init(true, keypair(kInitStatic), keypair(kInitEphemeral), prologue);
  XXState resp(false, keypair(kRespStatic), keypair(kRespEphemeral), prologue);

  // Handshake: messages 0 and 2 from the initiator, 1 from the responder.
  for (int i = 0; i < 3; ++i) {
    XXState& writer = i % 2 == 0 ? init : resp;
    XXState& reader = i % 2 == 0 ? resp : init;
    Bytes wire;
    ASSERT_TRUE(writer.write_message(hex(kMessages[i].payload), wire)) << i;
    EXPECT_EQ(to_hex(wire), kMessages[i].ciphertext) << i;
    Bytes payload;
    ASSERT_TRUE(reader.read_message(wire, payload)) << i;
    EXPECT_EQ(to_hex(payload), kMessages[i].payload) << i;
  }
  ASSERT_TRUE(init.finished());
  ASSERT_TRUE(resp.finished());
  EXPECT_EQ(to_hex(init.handshake_hash()), kHandshakeHash);
  EXPECT_EQ(to_hex(resp.handshake_hash()), kHandshakeHash);
  EXPECT_EQ(init.remote_static(), keypair(kRespStatic).public_key);
  EXPECT_EQ(resp.remote_static(), keypair(kInitStatic).public_key);

  // Transport: messages keep alternating, responder first; the initiator sends with the first key.
  auto [k1, k2] = init.split();
  CipherState init_send(k1), resp_send(k2);
  CipherState init_recv(k2), resp_recv(k1);
  for (int i = 3; i < 6; ++i) {
    CipherState& send = i % 2 == 0 ? init_send : resp_send;
    CipherState& recv = i % 2 == 0 ? resp_recv : init_recv;
    Bytes pt = hex(kMessages[i].payload);
    Bytes ct(pt.size() + crypto::kAeadTag);
    send.seal({}, pt, ct.data());
    EXPECT_EQ(to_hex(ct), kMessages[i].ciphertext) << i;
    Bytes back(pt.size());
    ASSERT_TRUE(recv.open({}, ct, back.data())) << i;
    EXPECT_EQ(back, pt);
  }
}

TEST(NoiseXXTest, NonceIsLittleEndianAfterFourZeroBytes) {
  crypto::AeadKey key{1, 2, 3};
  CipherState a(key), b(key);
  a.set_nonce(0x0102030405060708ULL);
  b.set_nonce(0x0102030405060708ULL);
  Bytes pt = to_bytes("x"), ct(1 + crypto::kAeadTag), out(1);
  a.seal({}, pt, ct.data());
  ASSERT_TRUE(b.open({}, ct, out.data()));
  // Reference: the AEAD with the nonce built by hand.
  crypto::AeadNonce nonce{0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1};
  Bytes ref(1 + crypto::kAeadTag);
  crypto::aead_seal(key, nonce, {}, pt, ref.data());
  EXPECT_EQ(ct, ref);
}

TEST(NoiseXXTest, ExhaustedNonceRefusesToOpen) {
  crypto::AeadKey key{};
  CipherState a(key);
  a.set_nonce(kMaxNonce);
  EXPECT_TRUE(a.exhausted());
  Bytes ct(crypto::kAeadTag), out(0);
  EXPECT_FALSE(a.open({}, ct, out.data()));
}

TEST(NoiseXXTest, OutOfOrderUseIsRefused) {
  XXState init(true, crypto::X25519Keypair::generate(), crypto::X25519Keypair::generate(), {});
  Bytes payload;
  EXPECT_FALSE(init.read_message(Bytes(32), payload));
  XXState resp(false, crypto::X25519Keypair::generate(), crypto::X25519Keypair::generate(), {});
  Bytes out;
  EXPECT_FALSE(resp.write_message({}, out));
  EXPECT_FALSE(resp.read_message(Bytes(31), payload));  // shorter than e
}

TEST(NoiseXXTest, LowOrderEphemeralIsRefused) {
  XXState init(true, crypto::X25519Keypair::generate(), crypto::X25519Keypair::generate(), {});
  XXState resp(false, crypto::X25519Keypair::generate(), crypto::X25519Keypair::generate(), {});
  Bytes msg1(32, 0), payload, out;  // the all-zero point: every DH with it is zero
  ASSERT_TRUE(resp.read_message(msg1, payload));
  auto r = resp.write_message({}, out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::crypto_failure);
}

}  // namespace
}  // namespace p2pmq::noise::detail
