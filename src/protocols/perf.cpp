#include "protocols/perf.hpp"

namespace p2pmq::protocols {

using host::Task;

namespace {
constexpr size_t kChunk = 64 * 1024;

Task<Result<void>> send_zeros(host::Stream& s, uint64_t count) {
  static const Bytes zeros(kChunk, 0);
  while (count > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(count, kChunk));
    auto w = co_await s.write(BytesView(zeros.data(), n));
    if (!w) co_return w;
    count -= n;
  }
  co_return Result<void>{};
}
}  // namespace

void serve_perf(host::Host& host) {
  host.handle(std::string(kPerfProtocol), [](std::shared_ptr<host::Stream> s) -> Task<void> {
    uint8_t header[8];
    if (!co_await s->read_exact(header)) {
      s->reset();
      co_return;
    }
    uint64_t wanted = 0;
    for (uint8_t b : header) wanted = wanted << 8 | b;
    Bytes buffer(kChunk);
    for (;;) {  // drain the upload
      auto n = co_await s->read_some(buffer);
      if (!n) co_return;
      if (*n == 0) break;
    }
    if (co_await send_zeros(*s, wanted)) s->close_write();
  });
}

Task<Result<PerfResult>> run_perf(host::Host& host, std::shared_ptr<host::Connection> conn,
                                  uint64_t upload_bytes, uint64_t download_bytes) {
  std::vector<std::string> protocols{std::string(kPerfProtocol)};
  auto stream = co_await host.new_stream(conn, protocols);
  if (!stream) co_return tl::unexpected(stream.error());
  auto& s = **stream;
  uint8_t header[8];
  for (int i = 0; i < 8; ++i) header[i] = static_cast<uint8_t>(download_bytes >> (56 - 8 * i));
  auto start = host::Clock::now();
  auto w = co_await s.write(header);
  if (!w) co_return tl::unexpected(w.error());
  w = co_await send_zeros(s, upload_bytes);
  if (!w) co_return tl::unexpected(w.error());
  s.close_write();
  PerfResult result;
  Bytes buffer(kChunk);
  bool first = true;
  host::Clock::time_point answer_start = host::Clock::now();
  for (;;) {
    auto n = co_await s.read_some(buffer);
    if (!n) co_return tl::unexpected(n.error());
    if (first) {
      answer_start = host::Clock::now();
      first = false;
    }
    if (*n == 0) break;
    result.downloaded += *n;
  }
  auto end = host::Clock::now();
  result.upload = answer_start - start;
  result.download = end - answer_start;
  if (result.downloaded != download_bytes)
    co_return fail(Errc::protocol_violation, "perf: expected " + std::to_string(download_bytes) +
                                                 " bytes, got " +
                                                 std::to_string(result.downloaded));
  co_return result;
}

}  // namespace p2pmq::protocols
