#pragma once
// The asio vocabulary of the IO edge. One io thread runs all libp2p work, so nothing here locks.
#include <boost/asio.hpp>
#include <chrono>

namespace p2pmq::host {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
template <class T>
using Task = asio::awaitable<T>;
using Clock = std::chrono::steady_clock;

// Wakes every coroutine waiting on it. Waiters re-check their condition after waking; with a
// single io thread nothing runs between the check and the wait, so no wake-up is lost.
class Signal {
 public:
  explicit Signal(asio::any_io_executor ex) : timer_(ex, Clock::time_point::max()) {}
  void notify() { timer_.cancel(); }
  Task<void> wait() {
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  // Returns false when the deadline passed first.
  Task<bool> wait_until(Clock::time_point deadline);

 private:
  asio::steady_timer timer_;
};

}  // namespace p2pmq::host
