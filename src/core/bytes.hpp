#pragma once
// Byte buffers shared by every module.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace p2pmq {

using Bytes = std::vector<uint8_t>;
using BytesView = std::span<const uint8_t>;

inline BytesView as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_string(BytesView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes to_bytes(std::string_view s) {
  return Bytes(s.begin(), s.end());
}
inline void append(Bytes& out, BytesView in) {
  out.insert(out.end(), in.begin(), in.end());
}

std::string to_hex(BytesView b);
// Accepts upper and lower case; returns an empty optional-like vector on odd length or bad digit.
bool from_hex(std::string_view hex, Bytes& out);

}  // namespace p2pmq
