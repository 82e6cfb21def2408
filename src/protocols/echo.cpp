#include "protocols/echo.hpp"

namespace p2pmq::protocols {

using host::Task;

void serve_echo(host::Host& host) {
  host.handle(std::string(kEchoProtocol), [](std::shared_ptr<host::Stream> s) -> Task<void> {
    Bytes buffer(64 * 1024);
    for (;;) {
      auto n = co_await s->read_some(buffer);
      if (!n || *n == 0) break;
      auto w = co_await s->write(BytesView(buffer.data(), *n));
      if (!w) co_return;
    }
    s->close_write();
  });
}

}  // namespace p2pmq::protocols
