#include "host/asio.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>

namespace p2pmq::host {

Task<bool> Signal::wait_until(Clock::time_point deadline) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer deadline_timer(timer_.get_executor(), deadline);
  boost::system::error_code ec1, ec2;
  auto which = co_await (timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec1)) ||
                         deadline_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec2)));
  co_return which.index() == 0;
}

}  // namespace p2pmq::host
