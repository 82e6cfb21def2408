#pragma once
// Unsigned LEB128 varint as multiformats/unsigned-varint specifies it: at most 9 bytes
// (63 bits of value) and minimal encoding only, so every value has one encoding.
#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace p2pmq {

inline constexpr size_t kVarintMaxBytes = 9;

// Values >= 2^63 need 10 bytes, which varint_decode rejects; callers never encode them.
void varint_append(Bytes& out, uint64_t v);
Bytes varint_bytes(uint64_t v);
size_t varint_size(uint64_t v);

struct VarintRead {
  uint64_t value;
  size_t length;  // bytes consumed
};

// nullopt: `in` ends inside the varint, read more. Error: overlong, non-minimal or overflow.
Result<std::optional<VarintRead>> varint_decode(BytesView in);

}  // namespace p2pmq
