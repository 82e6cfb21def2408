#include "protocols/ping.hpp"

#include <sodium.h>

#include <array>

namespace p2pmq::protocols {

using host::Task;

Ping::Ping(host::Host& host) : host_(host) {
  host_.handle(std::string(kPingProtocol), [](std::shared_ptr<host::Stream> s) -> Task<void> {
    std::array<uint8_t, kPingSize> payload;
    for (;;) {
      auto r = co_await s->read_exact(payload);
      if (!r) break;  // the remote closed: done
      auto w = co_await s->write(payload);
      if (!w) break;
    }
    s->close_write();
  });
}

Task<Result<void>> Ping::ping(std::shared_ptr<host::Connection> conn, size_t count,
                              std::function<void(std::chrono::nanoseconds)> on_rtt) {
  std::vector<std::string> protocols{std::string(kPingProtocol)};
  auto stream = co_await host_.new_stream(conn, protocols);
  if (!stream) co_return tl::unexpected(stream.error());
  for (size_t i = 0; i < count; ++i) {
    std::array<uint8_t, kPingSize> sent, received;
    randombytes_buf(sent.data(), sent.size());
    auto start = host::Clock::now();
    auto w = co_await (*stream)->write(sent);
    if (!w) co_return tl::unexpected(w.error());
    auto r = co_await (*stream)->read_exact(received);
    if (!r) co_return tl::unexpected(r.error());
    if (sent != received) co_return fail(Errc::protocol_violation, "ping: payload mismatch");
    if (on_rtt) on_rtt(host::Clock::now() - start);
  }
  (*stream)->close_write();
  co_return Result<void>{};
}

}  // namespace p2pmq::protocols
