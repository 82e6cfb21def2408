#include "net/noise.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "crypto/x25519.hpp"
#include "libp2p/noise.pb.h"

namespace p2pmq::noise {
namespace {

size_t read_u16be(const uint8_t* p) {
  return (size_t{p[0]} << 8) | p[1];
}

void write_u16be(uint8_t* p, size_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

Bytes signed_message(const crypto::X25519Key& static_key) {
  Bytes msg = to_bytes(kSignaturePrefix);
  append(msg, static_key);
  return msg;
}

}  // namespace

// ---- Session ----

Session::Session(const crypto::AeadKey& send_key, const crypto::AeadKey& recv_key)
    : send_(send_key), recv_(recv_key) {}

size_t Session::sealed_size(size_t plaintext_size) {
  const size_t frames = (plaintext_size + kMaxPlaintext - 1) / kMaxPlaintext;
  return plaintext_size + frames * (2 + crypto::kAeadTag);
}

size_t Session::encrypt_into(BytesView plaintext, uint8_t* out) {
  uint8_t* p = out;
  while (!plaintext.empty()) {
    if (send_.exhausted()) throw std::overflow_error("noise: send nonce exhausted");
    const size_t n = std::min(plaintext.size(), kMaxPlaintext);
    write_u16be(p, n + crypto::kAeadTag);
    // Sealed straight into the output: the plaintext is never copied.
    send_.seal({}, plaintext.first(n), p + 2);
    p += 2 + n + crypto::kAeadTag;
    plaintext = plaintext.subspan(n);
  }
  return static_cast<size_t>(p - out);
}

void Session::encrypt(BytesView plaintext, Bytes& out_wire) {
  const size_t start = out_wire.size();
  out_wire.resize(start + sealed_size(plaintext.size()));
  encrypt_into(plaintext, out_wire.data() + start);
}

Result<size_t> Session::open_frame(BytesView frame, uint8_t* out) {
  if (frame.size() < crypto::kAeadTag) {
    error_ = Error{Errc::invalid_input, "noise: frame shorter than its tag"};
    return tl::unexpected(*error_);
  }
  if (recv_.exhausted()) {
    error_ = Error{Errc::limit_exceeded, "noise: receive nonce exhausted"};
    return tl::unexpected(*error_);
  }
  if (!recv_.open({}, frame, out)) {
    error_ = Error{Errc::crypto_failure, "noise: frame does not authenticate"};
    return tl::unexpected(*error_);
  }
  return frame.size() - crypto::kAeadTag;
}

Result<void> Session::decrypt(BytesView wire, Bytes& out_plaintext) {
  const size_t start = out_plaintext.size();
  out_plaintext.resize(start + max_plaintext(wire.size()));
  auto n = decrypt_into(wire, out_plaintext.data() + start);
  out_plaintext.resize(n ? start + *n : start);
  if (!n) return tl::unexpected(n.error());
  return {};
}

Result<size_t> Session::decrypt_into(BytesView wire, uint8_t* out) {
  if (error_) return tl::unexpected(*error_);
  size_t written = 0;
  // First complete a frame left partial by the previous call, copying only what it still needs.
  if (!pending_.empty()) {
    if (pending_.size() < 2) {
      const size_t take = std::min(2 - pending_.size(), wire.size());
      append(pending_, wire.first(take));
      wire = wire.subspan(take);
      if (pending_.size() < 2) return written;
    }
    const size_t total = 2 + read_u16be(pending_.data());
    const size_t take = std::min(total - pending_.size(), wire.size());
    append(pending_, wire.first(take));
    wire = wire.subspan(take);
    if (pending_.size() < total) return written;
    auto r = open_frame(BytesView(pending_).subspan(2), out);
    pending_.clear();  // keeps its capacity for the next partial frame
    if (!r) return r;
    written += *r;
  }
  // Then whole frames straight from the caller's bytes, without copying the ciphertext.
  while (wire.size() >= 2) {
    const size_t len = read_u16be(wire.data());
    if (wire.size() < 2 + len) break;
    auto r = open_frame(wire.subspan(2, len), out + written);
    if (!r) return r;
    written += *r;
    wire = wire.subspan(2 + len);
  }
  append(pending_, wire);
  return written;
}

// ---- Handshake ----

Handshake::Handshake(bool initiator, const crypto::PrivateKey& identity,
                     std::optional<crypto::PeerId> expected_remote)
    : initiator_(initiator),
      expected_remote_(std::move(expected_remote)),
      identity_key_(identity.public_key().encode()),
      // A fresh static key per handshake, as go-libp2p and js-libp2p do: the identity key,
      // not the Noise key, is the long-term identity.
      xx_(initiator, crypto::X25519Keypair::generate(), crypto::X25519Keypair::generate(), {}) {
  identity_sig_ = identity.sign(signed_message(xx_.local_static()));
}

Result<void> Handshake::fail_sticky(Error e) {
  error_ = std::move(e);
  return tl::unexpected(*error_);
}

Result<void> Handshake::start() {
  if (error_) return tl::unexpected(*error_);
  if (started_) return fail(Errc::protocol_violation, "noise: start() called twice");
  started_ = true;
  if (!initiator_) return {};
  return write_message();
}

Result<void> Handshake::write_message() {
  Bytes payload;
  // Message 1 travels before any key exists, so it carries no identity (as the spec requires).
  if (xx_.step() > 0) {
    libp2p::noise::NoiseHandshakePayload msg;
    msg.set_identity_key(std::string(as_string(identity_key_)));
    msg.set_identity_sig(std::string(as_string(identity_sig_)));
    for (const auto& m : muxers_) msg.mutable_extensions()->add_stream_muxers(m);
    payload = to_bytes(msg.SerializeAsString());
  }
  const size_t start = out_.size();
  out_.resize(start + 2);  // length prefix, filled in below
  if (auto r = xx_.write_message(payload, out_); !r) {
    out_.resize(start);
    return fail_sticky(r.error());
  }
  write_u16be(out_.data() + start, out_.size() - start - 2);
  return {};
}

Result<void> Handshake::check_payload(BytesView payload) {
  libp2p::noise::NoiseHandshakePayload msg;
  // Unknown fields are skipped by the parser, as the spec asks.
  if (!msg.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return fail(Errc::invalid_input, "noise: malformed handshake payload");
  }
  auto key = crypto::PublicKey::decode(as_bytes(msg.identity_key()));
  if (!key) return fail(key.error().code, "noise: remote identity key: " + key.error().message);
  if (!key->verify(signed_message(xx_.remote_static()), as_bytes(msg.identity_sig()))) {
    return fail(Errc::crypto_failure, "noise: remote static key signature is invalid");
  }
  crypto::PeerId peer = crypto::PeerId::from_public_key(*key);
  if (expected_remote_ && !(peer == *expected_remote_)) {
    return fail(Errc::peer_id_mismatch, "noise: expected peer " + expected_remote_->to_string() +
                                            ", remote proved " + peer.to_string());
  }
  if (msg.has_extensions()) {
    const auto& muxers = msg.extensions().stream_muxers();
    remote_muxers_.assign(muxers.begin(), muxers.end());
  }
  remote_key_ = std::move(*key);
  remote_peer_ = std::move(peer);
  return {};
}

Result<void> Handshake::read_message(BytesView message) {
  Bytes payload;
  if (auto r = xx_.read_message(message, payload); !r) return r;
  // The initiator learns the responder's identity from message 2, the responder the
  // initiator's from message 3; message 1's payload (normally empty) means nothing.
  if (xx_.step() >= 2) {
    if (auto r = check_payload(payload); !r) return r;
  }
  if (xx_.my_turn_to_write()) {
    if (auto r = write_message(); !r) return r;
  }
  complete_ = xx_.finished();
  return {};
}

Result<void> Handshake::feed(BytesView wire) {
  if (error_) return tl::unexpected(*error_);
  if (initiator_ && !started_)
    return fail(Errc::protocol_violation, "noise: feed() before start()");
  in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(in_pos_));
  in_pos_ = 0;
  append(in_, wire);
  // Stop at completion: what follows is transport data for the Session.
  while (!complete_) {
    BytesView rest = BytesView(in_).subspan(in_pos_);
    if (rest.size() < 2) break;
    const size_t len = read_u16be(rest.data());
    if (rest.size() < 2 + len) break;
    in_pos_ += 2 + len;
    if (auto r = read_message(rest.subspan(2, len)); !r) return fail_sticky(r.error());
  }
  return {};
}

Bytes Handshake::take_output() {
  return std::exchange(out_, {});
}

Session Handshake::into_session() {
  if (!complete_) throw std::logic_error("noise: into_session() before the handshake completed");
  auto [initiator_to_responder, responder_to_initiator] = xx_.split();
  return initiator_ ? Session(initiator_to_responder, responder_to_initiator)
                    : Session(responder_to_initiator, initiator_to_responder);
}

Bytes Handshake::take_remaining() {
  Bytes rest(in_.begin() + static_cast<std::ptrdiff_t>(in_pos_), in_.end());
  in_.clear();
  in_pos_ = 0;
  return rest;
}

}  // namespace p2pmq::noise
