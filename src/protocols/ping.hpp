#pragma once
// Ping (/ipfs/ping/1.0.0): 32 random bytes echoed back, repeated on one stream.
#include <chrono>

#include "host/host.hpp"

namespace p2pmq::protocols {

inline constexpr std::string_view kPingProtocol = "/ipfs/ping/1.0.0";
inline constexpr size_t kPingSize = 32;

class Ping {
 public:
  explicit Ping(host::Host& host);
  // Sends `count` pings on one stream; `on_rtt` sees each round trip as it completes.
  host::Task<Result<void>> ping(std::shared_ptr<host::Connection> conn, size_t count,
                                std::function<void(std::chrono::nanoseconds)> on_rtt);

 private:
  host::Host& host_;
};

}  // namespace p2pmq::protocols
