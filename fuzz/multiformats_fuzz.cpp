// varint, multibase, multihash and CID decoders: no crash, and what decodes re-encodes to
// the same bytes (the encodings are canonical).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/cid.hpp"
#include "core/multibase.hpp"
#include "core/multihash.hpp"
#include "core/varint.hpp"

using namespace p2pmq;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void fuzz_varint(BytesView in) {
  auto r = varint_decode(in);
  if (r && r->has_value()) {
    const Bytes again = varint_bytes((*r)->value);
    check(again.size() == (*r)->length && std::equal(again.begin(), again.end(), in.begin()));
  }
}

void fuzz_multibase(BytesView in) {
  const std::string_view text = as_string(in);
  auto r = multibase_decode(text);
  if (!r || text.empty()) return;
  // Re-encoding in the same base gives the text back, up to case for base32/base16.
  const char prefix = text[0];
  if (prefix == 'z') check(multibase_encode(Multibase::base58btc, *r) == text);
  if (prefix == 'u') check(multibase_encode(Multibase::base64url, *r) == text);
  if (prefix == 'b' || prefix == 'B') {
    auto again = base32_decode(base32_encode(*r));
    check(again && *again == *r);
  }
}

void fuzz_multihash(BytesView in) {
  size_t consumed = 0;
  auto mh = Multihash::decode_prefix(in, consumed);
  if (!mh) return;
  check(consumed <= in.size());
  const Bytes enc = mh->encode();
  check(enc.size() == consumed && std::equal(enc.begin(), enc.end(), in.begin()));
  auto whole = Multihash::decode(in);
  check(static_cast<bool>(whole) == (consumed == in.size()));
}

void fuzz_cid(BytesView in) {
  if (auto cid = Cid::decode(in)) {
    check(cid->encode() == Bytes(in.begin(), in.end()));
    auto again = Cid::parse(cid->to_string());
    check(again && *again == *cid);
  }
  (void)Cid::parse(as_string(in));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const BytesView in(data, size);
  fuzz_varint(in);
  fuzz_multibase(in);
  fuzz_multihash(in);
  fuzz_cid(in);
  return 0;
}
