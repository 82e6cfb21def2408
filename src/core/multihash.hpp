#pragma once
// Multihash: <varint hash code><varint digest length><digest> (multiformats/multihash).
#include <cstddef>
#include <cstdint>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace p2pmq {

namespace multihash {
inline constexpr uint64_t kIdentity = 0x00;
inline constexpr uint64_t kSha2_256 = 0x12;
// Longer digests are refused: nothing libp2p hashes needs more, and it bounds peer input.
inline constexpr size_t kMaxDigestSize = 127;
}  // namespace multihash

struct Multihash {
  uint64_t code = 0;
  Bytes digest;

  Bytes encode() const;
  // The whole input must be exactly one multihash.
  static Result<Multihash> decode(BytesView whole);
  // Reads one multihash from the front of `in`; sets `consumed` to its encoded size.
  static Result<Multihash> decode_prefix(BytesView in, size_t& consumed);

  bool operator==(const Multihash&) const = default;
};

}  // namespace p2pmq
