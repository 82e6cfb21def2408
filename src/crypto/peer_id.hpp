#pragma once
// libp2p peer ids (libp2p/specs peer-ids/peer-ids.md): the multihash of an encoded PublicKey,
// written as base58btc ("Qm...", "12D3KooW...") or as a CIDv1 with codec libp2p-key.
#include <compare>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "crypto/keys.hpp"

namespace p2pmq::crypto {

// Keys whose protobuf fits in this many bytes are inlined (identity multihash).
inline constexpr size_t kMaxInlineKeySize = 42;
// Bound on peer id text from users and peers; real ids are under 70 characters.
inline constexpr size_t kMaxPeerIdText = 256;

class PeerId {
 public:
  static PeerId from_public_key(const PublicKey& key);
  // A sha2-256 multihash (32-byte digest) or an identity multihash.
  static Result<PeerId> from_bytes(BytesView multihash);
  // Bare base58btc multihash (starts with '1' or "Qm"), or multibase CIDv1 text whose codec is
  // libp2p-key.
  static Result<PeerId> parse(std::string_view text);

  std::string to_base58() const;
  std::string to_cid_string() const;  // base32 CIDv1, "bafz..."
  std::string to_string() const { return to_base58(); }
  const Bytes& bytes() const { return bytes_; }  // the multihash

  // The key inlined in an identity multihash; nullopt for hashed ids or a bad inlined key.
  std::optional<PublicKey> extract_public_key() const;
  bool matches(const PublicKey& key) const;

  // Byte order of the multihash. Not defaulted: g++ 12 warns falsely (stringop-overread) on
  // std::vector's <=> at -O2.
  std::strong_ordering operator<=>(const PeerId& other) const {
    return as_string(bytes_) <=> as_string(other.bytes_);
  }
  bool operator==(const PeerId&) const = default;

 private:
  explicit PeerId(Bytes multihash) : bytes_(std::move(multihash)) {}
  Bytes bytes_;
};

struct PeerIdHash {
  size_t operator()(const PeerId& id) const noexcept {
    return std::hash<std::string_view>{}(as_string(id.bytes()));
  }
};

}  // namespace p2pmq::crypto
