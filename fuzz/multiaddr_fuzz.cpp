// Multiaddr::decode on the bytes and Multiaddr::parse on the same bytes as text; whatever
// either accepts must survive both round trips unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/multiaddr.hpp"

using namespace p2pmq;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void check_round_trips(const Multiaddr& m) {
  auto from_bytes = Multiaddr::decode(m.bytes());
  check(from_bytes && *from_bytes == m);
  auto from_text = Multiaddr::parse(m.to_string());
  check(from_text && *from_text == m);
  (void)m.tcp_target();
  (void)m.with_p2p(BytesView{}).without_p2p();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const BytesView in(data, size);
  if (auto m = Multiaddr::decode(in)) {
    check(m->bytes() == Bytes(in.begin(), in.end()));  // the binary form is canonical
    check_round_trips(*m);
  }
  if (auto m = Multiaddr::parse(as_string(in))) check_round_trips(*m);
  return 0;
}
