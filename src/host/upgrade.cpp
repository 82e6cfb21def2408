#include "host/upgrade.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>

#include <random>

#include "net/multistream.hpp"

namespace p2pmq::host {

namespace {

constexpr size_t kHandshakeChunk = 64 * 1024;

// Reads, with the plaintext view the caller wants: raw bytes before Noise, decrypted after.
struct Pipe {
  tcp::socket& socket;
  noise::Session* session = nullptr;  // set once Noise is done
  Bytes buffer = Bytes(kHandshakeChunk);

  Task<Result<void>> write(BytesView plain) {
    Bytes wire;
    if (session) {
      session->encrypt(plain, wire);
      plain = wire;
    }
    boost::system::error_code ec;
    co_await asio::async_write(socket, asio::buffer(plain.data(), plain.size()),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return fail(Errc::io, "write: " + ec.message());
    co_return Result<void>{};
  }

  Task<Result<Bytes>> read() {
    for (;;) {
      boost::system::error_code ec;
      size_t n = co_await socket.async_read_some(asio::buffer(buffer),
                                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return fail(Errc::io, "read: " + ec.message());
      if (!session) co_return Bytes(buffer.begin(), buffer.begin() + static_cast<ptrdiff_t>(n));
      Bytes plain;
      auto r = session->decrypt(BytesView(buffer.data(), n), plain);
      if (!r) co_return tl::unexpected(r.error());
      if (!plain.empty()) co_return plain;  // else: only part of a frame arrived
    }
  }
};

// Runs one multistream-select negotiation; returns the bytes that followed it.
template <class Negotiator>
Task<Result<Bytes>> negotiate(Pipe& pipe, Negotiator& n, Bytes pending) {
  for (;;) {
    if (!pending.empty()) {
      auto fed = n.feed(pending);
      if (!fed) co_return tl::unexpected(fed.error());
    }
    Bytes out = n.take_output();
    if (!out.empty()) {
      auto w = co_await pipe.write(out);
      if (!w) co_return tl::unexpected(w.error());
    }
    if (n.done()) co_return n.take_remaining();
    auto in = co_await pipe.read();
    if (!in) co_return tl::unexpected(in.error());
    pending = std::move(*in);
  }
}

Task<Result<std::shared_ptr<Connection>>> run_upgrade(tcp::socket& socket, bool initiator,
                                                      const crypto::PrivateKey& identity,
                                                      std::optional<crypto::PeerId> expected_peer,
                                                      const UpgradeConfig& config) {
  Pipe pipe{socket};

  // 1. Security protocol.
  Bytes leftover;
  if (initiator) {
    multistream::Dialer dialer({std::string(noise::kProtocolId)});
    auto start = co_await pipe.write(dialer.start());
    if (!start) co_return tl::unexpected(start.error());
    auto r = co_await negotiate(pipe, dialer, {});
    if (!r) co_return tl::unexpected(r.error());
    leftover = std::move(*r);
  } else {
    multistream::Listener listener([](std::string_view p) { return p == noise::kProtocolId; });
    auto r = co_await negotiate(pipe, listener, {});
    if (!r) co_return tl::unexpected(r.error());
    leftover = std::move(*r);
  }

  // 2. Noise XX.
  noise::Handshake handshake(initiator, identity, expected_peer);
  if (initiator) {
    auto s = handshake.start();
    if (!s) co_return tl::unexpected(s.error());
  }
  for (;;) {
    if (!leftover.empty()) {
      auto fed = handshake.feed(leftover);
      leftover.clear();
      if (!fed) co_return tl::unexpected(fed.error());
    }
    Bytes out = handshake.take_output();
    if (!out.empty()) {
      auto w = co_await pipe.write(out);
      if (!w) co_return tl::unexpected(w.error());
    }
    if (handshake.complete()) break;
    auto in = co_await pipe.read();
    if (!in) co_return tl::unexpected(in.error());
    leftover = std::move(*in);
  }
  ConnectionInfo info{handshake.remote_peer(), handshake.remote_key(), {}, {}, initiator};
  Bytes encrypted_rest = handshake.take_remaining();
  noise::Session session = handshake.into_session();
  pipe.session = &session;

  // 3. Muxer, inside Noise.
  Bytes plain_rest;
  if (!encrypted_rest.empty()) {
    auto r = session.decrypt(encrypted_rest, plain_rest);
    if (!r) co_return tl::unexpected(r.error());
  }
  Bytes early;
  if (initiator) {
    multistream::Dialer dialer({std::string(yamux::kProtocolId)});
    auto start = co_await pipe.write(dialer.start());
    if (!start) co_return tl::unexpected(start.error());
    auto r = co_await negotiate(pipe, dialer, std::move(plain_rest));
    if (!r) co_return tl::unexpected(r.error());
    early = std::move(*r);
  } else {
    multistream::Listener listener([](std::string_view p) { return p == yamux::kProtocolId; });
    auto r = co_await negotiate(pipe, listener, std::move(plain_rest));
    if (!r) co_return tl::unexpected(r.error());
    early = std::move(*r);
  }

  boost::system::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  if (ec) co_return fail(Errc::io, "remote endpoint: " + ec.message());
  auto local = socket.local_endpoint(ec);
  if (ec) co_return fail(Errc::io, "local endpoint: " + ec.message());
  info.remote_addr = to_multiaddr(remote);
  info.local_addr = to_multiaddr(local);
  auto yamux_config = config.yamux;
  if (yamux_config.ping_seed == 0) {
    // Keep-alive ping values the remote cannot predict (it must read our pings to answer).
    std::random_device os;
    yamux_config.ping_seed = (uint64_t{os()} << 32) | os();
  }
  yamux::Session mux(initiator, yamux_config, Clock::now());
  co_return std::make_shared<Connection>(std::move(socket), std::move(session), std::move(mux),
                                         std::move(info), std::move(early),
                                         config.yamux.max_streams);
}

}  // namespace

Multiaddr to_multiaddr(const tcp::endpoint& endpoint) {
  return Multiaddr::from_ip_tcp(endpoint.address().to_string(), endpoint.port());
}

Task<Result<std::shared_ptr<Connection>>> upgrade(tcp::socket socket, bool initiator,
                                                  const crypto::PrivateKey& identity,
                                                  std::optional<crypto::PeerId> expected_peer,
                                                  const UpgradeConfig& config, Signal* abort) {
  // A watchdog closes the socket when the handshake takes too long or is aborted; the pending
  // read then fails. It only touches the socket while the upgrade is still running.
  struct Watch {
    explicit Watch(asio::any_io_executor ex) : timer(ex) {}
    asio::steady_timer timer;
    tcp::socket* socket = nullptr;
    bool finished = false;
    bool fired = false;
  };
  auto watch = std::make_shared<Watch>(socket.get_executor());
  watch->socket = &socket;
  watch->timer.expires_after(config.timeout);
  asio::co_spawn(
      socket.get_executor(),
      [watch, abort]() -> Task<void> {
        using namespace asio::experimental::awaitable_operators;
        boost::system::error_code ec;
        if (abort)
          co_await (watch->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec)) ||
                    abort->wait());
        else
          co_await watch->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (watch->finished) co_return;
        watch->fired = true;
        boost::system::error_code ignored;
        watch->socket->close(ignored);
      },
      asio::detached);
  auto result = co_await run_upgrade(socket, initiator, identity, expected_peer, config);
  watch->finished = true;
  watch->timer.cancel();
  if (watch->fired) co_return fail(Errc::timeout, "handshake timed out or aborted");
  co_return result;
}

}  // namespace p2pmq::host
