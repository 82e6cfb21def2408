#pragma once
// CIDv1 (multiformats/cid): <varint 1><varint codec><multihash>. CIDv0 and other versions
// are refused; libp2p only needs v1 for peer ids (codec libp2p-key).
#include <cstdint>
#include <string>
#include <string_view>

#include "core/bytes.hpp"
#include "core/multihash.hpp"
#include "core/result.hpp"

namespace p2pmq {

inline constexpr uint64_t kCodecLibp2pKey = 0x72;

struct Cid {
  uint64_t codec = 0;
  Multihash hash;

  Bytes encode() const;
  std::string to_string() const;  // multibase base32, prefix 'b'
  static Result<Cid> decode(BytesView bytes);
  static Result<Cid> parse(std::string_view multibase_text);

  bool operator==(const Cid&) const = default;
};

}  // namespace p2pmq
