// A server Yamux session driven by arbitrary input: remote bytes split at arbitrary points,
// interleaved with local opens, writes, closes, resets, consumption and timer ticks.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "net/yamux.hpp"

using namespace p2pmq;
using namespace p2pmq::yamux;

namespace {

// Our own output must always be well-formed frames.
void check_output(const Bytes& out) {
  size_t i = 0;
  while (i < out.size()) {
    if (i + kHeaderSize > out.size()) std::abort();
    const uint8_t* h = out.data() + i;
    if (h[0] != 0 || h[1] > 3) std::abort();
    uint32_t len = (uint32_t{h[8]} << 24) | (uint32_t{h[9]} << 16) | (uint32_t{h[10]} << 8) | h[11];
    i += kHeaderSize + (h[1] == 0 ? len : 0);
  }
  if (i != out.size()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Config config;
  config.max_streams = 8;
  config.max_send_buffer = 4096;
  config.max_frame = 1000;
  config.max_window = 1 << 20;
  config.keepalive_interval = std::chrono::milliseconds(1000);
  config.ping_timeout = std::chrono::milliseconds(500);
  auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  Session s(false, config, now);
  std::vector<StreamId> ids;
  static const uint8_t kPayload[8192] = {};

  size_t i = 0;
  auto next = [&]() -> uint8_t { return i < size ? data[i++] : 0; };
  while (i < size) {
    uint8_t op = next();
    switch (op % 8) {
      case 0:
      case 1:
      case 2: {  // remote bytes, a chunk of arbitrary length
        size_t want = (size_t{next()} << 4) | (op >> 4);
        size_t n = std::min(size - i, want);
        auto r = s.feed(BytesView(data + i, n), now);
        i += n;
        if (!r && !s.is_closed()) std::abort();
        break;
      }
      case 3:
        if (auto id = s.open_stream()) ids.push_back(*id);
        break;
      case 4:
        if (!ids.empty()) {
          StreamId id = ids[next() % ids.size()];
          size_t n = size_t{next()} * 32;
          size_t took = s.write(id, BytesView(kPayload, n));
          if (took > n) std::abort();
        }
        break;
      case 5: {
        StreamId id = next();  // any id, known or not
        switch (next() % 3) {
          case 0:
            s.close_write(id);
            break;
          case 1:
            s.reset(id);
            break;
          default:
            s.consumed(id, size_t{next()} * 1024);
            break;
        }
        break;
      }
      case 6:
        now += std::chrono::milliseconds(next() * 8);
        (void)s.on_timer(now);
        break;
      default:
        if (next() & 1) s.go_away(next() % 3);
        break;
    }
    Event e;
    while (s.poll_event(e)) {
      if (auto* d = std::get_if<StreamData>(&e)) s.consumed(d->id, d->data.size());
      if (auto* o = std::get_if<StreamOpened>(&e)) ids.push_back(o->id);
    }
    if (s.stream_count() > config.max_streams) std::abort();
    check_output(s.take_output());
  }
  return 0;
}
