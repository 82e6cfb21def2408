#pragma once
// Kademlia keys (libp2p/specs kad-dht "Distance"): every DHT key (a peer id multihash, a
// provider multihash, a record key) is placed in a 256-bit keyspace by SHA-256; the distance
// of two keys is the XOR of their hashes, compared as big-endian integers.
//
// Topic keys, exactly (p2pmq's discovery rendezvous):
//   digest        = sha256("p2pmq/topic/" || topic)     (topic as its UTF-8 bytes, no length)
//   topic_key     = 0x12 0x20 || digest                  (a sha2-256 multihash, 34 bytes)
//   topic_cid     = 0x01 0x55 || topic_key               (CIDv1, codec raw; text "bafkrei...")
// The provider key on the wire is the multihash, not the CID: the spec keys provider records by
// multihash, go-libp2p-kad-dht sends cid.Hash(), and js reads a bare sha2-256 multihash as a
// CIDv0, so a go or js node stores and serves our records unchanged. Archive keys are the same
// with the prefix "p2pmq/archive/".
#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string_view>

#include "core/bytes.hpp"
#include "crypto/peer_id.hpp"

namespace p2pmq::dht {

// A point in the keyspace: sha256 of the key bytes.
struct KadKey {
  std::array<uint8_t, 32> bytes{};
  auto operator<=>(const KadKey&) const = default;
};
// XOR of two KadKeys; ordered as a 256-bit big-endian number (smaller is closer).
using Distance = KadKey;

KadKey kad_key(BytesView key);
KadKey kad_key(const crypto::PeerId& peer);  // sha256 of the id's multihash bytes
Distance xor_distance(const KadKey& a, const KadKey& b);
// Leading bits a and b share (256 when equal).
size_t common_prefix_length(const KadKey& a, const KadKey& b);

inline constexpr std::string_view kTopicKeyPrefix = "p2pmq/topic/";
inline constexpr std::string_view kArchiveKeyPrefix = "p2pmq/archive/";
inline constexpr uint64_t kCodecRaw = 0x55;

Bytes topic_key(std::string_view topic);    // provider key of the topic's subscribers
Bytes archive_key(std::string_view topic);  // provider key of the topic's archives
Bytes topic_cid(std::string_view topic);    // CIDv1 raw of topic_key, for display and js APIs
Bytes archive_cid(std::string_view topic);

// A FIND_NODE key (a syntactically valid sha2-256 peer id multihash) whose KadKey shares
// exactly `cpl` leading bits with `local`: what a bucket refresh looks up. Found by trial, so
// expect 2^(cpl+1) hashes; callers cap cpl (RoutingTableConfig::max_refresh_cpl).
inline constexpr size_t kMaxRandomKeyCpl = 24;  // larger cpl throws std::invalid_argument
Bytes random_key_with_cpl(const KadKey& local, size_t cpl, std::mt19937_64& rng);

}  // namespace p2pmq::dht
