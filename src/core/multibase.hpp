#pragma once
// The multibase encodings libp2p uses: base58btc (peer ids), base32 (CIDs), base64url,
// plus base16 on decode. Decoders are strict: no padding, no stray bits, no whitespace.
#include <cstddef>
#include <string>
#include <string_view>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace p2pmq {

// Text bounds: base58 costs O(n^2), so its bound is much smaller than the linear codecs'.
inline constexpr size_t kMaxBase58Text = 8 * 1024;
inline constexpr size_t kMaxMultibaseText = 64 * 1024;

std::string base58btc_encode(BytesView data);
Result<Bytes> base58btc_decode(std::string_view text);

std::string base32_encode(BytesView data);           // RFC 4648, lowercase, no padding
Result<Bytes> base32_decode(std::string_view text);  // either case, no padding

std::string base64url_encode(BytesView data);  // RFC 4648 §5, no padding
Result<Bytes> base64url_decode(std::string_view text);

enum class Multibase {
  base58btc,  // 'z'
  base32,     // 'b'
  base64url,  // 'u'
};

std::string multibase_encode(Multibase base, BytesView data);
// Accepts 'z', 'b', 'B' (upper base32), 'u', 'f' and 'F' (base16).
Result<Bytes> multibase_decode(std::string_view text);

}  // namespace p2pmq
