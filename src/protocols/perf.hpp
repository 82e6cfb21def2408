#pragma once
// The libp2p perf protocol (/perf/1.0.0, libp2p/specs perf/perf.md): the client sends the number
// of bytes it wants back as a big-endian u64, uploads, closes its write side; the server drains
// the upload, then sends the requested bytes and closes. Used for throughput benchmarks.
#include <chrono>

#include "host/host.hpp"

namespace p2pmq::protocols {

inline constexpr std::string_view kPerfProtocol = "/perf/1.0.0";

void serve_perf(host::Host& host);

struct PerfResult {
  std::chrono::duration<double> upload;    // until the server started answering
  std::chrono::duration<double> download;  // from there to the server's end of stream
  uint64_t downloaded = 0;
};

host::Task<Result<PerfResult>> run_perf(host::Host& host, std::shared_ptr<host::Connection> conn,
                                        uint64_t upload_bytes, uint64_t download_bytes);

}  // namespace p2pmq::protocols
