#include "core/multibase.hpp"

#include <array>
#include <cstdint>
#include <vector>

namespace p2pmq {
namespace {

constexpr std::string_view kBase58Alphabet =
    "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
constexpr std::string_view kBase32Alphabet = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::string_view kBase64UrlAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Reverse lookup table: character -> digit, or -1.
std::array<int8_t, 256> reverse_table(std::string_view alphabet, bool fold_case) {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  for (size_t i = 0; i < alphabet.size(); ++i) {
    const auto c = static_cast<unsigned char>(alphabet[i]);
    t[c] = static_cast<int8_t>(i);
    if (fold_case && c >= 'a' && c <= 'z') t[c - 'a' + 'A'] = static_cast<int8_t>(i);
  }
  return t;
}

const std::array<int8_t, 256> kBase58Rev = reverse_table(kBase58Alphabet, false);
const std::array<int8_t, 256> kBase32Rev = reverse_table(kBase32Alphabet, true);
const std::array<int8_t, 256> kBase64UrlRev = reverse_table(kBase64UrlAlphabet, false);

// base58 works on big numbers in limbs of 58^5 (encode) or 2^32 (decode) so the
// quadratic inner loop runs ~5x fewer times than byte-at-a-time.
constexpr uint64_t k58Pow5 = 58ull * 58 * 58 * 58 * 58;

// limbs (least significant first) = limbs * mul + add, with limbs in base `radix`.
void mul_add(std::vector<uint64_t>& limbs, uint64_t mul, uint64_t add, uint64_t radix) {
  uint64_t carry = add;
  for (auto& limb : limbs) {
    const uint64_t t = limb * mul + carry;
    limb = t % radix;
    carry = t / radix;
  }
  while (carry) {
    limbs.push_back(carry % radix);
    carry /= radix;
  }
}

// Rfc4648 decoding for bases with `bits` bits per character (5 or 6), no padding.
Result<Bytes> decode_bits(std::string_view text, const std::array<int8_t, 256>& rev, int bits,
                          const char* name) {
  if (text.size() > kMaxMultibaseText) return fail(Errc::limit_exceeded, "text too long");
  Bytes out;
  out.reserve(text.size() * bits / 8);
  uint32_t acc = 0;
  int have = 0;
  for (char ch : text) {
    const int8_t d = rev[static_cast<unsigned char>(ch)];
    if (d < 0) return fail(Errc::invalid_input, std::string("invalid ") + name + " character");
    acc = (acc << bits) | static_cast<uint32_t>(d);
    have += bits;
    if (have >= 8) {
      have -= 8;
      out.push_back(static_cast<uint8_t>(acc >> have));
      acc &= (1u << have) - 1;
    }
  }
  // Leftovers must be fewer than a character's bits and all zero: one encoding per value.
  if (have >= bits || acc != 0)
    return fail(Errc::invalid_input, std::string("invalid ") + name + " length or trailing bits");
  return out;
}

std::string encode_bits(BytesView data, std::string_view alphabet, int bits) {
  std::string out;
  out.reserve((data.size() * 8 + bits - 1) / bits);
  uint32_t acc = 0;
  int have = 0;
  const uint32_t mask = (1u << bits) - 1;
  for (uint8_t b : data) {
    acc = (acc << 8) | b;
    have += 8;
    while (have >= bits) {
      have -= bits;
      out.push_back(alphabet[(acc >> have) & mask]);
    }
    acc &= (1u << have) - 1;
  }
  if (have > 0) out.push_back(alphabet[(acc << (bits - have)) & mask]);
  return out;
}

}  // namespace

std::string base58btc_encode(BytesView data) {
  size_t zeros = 0;
  while (zeros < data.size() && data[zeros] == 0) ++zeros;
  std::vector<uint64_t> limbs;  // base 58^5
  for (size_t i = zeros; i < data.size(); ++i) mul_add(limbs, 256, data[i], k58Pow5);
  std::string digits;  // least significant first
  for (uint64_t limb : limbs) {
    for (int k = 0; k < 5; ++k) {
      digits.push_back(kBase58Alphabet[limb % 58]);
      limb /= 58;
    }
  }
  while (!digits.empty() && digits.back() == '1') digits.pop_back();
  std::string out(zeros, '1');
  out.append(digits.rbegin(), digits.rend());
  return out;
}

Result<Bytes> base58btc_decode(std::string_view text) {
  if (text.size() > kMaxBase58Text) return fail(Errc::limit_exceeded, "base58 text too long");
  size_t zeros = 0;
  while (zeros < text.size() && text[zeros] == '1') ++zeros;
  std::vector<uint64_t> limbs;  // base 2^32
  for (size_t i = zeros; i < text.size();) {
    uint64_t mul = 1, add = 0;
    for (int k = 0; k < 5 && i < text.size(); ++k, ++i) {
      const int8_t d = kBase58Rev[static_cast<unsigned char>(text[i])];
      if (d < 0) return fail(Errc::invalid_input, "invalid base58 character");
      mul *= 58;
      add = add * 58 + static_cast<uint64_t>(d);
    }
    mul_add(limbs, mul, add, uint64_t{1} << 32);
  }
  Bytes out(zeros, 0);
  Bytes value;  // least significant first
  for (uint64_t limb : limbs)
    for (int k = 0; k < 4; ++k) value.push_back(static_cast<uint8_t>(limb >> (8 * k)));
  while (!value.empty() && value.back() == 0) value.pop_back();
  out.insert(out.end(), value.rbegin(), value.rend());
  return out;
}

std::string base32_encode(BytesView data) {
  return encode_bits(data, kBase32Alphabet, 5);
}

Result<Bytes> base32_decode(std::string_view text) {
  return decode_bits(text, kBase32Rev, 5, "base32");
}

std::string base64url_encode(BytesView data) {
  return encode_bits(data, kBase64UrlAlphabet, 6);
}

Result<Bytes> base64url_decode(std::string_view text) {
  return decode_bits(text, kBase64UrlRev, 6, "base64url");
}

std::string multibase_encode(Multibase base, BytesView data) {
  switch (base) {
    case Multibase::base58btc:
      return "z" + base58btc_encode(data);
    case Multibase::base32:
      return "b" + base32_encode(data);
    case Multibase::base64url:
      return "u" + base64url_encode(data);
  }
  return {};
}

Result<Bytes> multibase_decode(std::string_view text) {
  if (text.empty()) return fail(Errc::invalid_input, "empty multibase text");
  if (text.size() > kMaxMultibaseText) return fail(Errc::limit_exceeded, "multibase text too long");
  const std::string_view body = text.substr(1);
  switch (text[0]) {
    case 'z':
      return base58btc_decode(body);
    case 'b':
    case 'B':
      return base32_decode(body);
    case 'u':
      return base64url_decode(body);
    case 'f':
    case 'F': {
      Bytes out;
      if (!from_hex(body, out)) return fail(Errc::invalid_input, "invalid base16 text");
      return out;
    }
    default:
      return fail(Errc::unsupported, "unsupported multibase prefix");
  }
}

}  // namespace p2pmq
