#include "host/connection.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <cstring>

#include "host/log_limit.hpp"

namespace p2pmq::host {

namespace {
std::atomic<uint64_t> next_connection_id{1};
constexpr size_t kReadChunk = 256 * 1024;
// Sized once: a partial frame carried over plus a full read always fit.
constexpr size_t kPlaintextBuffer = kReadChunk + 2 * 65536;

// Refusals are peer-triggered: one line per few events, with the count of the rest.
LogLimit stream_refusals;
LogLimit connection_refusals;
}  // namespace

// ---------------------------------------------------------------- Stream

Stream::Stream(std::shared_ptr<Connection> conn, yamux::StreamId id, bool inbound,
               std::unique_ptr<StreamScope> scope)
    : conn_(conn),
      id_(id),
      inbound_(inbound),
      remote_peer_(conn->remote_peer()),
      rcmgr_(conn->resource_manager()),
      scope_(std::move(scope)),
      readable_(conn->socket_executor()),
      writable_(conn->socket_executor()) {}

Stream::~Stream() {
  auto conn = conn_.lock();
  if (!conn) return;
  // A stream dropped before its owner finished writing is reset, so the remote does not wait on
  // it. One closed for writing keeps its queued data and FIN; what still arrives is refused.
  if (!reset_ && !write_closed_) conn->mux().reset(id_);
  conn->forget_stream(id_);
  conn->kick_writer();
}

Result<void> Stream::set_protocol(std::string p) {
  if (scope_) {
    if (auto r = scope_->set_protocol(p); !r) return r;
  }
  protocol_ = std::move(p);
  return {};
}

Result<void> Stream::reserve_memory(size_t n) {
  if (!scope_) return {};
  return scope_->reserve_memory(n);
}

void Stream::release_memory(size_t n) {
  if (scope_) scope_->release_memory(n);
}

void Stream::unread(Bytes bytes) {
  if (bytes.empty()) return;
  // Bytes we held a moment ago: put back on the account even if it is full now.
  (void)reserve_memory(bytes.size());
  received_bytes_ += bytes.size();
  already_credited_ += bytes.size();
  if (front_offset_ > 0 && !received_.empty()) {
    received_.front().erase(received_.front().begin(),
                            received_.front().begin() + static_cast<ptrdiff_t>(front_offset_));
    front_offset_ = 0;
  }
  received_.push_front(std::move(bytes));
  readable_.notify();
}

void Stream::on_data(Bytes data) {
  if (data.empty() || reset_) return;
  if (auto r = reserve_memory(data.size()); !r) {
    if (stream_refusals.allow(Clock::now()))
      spdlog::warn("resetting stream from {} ({}): {} ({} similar lines suppressed)",
                   remote_peer_.to_string(), escape_for_log(protocol_), r.error().message,
                   stream_refusals.suppressed());
    reset();
    return;
  }
  received_bytes_ += data.size();
  received_.push_back(std::move(data));
  readable_.notify();
}

void Stream::on_eof() {
  eof_ = true;
  readable_.notify();
}

void Stream::on_reset() {
  reset_ = true;
  readable_.notify();
  writable_.notify();
}

Task<Result<size_t>> Stream::read_some(std::span<uint8_t> out) {
  while (received_.empty() && !eof_ && !reset_) co_await readable_.wait();
  if (received_.empty()) {
    if (reset_) co_return fail(Errc::closed, "stream reset");
    co_return size_t{0};
  }
  size_t copied = 0;
  while (copied < out.size() && !received_.empty()) {
    Bytes& front = received_.front();
    size_t n = std::min(out.size() - copied, front.size() - front_offset_);
    std::memcpy(out.data() + copied, front.data() + front_offset_, n);
    copied += n;
    front_offset_ += n;
    if (front_offset_ == front.size()) {
      received_.pop_front();
      front_offset_ = 0;
    }
  }
  received_bytes_ -= std::min(received_bytes_, copied);
  release_memory(copied);
  // Re-read bytes were credited to the remote's window when first read.
  size_t credit = copied;
  size_t skip = std::min(credit, already_credited_);
  credit -= skip;
  already_credited_ -= skip;
  if (credit > 0) {
    if (auto conn = conn_.lock()) {
      conn->mux().consumed(id_, credit);
      conn->kick_writer();
    }
  }
  co_return copied;
}

Task<Result<void>> Stream::read_exact(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    auto n = co_await read_some(out.subspan(done));
    if (!n) co_return tl::unexpected(n.error());
    if (*n == 0) co_return fail(Errc::closed, "stream closed before the expected bytes");
    done += *n;
  }
  co_return Result<void>{};
}

Task<Result<void>> Stream::write(BytesView data) {
  while (!data.empty()) {
    auto conn = conn_.lock();
    if (!conn || !conn->is_open()) co_return fail(Errc::closed, "connection closed");
    if (reset_) co_return fail(Errc::closed, "stream reset");
    if (write_closed_) co_return fail(Errc::closed, "stream closed for writing");
    size_t n = conn->mux().write(id_, data);
    if (n > 0) {
      data = data.subspan(n);
      conn->kick_writer();
      continue;
    }
    if (!conn->mux().is_writable(id_)) co_return fail(Errc::closed, "stream not writable");
    conn.reset();  // do not keep the connection alive while waiting
    co_await writable_.wait();
  }
  co_return Result<void>{};
}

void Stream::close_write() {
  if (write_closed_ || reset_) return;
  write_closed_ = true;
  if (auto conn = conn_.lock()) {
    conn->mux().close_write(id_);
    conn->kick_writer();
  }
}

void Stream::reset() {
  if (reset_) return;
  reset_ = true;
  if (auto conn = conn_.lock()) {
    conn->mux().reset(id_);
    conn->kick_writer();
  }
  readable_.notify();
  writable_.notify();
}

// ---------------------------------------------------------------- Connection

Connection::Connection(tcp::socket socket, noise::Session noise, yamux::Session mux,
                       ConnectionInfo info, Bytes early_plaintext, size_t max_streams)
    : socket_(std::move(socket)),
      noise_(std::move(noise)),
      mux_(std::move(mux)),
      info_(std::move(info)),
      early_plaintext_(std::move(early_plaintext)),
      id_(next_connection_id++),
      max_streams_(max_streams),
      write_ready_(socket_.get_executor()),
      timer_wake_(socket_.get_executor()),
      output_taken_(socket_.get_executor()) {}

Connection::~Connection() = default;

void Connection::attach(std::shared_ptr<ResourceManager> rcmgr,
                        std::unique_ptr<ConnectionScope> scope,
                        std::chrono::milliseconds write_timeout) {
  rcmgr_ = std::move(rcmgr);
  scope_ = std::move(scope);
  write_timeout_ = write_timeout;
}

Result<std::unique_ptr<StreamScope>> Connection::stream_scope(Direction direction) {
  if (!rcmgr_ || !scope_) return std::unique_ptr<StreamScope>();
  return rcmgr_->open_stream(*scope_, direction);
}

bool Connection::account_output() {
  if (!scope_) return true;
  size_t held = mux_.buffered_bytes() + write_plain_.capacity() + write_wire_.capacity();
  if (held > output_reserved_) {
    if (auto r = scope_->reserve_memory(held - output_reserved_); !r) {
      close_reason_ = r.error().message;
      return false;
    }
  } else {
    scope_->release_memory(output_reserved_ - held);
  }
  output_reserved_ = held;
  return true;
}

asio::any_io_executor Connection::socket_executor() {
  return socket_.get_executor();
}

void Connection::start(StreamCallback on_stream, ClosedCallback on_closed) {
  on_stream_ = std::move(on_stream);
  on_closed_ = std::move(on_closed);
  auto self = shared_from_this();
  asio::co_spawn(socket_.get_executor(), read_loop(), asio::detached);
  asio::co_spawn(socket_.get_executor(), write_loop(), asio::detached);
  asio::co_spawn(socket_.get_executor(), timer_loop(), asio::detached);
}

Task<Result<std::shared_ptr<Stream>>> Connection::open_stream() {
  if (!open_ || closing_) co_return fail(Errc::closed, "connection closed");
  auto scope = stream_scope(Direction::outbound);
  if (!scope) co_return tl::unexpected(scope.error());
  auto id = mux_.open_stream();
  if (!id) co_return tl::unexpected(id.error());
  auto stream = std::make_shared<Stream>(shared_from_this(), *id, false, std::move(*scope));
  streams_[*id] = stream;
  kick_writer();
  co_return stream;
}

void Connection::forget_stream(yamux::StreamId id) {
  streams_.erase(id);
}

std::shared_ptr<Stream> Connection::find_stream(yamux::StreamId id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return nullptr;
  auto stream = it->second.lock();
  if (!stream) streams_.erase(it);
  return stream;
}

void Connection::dispatch_events() {
  yamux::Event event;
  while (mux_.poll_event(event)) {
    std::visit(
        [&](auto& e) {
          using E = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<E, yamux::StreamOpened>) {
            if (closing_) {
              mux_.reset(e.id);
              return;
            }
            auto scope = stream_scope(Direction::inbound);
            if (!scope) {
              if (stream_refusals.allow(Clock::now()))
                spdlog::warn(
                    "conn {} with {}: refusing inbound stream: {} ({} similar lines "
                    "suppressed)",
                    id_, info_.remote_peer.to_string(), scope.error().message,
                    stream_refusals.suppressed());
              mux_.reset(e.id);
              return;
            }
            auto stream =
                std::make_shared<Stream>(shared_from_this(), e.id, true, std::move(*scope));
            streams_[e.id] = stream;
            if (on_stream_) on_stream_(stream);
          } else if constexpr (std::is_same_v<E, yamux::StreamData>) {
            if (auto s = find_stream(e.id)) {
              s->on_data(std::move(e.data));
            } else {
              mux_.reset(e.id);  // nobody reads it: stop the remote from sending more
            }
          } else if constexpr (std::is_same_v<E, yamux::StreamEof>) {
            if (auto s = find_stream(e.id)) s->on_eof();
          } else if constexpr (std::is_same_v<E, yamux::StreamReset>) {
            if (auto s = find_stream(e.id)) s->on_reset();
            streams_.erase(e.id);
          } else if constexpr (std::is_same_v<E, yamux::StreamWritable>) {
            if (auto s = find_stream(e.id)) s->on_writable();
          } else if constexpr (std::is_same_v<E, yamux::GoAwayReceived>) {
            spdlog::debug("conn {} from {}: go away (code {})", id_, info_.remote_peer.to_string(),
                          e.code);
          } else if constexpr (std::is_same_v<E, yamux::PingRtt>) {
            last_rtt_ = e.rtt;
          } else if constexpr (std::is_same_v<E, yamux::StreamRefused>) {
            if (e.limit && stream_refusals.allow(Clock::now()))
              spdlog::warn(
                  "conn {} with {}: refusing inbound stream {}: max_streams ({}) reached ({} "
                  "similar lines suppressed)",
                  id_, info_.remote_peer.to_string(), e.id, max_streams_,
                  stream_refusals.suppressed());
          }
        },
        event);
  }
}

Task<void> Connection::read_loop() {
  auto self = shared_from_this();
  if (scope_) {
    if (auto r = scope_->reserve_memory(kReadChunk + kPlaintextBuffer); !r) {
      drop(r.error().message);
      co_return;
    }
  }
  Bytes buffer(kReadChunk);
  Bytes plaintext(kPlaintextBuffer);
  if (!early_plaintext_.empty()) {
    auto fed = mux_.feed(early_plaintext_, Clock::now());
    early_plaintext_.clear();
    if (!fed) {
      drop(fed.error().message);
      co_return;
    }
    dispatch_events();
    kick_writer();
  }
  while (open_) {
    // A full output means the peer is not reading what we owe it: stop reading what it sends
    // (TCP pushes back on it) until the writer gets the output onto the wire.
    while (open_ && mux_.output_full()) co_await output_taken_.wait();
    if (!open_) co_return;
    boost::system::error_code ec;
    size_t n = co_await socket_.async_read_some(asio::buffer(buffer),
                                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::eof || ec == asio::error::operation_aborted || closing_) {
        finish("closed by remote");
      } else {
        finish("read: " + ec.message());
      }
      co_return;
    }
    if (noise_.max_plaintext(n) > plaintext.size()) plaintext.resize(noise_.max_plaintext(n));
    auto decrypted = noise_.decrypt_into(BytesView(buffer.data(), n), plaintext.data());
    if (!decrypted) {
      drop(decrypted.error().message);
      co_return;
    }
    auto fed = mux_.feed(BytesView(plaintext.data(), *decrypted), Clock::now());
    dispatch_events();
    if (!fed) {
      drop(fed.error().message);
      co_return;
    }
    if (!account_output()) {
      drop(close_reason_);
      co_return;
    }
    if (mux_.has_output()) kick_writer();
  }
}

Task<void> Connection::write_loop() {
  using namespace asio::experimental::awaitable_operators;
  auto self = shared_from_this();
  Bytes& wire = write_wire_;
  Bytes& out = write_plain_;
  while (open_) {
    if (!mux_.has_output()) {
      if (closing_) break;
      co_await write_ready_.wait();
      continue;
    }
    mux_.swap_output(out);
    output_taken_.notify();
    // The wire buffer only grows, so sealing never zero-fills or allocates in steady state.
    size_t need = noise::Session::sealed_size(out.size());
    if (need > wire.size()) wire.resize(need);
    size_t n = noise_.encrypt_into(out, wire.data());
    if (!account_output()) {
      if (connection_refusals.allow(Clock::now()))
        spdlog::warn("conn {} with {}: closing: {} ({} similar lines suppressed)", id_,
                     info_.remote_peer.to_string(), close_reason_,
                     connection_refusals.suppressed());
      finish(close_reason_);
      co_return;
    }
    boost::system::error_code ec;
    if (write_timeout_.count() > 0) {
      // A peer that stops reading must not hold the connection (and what it buffers) forever.
      asio::steady_timer timer(socket_.get_executor(), write_timeout_);
      boost::system::error_code timer_ec;  // its own: the cancelled loser must not overwrite ec
      auto which = co_await (asio::async_write(socket_, asio::buffer(wire.data(), n),
                                               asio::redirect_error(asio::use_awaitable, ec)) ||
                             timer.async_wait(asio::redirect_error(asio::use_awaitable, timer_ec)));
      if (which.index() == 1) {
        if (connection_refusals.allow(Clock::now()))
          spdlog::warn(
              "conn {} with {}: write timed out after {} ms: closing ({} similar lines "
              "suppressed)",
              id_, info_.remote_peer.to_string(), write_timeout_.count(),
              connection_refusals.suppressed());
        finish("write timed out");
        co_return;
      }
    } else {
      co_await asio::async_write(socket_, asio::buffer(wire.data(), n),
                                 asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec) {
      finish("write: " + ec.message());
      co_return;
    }
  }
  if (open_ && closing_) {
    // Everything, the GoAway included, is written: half-close and let the read loop see EOF.
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    asio::steady_timer grace(socket_.get_executor(), std::chrono::seconds(2));
    co_await grace.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    finish(close_reason_);
  }
}

Task<void> Connection::timer_loop() {
  auto self = shared_from_this();
  while (open_) {
    // Wakes at the deadline, or when finish() cancels the timer through timer_wake_.
    co_await timer_wake_.wait_until(mux_.next_deadline());
    if (!open_) break;
    auto now = Clock::now();
    if (now < mux_.next_deadline()) continue;
    auto r = mux_.on_timer(now);
    if (!r) {
      drop(r.error().message);
      break;
    }
    dispatch_events();
    if (mux_.has_output()) kick_writer();
  }
}

void Connection::close(const std::string& reason) {
  if (!open_ || closing_) return;
  closing_ = true;
  close_reason_ = reason;
  mux_.go_away(0);
  kick_writer();
}

void Connection::drop(const std::string& reason) {
  if (connection_refusals.allow(Clock::now()))
    spdlog::warn("conn {} with {} ({}): dropping: {} ({} similar lines suppressed)", id_,
                 info_.remote_peer.to_string(), info_.remote_addr.to_string(), reason,
                 connection_refusals.suppressed());
  if (mux_.has_output() && open_) {
    // Best effort: the GoAway the muxer queued goes out before the socket closes.
    Bytes out = mux_.take_output();
    Bytes wire;
    noise_.encrypt(out, wire);
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);  // never block the io thread on a peer that does not read
    socket_.write_some(asio::buffer(wire), ec);
  }
  finish(reason);
}

void Connection::finish(const std::string& reason) {
  if (!open_) return;
  open_ = false;
  spdlog::debug("conn {} with {} closed: {}", id_, info_.remote_peer.to_string(), reason);
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, weak] : streams)
    if (auto s = weak.lock()) s->on_reset();
  write_ready_.notify();
  timer_wake_.notify();
  output_taken_.notify();
  // The connection's slots (per peer, per IP) and buffers go back now, not when the last
  // holder of this object lets go of it; its streams keep their own accounts.
  scope_.reset();
  output_reserved_ = 0;
  if (on_closed_) {
    auto callback = std::move(on_closed_);
    callback(*this);
  }
  on_stream_ = nullptr;
}

}  // namespace p2pmq::host
