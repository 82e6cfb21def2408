#include "raw_peer.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "net/multistream.hpp"
#include "net/yamux.hpp"

namespace p2pmq::test {

namespace {

void put_be(Bytes& out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

uint32_t get_be(const uint8_t* p, int bytes) {
  uint32_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

Bytes yamux_frame(const YamuxHeader& h, BytesView payload) {
  Bytes out;
  out.reserve(yamux::kHeaderSize + payload.size());
  put_be(out, h.version, 1);
  put_be(out, h.type, 1);
  put_be(out, h.flags, 2);
  put_be(out, h.stream, 4);
  put_be(out, h.length, 4);
  append(out, payload);
  return out;
}

Bytes yamux_data(uint32_t stream, uint16_t flags, BytesView payload) {
  return yamux_frame({0, ymx::kData, flags, stream, static_cast<uint32_t>(payload.size())},
                     payload);
}

std::vector<YamuxHeader> parse_yamux(BytesView plaintext) {
  std::vector<YamuxHeader> frames;
  size_t pos = 0;
  while (plaintext.size() - pos >= yamux::kHeaderSize) {
    const uint8_t* p = plaintext.data() + pos;
    YamuxHeader h{p[0], p[1], static_cast<uint16_t>(get_be(p + 2, 2)), get_be(p + 4, 4),
                  get_be(p + 8, 4)};
    size_t size = yamux::kHeaderSize + (h.type == ymx::kData ? h.length : 0);
    if (plaintext.size() - pos < size) break;
    frames.push_back(h);
    pos += size;
  }
  return frames;
}

bool CloseReport::has_go_away(uint32_t code) const {
  for (const auto& f : frames)
    if (f.type == ymx::kGoAway && f.stream == 0 && f.length == code) return true;
  return false;
}

RawPeer::RawPeer(asio::any_io_executor ex)
    : socket_(ex), identity_(crypto::PrivateKey::generate()) {}

Task<Result<void>> RawPeer::connect(const tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  co_await socket_.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail(Errc::io, "connect: " + ec.message());
  // Kept now: once the host resets the connection the socket may no longer know its address.
  auto local = socket_.local_endpoint(ec);
  if (ec) co_return fail(Errc::io, "local endpoint: " + ec.message());
  local_addr_ = Multiaddr::from_ip_tcp(local.address().to_string(), local.port());
  co_return Result<void>{};
}

Task<Result<void>> RawPeer::write_raw(BytesView wire) {
  boost::system::error_code ec;
  co_await asio::async_write(socket_, asio::buffer(wire.data(), wire.size()),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return fail(Errc::io, "write: " + ec.message());
  co_return Result<void>{};
}

Task<Result<void>> RawPeer::write_secure(BytesView plaintext) {
  Bytes wire;
  session_->encrypt(plaintext, wire);
  co_return co_await write_raw(wire);
}

Task<Result<void>> RawPeer::write(BytesView data) {
  if (session_) co_return co_await write_secure(data);
  co_return co_await write_raw(data);
}

Task<Result<Bytes>> RawPeer::read_some() {
  for (;;) {
    boost::system::error_code ec;
    size_t n = co_await socket_.async_read_some(asio::buffer(buffer_),
                                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return fail(Errc::io, "read: " + ec.message());
    BytesView wire(buffer_.data(), n);
    if (!session_) co_return Bytes(wire.begin(), wire.end());
    Bytes plain;
    auto decrypted = session_->decrypt(wire, plain);
    if (!decrypted) co_return tl::unexpected(decrypted.error());
    if (!plain.empty()) co_return plain;
  }
}

Task<Result<void>> RawPeer::select(const std::string& protocol) {
  std::vector<std::string> protocols(1, protocol);
  multistream::Dialer dialer(protocols);
  Bytes out = dialer.start();
  auto started = co_await write(out);
  if (!started) co_return started;
  while (!dialer.done()) {
    if (pending_.empty()) {
      auto in = co_await read_some();
      if (!in) co_return tl::unexpected(in.error());
      pending_ = std::move(*in);
    }
    auto fed = dialer.feed(pending_);
    pending_.clear();
    if (!fed) co_return fed;
    out = dialer.take_output();
    if (!out.empty()) {
      auto written = co_await write(out);
      if (!written) co_return written;
    }
  }
  pending_ = dialer.take_remaining();
  co_return Result<void>{};
}

Task<Result<void>> RawPeer::noise_handshake(const crypto::PeerId& expected) {
  noise::Handshake handshake(true, identity_, expected);
  if (auto s = handshake.start(); !s) co_return s;
  Bytes out = handshake.take_output();
  auto first = co_await write_raw(out);
  if (!first) co_return first;
  while (!handshake.complete()) {
    if (pending_.empty()) {
      auto in = co_await read_some();
      if (!in) co_return tl::unexpected(in.error());
      pending_ = std::move(*in);
    }
    auto fed = handshake.feed(pending_);
    pending_.clear();
    if (!fed) co_return fed;
    out = handshake.take_output();
    if (!out.empty()) {
      auto written = co_await write_raw(out);
      if (!written) co_return written;
    }
  }
  Bytes rest = handshake.take_remaining();
  session_.emplace(handshake.into_session());
  if (!rest.empty()) {
    if (auto r = session_->decrypt(rest, pending_); !r) co_return r;
  }
  co_return Result<void>{};
}

Task<Result<void>> RawPeer::upgrade(const crypto::PeerId& expected) {
  auto security = co_await select(std::string(noise::kProtocolId));
  if (!security) co_return security;
  auto handshake = co_await noise_handshake(expected);
  if (!handshake) co_return handshake;
  co_return co_await select(std::string(yamux::kProtocolId));
}

void RawPeer::shutdown_send() {
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
}

Task<CloseReport> RawPeer::wait_closed(Clock::time_point deadline) {
  using namespace asio::experimental::awaitable_operators;
  CloseReport report;
  for (;;) {
    asio::steady_timer timer(socket_.get_executor(), deadline);
    boost::system::error_code ec;
    auto which = co_await (socket_.async_read_some(asio::buffer(buffer_),
                                                   asio::redirect_error(asio::use_awaitable, ec)) ||
                           timer.async_wait(asio::use_awaitable));
    if (which.index() == 1) break;  // deadline: still open
    if (ec) {
      report.closed = true;
      report.how = ec.message();
      break;
    }
    BytesView wire(buffer_.data(), std::get<0>(which));
    if (!session_) continue;  // before the handshake: nothing to parse
    if (auto r = session_->decrypt(wire, pending_); !r) {
      report.how = "undecryptable bytes from the host: " + r.error().to_string();
      break;
    }
  }
  if (session_) report.frames = parse_yamux(pending_);
  co_return report;
}

}  // namespace p2pmq::test
