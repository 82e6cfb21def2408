#include "dht/key.hpp"

#include <bit>
#include <stdexcept>
#include <string>

#include "core/multihash.hpp"
#include "crypto/hash.hpp"

namespace p2pmq::dht {
namespace {

Bytes prefixed_multihash(std::string_view prefix, std::string_view topic) {
  crypto::Sha256 h;
  h.update(as_bytes(prefix));
  h.update(as_bytes(topic));
  auto digest = h.finish();
  return Multihash{multihash::kSha2_256, Bytes(digest.begin(), digest.end())}.encode();
}

Bytes raw_cid(Bytes multihash) {
  Bytes out{0x01, static_cast<uint8_t>(kCodecRaw)};
  append(out, multihash);
  return out;
}

}  // namespace

KadKey kad_key(BytesView key) {
  return KadKey{crypto::sha256(key)};
}

KadKey kad_key(const crypto::PeerId& peer) {
  return kad_key(peer.bytes());
}

Distance xor_distance(const KadKey& a, const KadKey& b) {
  Distance d;
  for (size_t i = 0; i < d.bytes.size(); ++i) d.bytes[i] = a.bytes[i] ^ b.bytes[i];
  return d;
}

size_t common_prefix_length(const KadKey& a, const KadKey& b) {
  for (size_t i = 0; i < a.bytes.size(); ++i) {
    uint8_t x = a.bytes[i] ^ b.bytes[i];
    if (x != 0) return i * 8 + static_cast<size_t>(std::countl_zero(x));
  }
  return 256;
}

Bytes topic_key(std::string_view topic) {
  return prefixed_multihash(kTopicKeyPrefix, topic);
}
Bytes archive_key(std::string_view topic) {
  return prefixed_multihash(kArchiveKeyPrefix, topic);
}
Bytes topic_cid(std::string_view topic) {
  return raw_cid(topic_key(topic));
}
Bytes archive_cid(std::string_view topic) {
  return raw_cid(archive_key(topic));
}

Bytes random_key_with_cpl(const KadKey& local, size_t cpl, std::mt19937_64& rng) {
  // Expected cost doubles per bit; past this it is a caller bug, not a slow path.
  if (cpl > kMaxRandomKeyCpl) throw std::invalid_argument("random_key_with_cpl: cpl too large");
  Bytes key{0x12, 0x20};
  key.resize(34);
  for (;;) {
    for (size_t i = 2; i < key.size(); i += 8) {
      uint64_t r = rng();
      for (size_t j = 0; j < 8 && i + j < key.size(); ++j) key[i + j] = uint8_t(r >> (8 * j));
    }
    if (common_prefix_length(kad_key(key), local) == cpl) return key;
  }
}

}  // namespace p2pmq::dht
