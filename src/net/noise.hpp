#pragma once
// libp2p's Noise secure channel (libp2p/specs noise/README.md), sans-IO: bytes in, bytes out.
//
// Noise_XX_25519_ChaChaPoly_SHA256 with an empty prologue. Every message on the wire is a frame:
// 2-byte big-endian length || data (at most 65535 bytes). The handshake payloads carry each
// side's libp2p identity key and its signature over the fresh Noise static key, which binds the
// Noise session to a PeerId.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "crypto/aead.hpp"
#include "crypto/keys.hpp"
#include "crypto/peer_id.hpp"
#include "net/noise_xx.hpp"

namespace p2pmq::noise {

inline constexpr std::string_view kProtocolId = "/noise";
// Signed with the libp2p identity key, followed by the Noise static public key.
inline constexpr std::string_view kSignaturePrefix = "noise-libp2p-static-key:";
inline constexpr size_t kMaxFrame = 65535;
inline constexpr size_t kMaxPlaintext = kMaxFrame - crypto::kAeadTag;

// The transport phase: one cipher per direction.
class Session {
 public:
  // Keys as split() gives them, already assigned to this side's directions.
  Session(const crypto::AeadKey& send_key, const crypto::AeadKey& recv_key);

  // Appends frames to out_wire, one per kMaxPlaintext bytes, sealed in place (plaintext must
  // not point into out_wire). Nothing for empty input.
  // Throws std::overflow_error when the send nonce reaches 2^64-1 (2^64 frames: unreachable).
  void encrypt(BytesView plaintext, Bytes& out_wire);
  // Feeds wire bytes: appends the plaintext of every complete frame to out_plaintext and keeps a
  // partial frame for the next call. A frame that fails to authenticate or is shorter than a tag
  // is an error, after which the session is unusable (errors are sticky).
  Result<void> decrypt(BytesView wire, Bytes& out_plaintext);

  // The same without per-call allocation or zero-filling, for the connection's hot path.
  // encrypt_into writes sealed_size(plaintext.size()) bytes to out.
  static size_t sealed_size(size_t plaintext_size);
  size_t encrypt_into(BytesView plaintext, uint8_t* out);
  // out must have room for max_plaintext(wire.size()) bytes; returns how many it wrote.
  size_t max_plaintext(size_t wire_size) const { return pending_.size() + wire_size; }
  Result<size_t> decrypt_into(BytesView wire, uint8_t* out);

  // Tests only: the current nonces.
  detail::CipherState& send_cipher_for_test() { return send_; }
  detail::CipherState& recv_cipher_for_test() { return recv_; }

 private:
  // Opens one frame's ciphertext (tag included) into out; returns the plaintext size.
  Result<size_t> open_frame(BytesView frame, uint8_t* out);

  detail::CipherState send_;
  detail::CipherState recv_;
  Bytes pending_;  // a partial frame (length prefix included) carried between decrypt() calls
  std::optional<Error> error_;
};

class Handshake {
 public:
  // expected_remote: the PeerId the dialed address named (/p2p/...), checked against the proof.
  Handshake(bool initiator, const crypto::PrivateKey& identity,
            std::optional<crypto::PeerId> expected_remote = {});

  // Muxers to announce in the payload's extensions (early muxer negotiation). Before start().
  void set_stream_muxers(std::vector<std::string> muxers) { muxers_ = std::move(muxers); }

  // Initiator: queues message 1. Responder: nothing to do.
  Result<void> start();
  // Feeds wire bytes. Partial frames are buffered; bytes after the last handshake frame are
  // kept for take_remaining(). Errors are sticky.
  Result<void> feed(BytesView wire);
  Bytes take_output();
  bool complete() const { return complete_; }

  // Valid once complete().
  const crypto::PublicKey& remote_key() const { return *remote_key_; }
  const crypto::PeerId& remote_peer() const { return *remote_peer_; }
  // The remote's extensions.stream_muxers (empty when it sent none).
  const std::vector<std::string>& remote_stream_muxers() const { return remote_muxers_; }
  // The transport ciphers. Once, after complete().
  Session into_session();
  // Bytes received after the final handshake frame: already transport frames.
  Bytes take_remaining();

 private:
  Result<void> write_message();
  Result<void> read_message(BytesView message);
  Result<void> check_payload(BytesView payload);
  Result<void> fail_sticky(Error e);

  bool initiator_;
  std::optional<crypto::PeerId> expected_remote_;
  Bytes identity_key_;  // our PublicKey protobuf
  Bytes identity_sig_;  // sign(prefix || our static key)
  std::vector<std::string> muxers_;
  detail::XXState xx_;
  bool started_ = false;
  bool complete_ = false;
  std::optional<Error> error_;
  std::optional<crypto::PublicKey> remote_key_;
  std::optional<crypto::PeerId> remote_peer_;
  std::vector<std::string> remote_muxers_;
  Bytes in_;
  size_t in_pos_ = 0;  // start of unprocessed bytes in in_
  Bytes out_;
};

}  // namespace p2pmq::noise
