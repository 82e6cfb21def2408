#include "net/noise_xx.hpp"

#include <algorithm>

namespace p2pmq::noise::detail {
namespace {

// Noise's HKDF with two outputs; the same as RFC 5869 with salt = ck and empty info.
std::pair<crypto::Digest32, crypto::Digest32> hkdf2(const crypto::Digest32& ck, BytesView ikm) {
  const crypto::Digest32 temp = crypto::hmac_sha256(ck, ikm);
  const uint8_t one = 0x01;
  const crypto::Digest32 out1 = crypto::hmac_sha256(temp, BytesView(&one, 1));
  uint8_t buf[33];
  std::copy(out1.begin(), out1.end(), buf);
  buf[32] = 0x02;
  return {out1, crypto::hmac_sha256(temp, BytesView(buf, sizeof buf))};
}

}  // namespace

SymmetricState::SymmetricState() {
  // The name is exactly HASHLEN bytes, so it is used as h directly rather than hashed.
  static_assert(kProtocolName.size() == sizeof(crypto::Digest32));
  std::copy(kProtocolName.begin(), kProtocolName.end(), h_.begin());
  ck_ = h_;
}

void SymmetricState::mix_hash(BytesView data) {
  crypto::Sha256 sha;
  sha.update(h_);
  sha.update(data);
  h_ = sha.finish();
}

void SymmetricState::mix_key(BytesView ikm) {
  auto [ck, key] = hkdf2(ck_, ikm);
  ck_ = ck;
  cipher_ = CipherState(key);
}

void SymmetricState::encrypt_and_hash(BytesView plaintext, Bytes& out) {
  const size_t start = out.size();
  if (!cipher_.has_key()) {
    append(out, plaintext);
  } else {
    out.resize(start + plaintext.size() + crypto::kAeadTag);
    cipher_.seal(h_, plaintext, out.data() + start);
  }
  mix_hash(BytesView(out).subspan(start));
}

Result<void> SymmetricState::decrypt_and_hash(BytesView ciphertext, Bytes& out) {
  if (!cipher_.has_key()) {
    append(out, ciphertext);
  } else {
    if (ciphertext.size() < crypto::kAeadTag) {
      return fail(Errc::invalid_input, "noise: handshake message too short");
    }
    const size_t start = out.size();
    out.resize(start + ciphertext.size() - crypto::kAeadTag);
    if (!cipher_.open(h_, ciphertext, out.data() + start)) {
      out.resize(start);
      return fail(Errc::crypto_failure, "noise: handshake message does not authenticate");
    }
  }
  mix_hash(ciphertext);
  return {};
}

std::pair<crypto::AeadKey, crypto::AeadKey> SymmetricState::split() const {
  return hkdf2(ck_, {});
}

XXState::XXState(bool initiator, const crypto::X25519Keypair& static_key,
                 const crypto::X25519Keypair& ephemeral_key, BytesView prologue)
    : initiator_(initiator), s_(static_key), e_(ephemeral_key) {
  sym_.mix_hash(prologue);
}

Result<void> XXState::mix_dh(const crypto::X25519Key& secret, const crypto::X25519Key& remote) {
  auto shared = crypto::x25519(secret, remote);
  if (!shared) return fail(Errc::crypto_failure, "noise: " + shared.error().message);
  sym_.mix_key(*shared);
  return {};
}

Result<void> XXState::write_message(BytesView payload, Bytes& out) {
  if (!my_turn_to_write()) return fail(Errc::protocol_violation, "noise: not our turn to write");
  // Fixed part of each message: e; e + encrypted s; encrypted s. Plus the payload's tag.
  static constexpr size_t kFixed[3] = {kDhLen, kDhLen + kDhLen + 16 + 16, kDhLen + 16 + 16};
  if (payload.size() > kMaxMessage - kFixed[step_]) {
    return fail(Errc::limit_exceeded, "noise: handshake payload too large");
  }
  if (step_ == 0 || step_ == 1) {  // e
    append(out, e_.public_key);
    sym_.mix_hash(e_.public_key);
  }
  if (step_ == 1) {  // ee, s, es (responder)
    if (auto r = mix_dh(e_.secret, re_); !r) return r;
    sym_.encrypt_and_hash(s_.public_key, out);
    if (auto r = mix_dh(s_.secret, re_); !r) return r;
  }
  if (step_ == 2) {  // s, se (initiator)
    sym_.encrypt_and_hash(s_.public_key, out);
    if (auto r = mix_dh(s_.secret, re_); !r) return r;
  }
  sym_.encrypt_and_hash(payload, out);
  ++step_;
  return {};
}

Result<void> XXState::read_message(BytesView message, Bytes& payload_out) {
  if (finished() || my_turn_to_write()) {
    return fail(Errc::protocol_violation, "noise: unexpected handshake message");
  }
  static constexpr size_t kMin[3] = {kDhLen, kDhLen + kDhLen + 16 + 16, kDhLen + 16 + 16};
  if (message.size() < kMin[step_]) {
    return fail(Errc::invalid_input, "noise: handshake message too short");
  }
  if (step_ == 0 || step_ == 1) {  // e
    std::copy_n(message.begin(), kDhLen, re_.begin());
    sym_.mix_hash(message.first(kDhLen));
    message = message.subspan(kDhLen);
  }
  if (step_ == 1) {  // ee, s, es (we are the initiator)
    if (auto r = mix_dh(e_.secret, re_); !r) return r;
  }
  if (step_ == 1 || step_ == 2) {  // s, then es (initiator) or se (responder): both DH(e, rs)
    Bytes rs;
    if (auto r = sym_.decrypt_and_hash(message.first(kDhLen + 16), rs); !r) return r;
    std::copy_n(rs.begin(), kDhLen, rs_.begin());
    message = message.subspan(kDhLen + 16);
    if (auto r = mix_dh(e_.secret, rs_); !r) return r;
  }
  if (auto r = sym_.decrypt_and_hash(message, payload_out); !r) return r;
  ++step_;
  return {};
}

}  // namespace p2pmq::noise::detail
