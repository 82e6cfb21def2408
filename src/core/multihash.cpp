#include "core/multihash.hpp"

#include "core/varint.hpp"

namespace p2pmq {
namespace {

// Reads a complete varint at `pos`, treating "need more bytes" as truncation.
Result<uint64_t> read_varint(BytesView in, size_t& pos, const char* what) {
  auto r = varint_decode(in.subspan(pos));
  if (!r) return tl::unexpected(r.error());
  if (!r->has_value()) return fail(Errc::invalid_input, std::string("truncated multihash ") + what);
  pos += (*r)->length;
  return (*r)->value;
}

}  // namespace

Bytes Multihash::encode() const {
  Bytes out;
  out.reserve(varint_size(code) + varint_size(digest.size()) + digest.size());
  varint_append(out, code);
  varint_append(out, digest.size());
  append(out, digest);
  return out;
}

Result<Multihash> Multihash::decode_prefix(BytesView in, size_t& consumed) {
  size_t pos = 0;
  auto code = read_varint(in, pos, "code");
  if (!code) return tl::unexpected(code.error());
  auto length = read_varint(in, pos, "length");
  if (!length) return tl::unexpected(length.error());
  if (*length > multihash::kMaxDigestSize)
    return fail(Errc::limit_exceeded, "multihash digest longer than 127 bytes");
  if (in.size() - pos < *length) return fail(Errc::invalid_input, "truncated multihash digest");
  Multihash mh;
  mh.code = *code;
  mh.digest.assign(in.begin() + pos, in.begin() + pos + *length);
  consumed = pos + *length;
  return mh;
}

Result<Multihash> Multihash::decode(BytesView whole) {
  size_t consumed = 0;
  auto mh = decode_prefix(whole, consumed);
  if (!mh) return mh;
  if (consumed != whole.size())
    return fail(Errc::invalid_input, "trailing bytes after multihash digest");
  return mh;
}

}  // namespace p2pmq
