#pragma once
// Hex helpers shared by the crypto tests.
#include <array>
#include <stdexcept>
#include <string_view>

#include "core/bytes.hpp"

namespace p2pmq::crypto::test {

inline Bytes hex(std::string_view h) {
  Bytes out;
  if (!from_hex(h, out)) throw std::invalid_argument("bad hex in test");
  return out;
}

template <size_t N>
std::array<uint8_t, N> hex_array(std::string_view h) {
  Bytes b = hex(h);
  if (b.size() != N) throw std::invalid_argument("wrong hex length in test");
  std::array<uint8_t, N> out;
  std::copy(b.begin(), b.end(), out.begin());
  return out;
}

inline Bytes repeat(uint8_t byte, size_t n) {
  return Bytes(n, byte);
}

inline Bytes range(int from, int to) {  // [from, to)
  Bytes out;
  for (int i = from; i < to; ++i) out.push_back(static_cast<uint8_t>(i));
  return out;
}

}  // namespace p2pmq::crypto::test
