#include "core/cid.hpp"

#include "core/multibase.hpp"
#include "core/varint.hpp"

namespace p2pmq {
namespace {

// A complete varint at the front of `in`, truncation being an error.
Result<VarintRead> read_varint(BytesView in, const char* what) {
  auto r = varint_decode(in);
  if (!r) return tl::unexpected(r.error());
  if (!r->has_value()) return fail(Errc::invalid_input, std::string("truncated CID ") + what);
  return **r;
}

}  // namespace

Bytes Cid::encode() const {
  Bytes out;
  varint_append(out, 1);
  varint_append(out, codec);
  append(out, hash.encode());
  return out;
}

std::string Cid::to_string() const {
  return multibase_encode(Multibase::base32, encode());
}

Result<Cid> Cid::decode(BytesView bytes) {
  // A CIDv0 is a bare sha2-256 multihash: it starts 0x12 0x20.
  if (bytes.size() >= 2 && bytes[0] == 0x12 && bytes[1] == 0x20)
    return fail(Errc::unsupported, "CIDv0 is not supported, only CIDv1");
  auto version = read_varint(bytes, "version");
  if (!version) return tl::unexpected(version.error());
  if (version->value != 1)
    return fail(Errc::unsupported, "unsupported CID version " + std::to_string(version->value));
  BytesView rest = bytes.subspan(version->length);
  auto codec = read_varint(rest, "codec");
  if (!codec) return tl::unexpected(codec.error());
  auto hash = Multihash::decode(rest.subspan(codec->length));
  if (!hash) return tl::unexpected(hash.error());
  return Cid{codec->value, std::move(*hash)};
}

Result<Cid> Cid::parse(std::string_view multibase_text) {
  // CIDv0 text is base58 without a multibase prefix and always starts "Qm".
  if (multibase_text.size() == 46 && multibase_text.starts_with("Qm"))
    return fail(Errc::unsupported, "CIDv0 is not supported, only CIDv1");
  auto bytes = multibase_decode(multibase_text);
  if (!bytes) return tl::unexpected(bytes.error());
  return decode(*bytes);
}

}  // namespace p2pmq
