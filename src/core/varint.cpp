#include "core/varint.hpp"

namespace p2pmq {

void varint_append(Bytes& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

Bytes varint_bytes(uint64_t v) {
  Bytes out;
  varint_append(out, v);
  return out;
}

size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

Result<std::optional<VarintRead>> varint_decode(BytesView in) {
  uint64_t value = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (i == kVarintMaxBytes) return fail(Errc::invalid_input, "varint longer than 9 bytes");
    const uint8_t b = in[i];
    value |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      // A zero final byte after others means the value fit in fewer bytes.
      if (b == 0 && i > 0) return fail(Errc::invalid_input, "varint not minimally encoded");
      return std::optional<VarintRead>(VarintRead{value, i + 1});
    }
  }
  if (in.size() >= kVarintMaxBytes) return fail(Errc::invalid_input, "varint longer than 9 bytes");
  return std::optional<VarintRead>();
}

}  // namespace p2pmq
