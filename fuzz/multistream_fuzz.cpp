// multistream-select parsers fed arbitrary bytes: Reader, Listener and Dialer must return
// errors, never crash, and never buffer more than they were given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "net/multistream.hpp"

using namespace p2pmq;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const BytesView input(data, size);

  multistream::Reader reader;
  reader.feed(input);
  for (;;) {
    auto msg = reader.next();
    if (!msg || !*msg) break;
    if ((*msg)->size() >= multistream::kMaxMessage) std::abort();
  }
  (void)reader.take_remaining();

  // The first byte picks a chunk size, so partial messages are exercised too.
  const size_t chunk = size == 0 ? 1 : size_t{data[0]} % 16 + 1;
  multistream::Listener listener([](std::string_view p) { return p == "/noise"; });
  multistream::Dialer dialer({"/noise", "/tls/1.0.0"});
  (void)dialer.start();
  for (size_t i = 0; i < size; i += chunk) {
    const BytesView piece = input.subspan(i, std::min(chunk, size - i));
    (void)listener.feed(piece);
    (void)dialer.feed(piece);
  }
  if (listener.done() && listener.selected() != "/noise") std::abort();
  (void)listener.take_output();
  (void)listener.take_remaining();
  (void)dialer.take_output();
  (void)dialer.take_remaining();
  return 0;
}
