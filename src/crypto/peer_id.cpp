#include "crypto/peer_id.hpp"

#include "core/cid.hpp"
#include "core/multibase.hpp"
#include "core/multihash.hpp"
#include "crypto/hash.hpp"

namespace p2pmq::crypto {

PeerId PeerId::from_public_key(const PublicKey& key) {
  Bytes encoded = key.encode();
  Multihash mh;
  if (encoded.size() <= kMaxInlineKeySize) {
    mh = Multihash{multihash::kIdentity, std::move(encoded)};
  } else {
    Digest32 d = sha256(encoded);
    mh = Multihash{multihash::kSha2_256, Bytes(d.begin(), d.end())};
  }
  return PeerId(mh.encode());
}

Result<PeerId> PeerId::from_bytes(BytesView multihash) {
  auto mh = Multihash::decode(multihash);
  if (!mh) return fail(Errc::invalid_input, "peer id: " + mh.error().message);
  if (mh->code == multihash::kSha2_256) {
    if (mh->digest.size() != 32) return fail(Errc::invalid_input, "peer id: bad sha2-256 length");
  } else if (mh->code == multihash::kIdentity) {
    if (mh->digest.empty()) return fail(Errc::invalid_input, "peer id: empty identity multihash");
  } else {
    return fail(Errc::unsupported, "peer id: multihash is neither sha2-256 nor identity");
  }
  return PeerId(Bytes(multihash.begin(), multihash.end()));
}

Result<PeerId> PeerId::parse(std::string_view text) {
  if (text.empty() || text.size() > kMaxPeerIdText)
    return fail(Errc::invalid_input, "peer id: empty or too long");
  if (text.front() == '1' || text.starts_with("Qm")) {
    auto raw = base58btc_decode(text);
    if (!raw) return fail(Errc::invalid_input, "peer id: " + raw.error().message);
    return from_bytes(*raw);
  }
  auto cid = Cid::parse(text);
  if (!cid) return fail(Errc::invalid_input, "peer id: " + cid.error().message);
  if (cid->codec != kCodecLibp2pKey)
    return fail(Errc::invalid_input, "peer id: CID codec is not libp2p-key");
  return from_bytes(cid->hash.encode());
}

std::string PeerId::to_base58() const {
  return base58btc_encode(bytes_);
}

std::string PeerId::to_cid_string() const {
  // bytes_ was validated on construction.
  return Cid{kCodecLibp2pKey, *Multihash::decode(bytes_)}.to_string();
}

std::optional<PublicKey> PeerId::extract_public_key() const {
  auto mh = Multihash::decode(bytes_);
  if (!mh || mh->code != multihash::kIdentity) return std::nullopt;
  auto key = PublicKey::decode(mh->digest);
  if (!key) return std::nullopt;
  return std::move(*key);
}

bool PeerId::matches(const PublicKey& key) const {
  return from_public_key(key) == *this;
}

}  // namespace p2pmq::crypto
