#include "host/host.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/experimental/awaitable_operators.hpp>

#include <random>

#include "core/varint.hpp"
#include "host/local_addresses.hpp"
#include "host/log_limit.hpp"
#include "net/multistream.hpp"

namespace p2pmq::host {

using namespace asio::experimental::awaitable_operators;

namespace {

// Peer-triggered refusals: a few lines per interval, with the count of the rest.
LogLimit inbound_refusals;
LogLimit stream_refusals;
LogLimit negotiation_failures;

std::string ip_of(const tcp::endpoint& endpoint) {
  auto a = endpoint.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  if (a.is_v6()) {
    auto v6 = a.to_v6();
    v6.scope_id(0);  // link-local peers: the zone is ours, not part of the peer's address
    return v6.to_string();
  }
  return a.to_string();
}

// A task that ends at `t` (raced against work with ||).
Task<void> sleep_for(asio::any_io_executor ex, std::chrono::nanoseconds t) {
  asio::steady_timer timer(ex, t);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

void log_exception(std::exception_ptr e, const char* what) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("{}: unexpected exception: {}", what, ex.what());
  }
}

}  // namespace

struct Host::PendingDial {
  explicit PendingDial(asio::any_io_executor ex) : done(ex) {}
  Signal done;
  bool finished = false;
  Result<std::shared_ptr<Connection>> result = fail(Errc::closed, "dial pending");
};

Host::Host(asio::io_context& io, crypto::PrivateKey identity, HostConfig config)
    : io_(io),
      identity_(std::move(identity)),
      peer_id_(crypto::PeerId::from_public_key(identity_.public_key())),
      config_(std::move(config)) {
  // The older limits keys bound the same things: the smaller value wins.
  auto& r = config_.resources;
  r.transient.streams_inbound =
      std::min(r.transient.streams_inbound, config_.max_negotiating_streams);
  r.peer.connections = std::min(r.peer.connections, config_.max_connections_per_peer);
  r.system.connections_inbound =
      std::min(r.system.connections_inbound, config_.max_inbound_connections);
  r.system.connections_outbound =
      std::min(r.system.connections_outbound, config_.max_outbound_connections);
  rcmgr_ = std::make_shared<ResourceManager>(config_.resources);
}

Host::~Host() {
  in_flight_->alive = false;
  boost::system::error_code ec;
  for (auto& a : acceptors_) a->close(ec);
  abort_upgrades_.notify();
  for (auto& [peer, conn] : connections_) conn->close("host destroyed");
}

Result<void> Host::start() {
  for (const auto& addr : config_.listen) {
    auto target = addr.tcp_target();
    if (!target || target->is_dns)
      return fail(Errc::unsupported, "cannot listen on " + addr.to_string() +
                                         ": need /ip4/<addr>/tcp/<port> or /ip6/<addr>/tcp/<port>");
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(target->host, ec);
    if (ec) return fail(Errc::invalid_input, "bad listen address " + addr.to_string());
    auto acceptor = std::make_shared<tcp::acceptor>(io_);
    tcp::endpoint endpoint(ip, target->port);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && ip.is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail(Errc::io, "cannot listen on " + addr.to_string() + ": " + ec.message());
    acceptors_.push_back(acceptor);
    asio::co_spawn(io_, accept_loop(acceptor, in_flight_),
                   [](std::exception_ptr e) { log_exception(e, "accept loop"); });
  }
  return {};
}

std::vector<Multiaddr> Host::listen_addrs() const {
  std::vector<Multiaddr> out;
  for (const auto& a : acceptors_) {
    boost::system::error_code ec;
    auto endpoint = a->local_endpoint(ec);
    if (!ec) out.push_back(to_multiaddr(endpoint));
  }
  return out;
}

std::vector<Multiaddr> Host::advertised_addrs() const {
  return announce_addrs(listen_addrs(), local_addresses());
}

void Host::handle(const std::string& protocol, StreamHandler handler, const std::string& service) {
  bool added = !handlers_.contains(protocol);
  handlers_[protocol] = std::move(handler);
  if (!service.empty()) rcmgr_->set_service(protocol, service);
  if (added)
    for (auto& f : protocol_observers_) f();
}

void Host::unhandle(const std::string& protocol) {
  if (handlers_.erase(protocol) > 0)
    for (auto& f : protocol_observers_) f();
}

std::vector<std::string> Host::protocols() const {
  std::vector<std::string> out;
  for (const auto& [p, h] : handlers_) out.push_back(p);
  return out;
}

size_t Host::count(bool outbound) const {
  size_t n = 0;
  for (const auto& [peer, conn] : connections_) n += conn->info().outbound == outbound;
  return n;
}

std::shared_ptr<Connection> Host::connection_to(const crypto::PeerId& peer) const {
  auto [begin, end] = connections_.equal_range(peer);
  for (auto it = begin; it != end; ++it)
    if (it->second->is_open() && !it->second->is_closing()) return it->second;
  return nullptr;
}

std::vector<std::shared_ptr<Connection>> Host::connections() const {
  std::vector<std::shared_ptr<Connection>> out;
  for (const auto& [peer, conn] : connections_) out.push_back(conn);
  return out;
}

void Host::block(const crypto::PeerId& peer) {
  blocked_.insert(peer);
  disconnect(peer, "blocked");
}

void Host::unblock(const crypto::PeerId& peer) {
  blocked_.erase(peer);
}

void Host::disconnect(const crypto::PeerId& peer, const std::string& reason) {
  auto [begin, end] = connections_.equal_range(peer);
  std::vector<std::shared_ptr<Connection>> victims;
  for (auto it = begin; it != end; ++it) victims.push_back(it->second);
  for (auto& c : victims) c->close(reason);
}

Task<void> Host::accept_loop(std::shared_ptr<tcp::acceptor> acceptor,
                             std::shared_ptr<InFlight> in_flight) {
  // A host destroyed while an accept is pending: the aborted accept resumes this loop after
  // `this` is gone, so look at nothing of the host before checking it is alive.
  while (in_flight->alive && !stopping_ && acceptor->is_open()) {
    boost::system::error_code ec;
    tcp::socket socket =
        co_await acceptor->async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (!in_flight->alive) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_) co_return;
      spdlog::warn("accept: {}", ec.message());
      // EMFILE and friends: back off a little rather than spin.
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    asio::co_spawn(io_, handle_inbound(std::move(socket)),
                   [](std::exception_ptr e) { log_exception(e, "inbound connection"); });
  }
}

Task<void> Host::handle_inbound(tcp::socket socket) {
  boost::system::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  if (ec) {
    socket.close(ec);
    co_return;
  }
  std::string from = to_multiaddr(remote).to_string();
  if (count(false) + in_flight_->inbound >= config_.max_inbound_connections) {
    if (inbound_refusals.allow(Clock::now()))
      spdlog::warn(
          "refusing inbound connection from {}: max_inbound_connections ({}) reached ({} similar "
          "lines suppressed)",
          from, config_.max_inbound_connections, inbound_refusals.suppressed());
    socket.close(ec);
    co_return;
  }
  // A pending handshake until the peer is known: per-IP, per-subnet and transient limits.
  auto scope = rcmgr_->open_connection(Direction::inbound, ip_of(remote));
  if (!scope) {
    if (inbound_refusals.allow(Clock::now()))
      spdlog::warn("refusing inbound connection from {}: {} ({} similar lines suppressed)", from,
                   scope.error().message, inbound_refusals.suppressed());
    socket.close(ec);
    co_return;
  }
  auto rcmgr = rcmgr_;  // the scope refers to it: keep it as long as the scope
  socket.set_option(tcp::no_delay(true), ec);  // small frames (ping, acks) must not wait
  auto in_flight = in_flight_;
  ++in_flight->inbound;
  auto conn = co_await upgrade(std::move(socket), false, identity_, std::nullopt, config_.upgrade,
                               &abort_upgrades_);
  --in_flight->inbound;
  if (!in_flight->alive) {
    if (conn) (*conn)->start(nullptr, nullptr), (*conn)->close("host destroyed");
    co_return;
  }
  if (in_flight->inbound == 0) all_closed_.notify();
  if (!conn) {
    spdlog::info("inbound connection from {} failed: {}", from, conn.error().to_string());
    co_return;
  }
  if (stopping_) {
    (*conn)->start(nullptr, nullptr);
    (*conn)->close("shutting down");
    co_return;
  }
  if (blocked_.contains((*conn)->remote_peer())) {
    spdlog::info("refusing inbound connection from blocked peer {}",
                 (*conn)->remote_peer().to_string());
    (*conn)->start(nullptr, nullptr);
    (*conn)->close("blocked");
    co_return;
  }
  if (auto r = (*scope)->set_peer((*conn)->remote_peer().to_string()); !r) {
    if (inbound_refusals.allow(Clock::now()))
      spdlog::warn("refusing inbound connection from {}: {} ({} similar lines suppressed)", from,
                   r.error().message, inbound_refusals.suppressed());
    (*conn)->start(nullptr, nullptr);
    (*conn)->close("resource limit");
    co_return;
  }
  (*conn)->attach(rcmgr, std::move(*scope), config_.write_timeout);
  add_connection(*conn);
}

Task<Result<std::shared_ptr<Connection>>> Host::connect(const Multiaddr& addr) {
  co_return co_await connect_until(addr, Clock::now() + config_.dial_timeout);
}

Task<Result<std::shared_ptr<Connection>>> Host::connect_until(const Multiaddr& addr,
                                                              Clock::time_point deadline) {
  auto peer_bytes = addr.p2p();
  if (!peer_bytes) co_return co_await dial(addr, std::nullopt, deadline);
  auto peer = crypto::PeerId::from_bytes(*peer_bytes);
  if (!peer) co_return fail(Errc::invalid_input, "bad /p2p/ peer id in " + addr.to_string());
  if (*peer == peer_id_) co_return fail(Errc::invalid_input, "refusing to dial self");
  if (blocked_.contains(*peer))
    co_return fail(Errc::unsupported, "peer " + peer->to_string() + " is blocked");
  if (auto existing = connection_to(*peer)) co_return existing;
  if (auto it = pending_dials_.find(*peer); it != pending_dials_.end()) {
    auto pending = it->second;
    while (!pending->finished) co_await pending->done.wait();
    co_return pending->result;
  }
  auto pending = std::make_shared<PendingDial>(io_.get_executor());
  pending_dials_[*peer] = pending;
  auto result = co_await dial(addr, *peer, deadline);
  pending->result = result;
  pending->finished = true;
  pending->done.notify();
  pending_dials_.erase(*peer);
  co_return result;
}

Task<Result<std::shared_ptr<Connection>>> Host::connect(const crypto::PeerId& peer) {
  if (auto existing = connection_to(peer)) co_return existing;
  auto it = peer_store_.find(peer);
  if (it == peer_store_.end() || it->second.addrs.empty())
    co_return fail(Errc::not_found, "no known address for " + peer.to_string());
  Error last{Errc::not_found, "no dialable address for " + peer.to_string()};
  auto addrs = it->second.addrs;  // the store may change while we dial
  // One deadline for the whole connect: a peer with many (fake) addresses cannot hold a dial
  // slot for dial_timeout per address.
  auto deadline = Clock::now() + config_.dial_timeout;
  bool loopback = listens_on_loopback();
  for (const auto& a : addrs) {
    if (!dialable_from_peer(a, loopback)) continue;
    if (Clock::now() >= deadline) {
      last = Error{Errc::timeout, "connecting to " + peer.to_string() + " timed out"};
      break;
    }
    auto r = co_await connect_until(a.without_p2p().with_p2p(peer.bytes()), deadline);
    if (r) co_return r;
    last = r.error();
  }
  co_return tl::unexpected(last);
}

Task<Result<std::shared_ptr<Connection>>> Host::dial(const Multiaddr& addr,
                                                     std::optional<crypto::PeerId> expected,
                                                     Clock::time_point deadline) {
  if (stopping_) co_return fail(Errc::closed, "host is shutting down");
  if (in_flight_->dials >= config_.max_pending_dials) {
    spdlog::warn("refusing dial to {}: max_pending_dials ({}) reached", addr.to_string(),
                 config_.max_pending_dials);
    co_return fail(Errc::limit_exceeded, "too many pending dials");
  }
  if (count(true) >= config_.max_outbound_connections) {
    spdlog::warn("refusing dial to {}: max_outbound_connections ({}) reached", addr.to_string(),
                 config_.max_outbound_connections);
    co_return fail(Errc::limit_exceeded, "too many outbound connections");
  }
  auto target = addr.tcp_target();
  if (!target) co_return fail(Errc::unsupported, "not a TCP address: " + addr.to_string());

  auto in_flight = in_flight_;
  ++in_flight->dials;
  struct Guard {
    std::shared_ptr<InFlight> state;
    Signal* done;
    ~Guard() {
      if (--state->dials == 0 && state->alive) done->notify();
    }
  } guard{in_flight, &all_closed_};

  std::vector<tcp::endpoint> endpoints;
  boost::system::error_code ec;
  if (target->is_dns) {
    tcp::resolver resolver(io_);
    asio::steady_timer timer(io_, deadline);
    auto which = co_await (resolver.async_resolve(target->host, std::to_string(target->port),
                                                  asio::redirect_error(asio::use_awaitable, ec)) ||
                           timer.async_wait(asio::use_awaitable));
    if (which.index() == 1)
      co_return fail(Errc::timeout, "resolving " + target->host + " timed out");
    if (ec) co_return fail(Errc::io, "resolving " + target->host + ": " + ec.message());
    for (const auto& entry : std::get<0>(which)) {
      auto ep = entry.endpoint();
      if ((target->family == 4 && !ep.address().is_v4()) ||
          (target->family == 6 && !ep.address().is_v6()))
        continue;
      endpoints.push_back(ep);
    }
  } else {
    auto ip = asio::ip::make_address(target->host, ec);
    if (ec) co_return fail(Errc::invalid_input, "bad address " + target->host);
    endpoints.emplace_back(ip, target->port);
  }
  if (endpoints.empty()) co_return fail(Errc::not_found, "no address for " + addr.to_string());

  tcp::socket socket(io_);
  Error last{Errc::io, "connect failed"};
  bool connected = false;
  for (const auto& ep : endpoints) {
    socket = tcp::socket(io_);
    asio::steady_timer timer(io_, deadline);
    boost::system::error_code cec;
    auto which =
        co_await (socket.async_connect(ep, asio::redirect_error(asio::use_awaitable, cec)) ||
                  timer.async_wait(asio::use_awaitable));
    if (which.index() == 1) {
      last = Error{Errc::timeout, "connecting to " + addr.to_string() + " timed out"};
      break;
    }
    if (!cec) {
      connected = true;
      break;
    }
    last = Error{Errc::io, "connecting to " + addr.to_string() + ": " + cec.message()};
  }
  if (!connected) co_return tl::unexpected(last);
  socket.set_option(tcp::no_delay(true), ec);
  auto remote = socket.remote_endpoint(ec);
  if (ec) co_return fail(Errc::io, "dial " + addr.to_string() + ": " + ec.message());
  auto scope = rcmgr_->open_connection(Direction::outbound, ip_of(remote));
  if (!scope)
    co_return fail(Errc::limit_exceeded, "dial " + addr.to_string() + ": " + scope.error().message);
  auto rcmgr = rcmgr_;

  auto upgrade_config = config_.upgrade;
  auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  upgrade_config.timeout = std::max(std::chrono::milliseconds(1), remaining);
  auto conn = co_await upgrade(std::move(socket), true, identity_, expected, upgrade_config,
                               &abort_upgrades_);
  if (!in_flight->alive) {
    if (conn) (*conn)->start(nullptr, nullptr), (*conn)->close("host destroyed");
    co_return fail(Errc::closed, "host destroyed");
  }
  if (!conn) {
    auto e = conn.error();
    e.message = "dial " + addr.to_string() + ": " + e.message;
    co_return tl::unexpected(e);
  }
  if ((*conn)->remote_peer() == peer_id_) {
    (*conn)->start(nullptr, nullptr);
    (*conn)->close("dialed self");
    co_return fail(Errc::invalid_input, "dialed self at " + addr.to_string());
  }
  if (stopping_) {
    (*conn)->start(nullptr, nullptr);
    (*conn)->close("shutting down");
    co_return fail(Errc::closed, "host is shutting down");
  }
  if (blocked_.contains((*conn)->remote_peer())) {
    (*conn)->start(nullptr, nullptr);
    (*conn)->close("blocked");
    co_return fail(Errc::unsupported, "peer " + (*conn)->remote_peer().to_string() + " is blocked");
  }
  if (auto r = (*scope)->set_peer((*conn)->remote_peer().to_string()); !r) {
    (*conn)->start(nullptr, nullptr);
    (*conn)->close("resource limit");
    co_return fail(Errc::limit_exceeded, "dial " + addr.to_string() + ": " + r.error().message);
  }
  (*conn)->attach(rcmgr, std::move(*scope), config_.write_timeout);
  add_connection(*conn);
  co_return *conn;
}

void Host::add_connection(const std::shared_ptr<Connection>& conn) {
  boost::system::error_code ec;
  connections_.emplace(conn->remote_peer(), conn);
  auto& info = peer_store_[conn->remote_peer()];
  info.public_key = conn->info().remote_key;
  if (conn->info().outbound) {
    auto addr = conn->info().remote_addr;
    if (std::find(info.addrs.begin(), info.addrs.end(), addr) == info.addrs.end())
      info.addrs.push_back(addr);
  }
  last_heard_[conn->remote_peer()] = Clock::now();
  prune_peer_store(Clock::now());
  spdlog::debug("conn {}: {} {} {}", conn->id(), conn->info().outbound ? "dialed" : "accepted",
                conn->remote_peer().to_string(), conn->info().remote_addr.to_string());
  conn->start([this](std::shared_ptr<Stream> s) { on_stream(s); },
              [this](Connection& closed) {
                auto [begin, end] = connections_.equal_range(closed.remote_peer());
                std::shared_ptr<Connection> keep;
                for (auto it = begin; it != end; ++it) {
                  if (it->second.get() == &closed) {
                    keep = it->second;
                    connections_.erase(it);
                    break;
                  }
                }
                if (keep)
                  for (auto& o : observers_) o(keep, ConnectionEvent::closed);
                if (connections_.empty()) all_closed_.notify();
              });
  for (auto& o : observers_) o(conn, ConnectionEvent::opened);
}

void Host::on_stream(const std::shared_ptr<Stream>& stream) {
  // The resource manager already refused streams over the negotiation limits (per peer and
  // transient) when the connection accepted them.
  asio::co_spawn(io_, serve_stream(stream),
                 [](std::exception_ptr e) { log_exception(e, "stream handler"); });
}

Task<void> Host::serve_stream(std::shared_ptr<Stream> stream) {
  auto negotiated = co_await (
      accept_protocol(*stream,
                      [this](std::string_view p) { return handlers_.contains(std::string(p)); }) ||
      sleep_for(io_.get_executor(), config_.negotiation_timeout));
  if (negotiated.index() == 1) {
    if (negotiation_failures.allow(Clock::now()))
      spdlog::info("stream from {}: protocol negotiation timed out ({} similar lines suppressed)",
                   stream->remote_peer().to_string(), negotiation_failures.suppressed());
    stream->reset();
    co_return;
  }
  auto& protocol = std::get<0>(negotiated);
  if (!protocol) {
    if (negotiation_failures.allow(Clock::now()))
      spdlog::info("stream from {}: negotiation failed: {} ({} similar lines suppressed)",
                   stream->remote_peer().to_string(), escape_for_log(protocol.error().to_string()),
                   negotiation_failures.suppressed());
    stream->reset();
    co_return;
  }
  auto it = handlers_.find(*protocol);
  if (it == handlers_.end()) {
    stream->reset();
    co_return;
  }
  if (auto r = stream->set_protocol(*protocol); !r) {
    if (stream_refusals.allow(Clock::now()))
      spdlog::warn("resetting stream from {} ({}): {} ({} similar lines suppressed)",
                   stream->remote_peer().to_string(), *protocol, r.error().message,
                   stream_refusals.suppressed());
    stream->reset();
    co_return;
  }
  auto handler = it->second;  // the handler may unregister itself
  co_await handler(stream);
}

Task<Result<std::shared_ptr<Stream>>> Host::new_stream(const std::shared_ptr<Connection>& conn,
                                                       const std::vector<std::string>& protocols) {
  auto stream = co_await conn->open_stream();
  if (!stream) co_return tl::unexpected(stream.error());
  // A remote that never answers must not hold the stream (and its caller) forever.
  auto selected = co_await (select_protocol(**stream, protocols) ||
                            sleep_for(io_.get_executor(), config_.negotiation_timeout));
  if (selected.index() == 1) {
    (*stream)->reset();
    co_return fail(Errc::timeout,
                   "protocol negotiation with " + conn->remote_peer().to_string() + " timed out");
  }
  auto& protocol = std::get<0>(selected);
  if (!protocol) {
    (*stream)->reset();
    co_return tl::unexpected(protocol.error());
  }
  if (auto r = (*stream)->set_protocol(*protocol); !r) {
    (*stream)->reset();
    co_return tl::unexpected(r.error());
  }
  co_return *stream;
}

Task<Result<std::shared_ptr<Stream>>> Host::new_stream(const crypto::PeerId& peer,
                                                       const std::vector<std::string>& protocols) {
  auto conn = co_await connect(peer);
  if (!conn) co_return tl::unexpected(conn.error());
  co_return co_await new_stream(*conn, protocols);
}

Task<void> Host::shutdown() {
  stopping_ = true;
  boost::system::error_code ec;
  for (auto& a : acceptors_) a->close(ec);
  abort_upgrades_.notify();
  auto conns = connections();
  for (auto& c : conns) c->close("shutdown");
  auto deadline = Clock::now() + std::chrono::seconds(5);
  auto busy = [this] {
    return !connections_.empty() || in_flight_->dials > 0 || in_flight_->inbound > 0;
  };
  while (busy()) {
    if (!co_await all_closed_.wait_until(deadline)) break;
  }
  if (busy())
    spdlog::warn("shutdown: {} connections, {} dials and {} handshakes did not end in time",
                 connections_.size(), in_flight_->dials, in_flight_->inbound);
}

// ---------------------------------------------------------------- peer store

bool dialable_from_peer(const Multiaddr& addr, bool allow_loopback) {
  auto target = addr.tcp_target();
  if (!target) return false;
  if (target->is_dns) return !target->host.empty();
  if (target->port == 0) return false;
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(target->host, ec);
  if (ec) return false;
  if (ip.is_v6() && ip.to_v6().is_v4_mapped())
    ip = asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
  if (ip.is_unspecified() || ip.is_multicast()) return false;
  if (ip.is_loopback()) return allow_loopback;
  if (ip.is_v4()) {
    auto b = ip.to_v4().to_bytes();
    if (b[0] == 169 && b[1] == 254) return false;                                // link-local
    if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255) return false;  // broadcast
    return true;
  }
  return !ip.to_v6().is_link_local();
}

bool Host::listens_on_loopback() const {
  for (const auto& a : listen_addrs()) {
    auto target = a.tcp_target();
    if (!target || target->is_dns) continue;
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(target->host, ec);
    // An unspecified listener accepts on loopback too.
    if (!ec && (ip.is_loopback() || ip.is_unspecified())) return true;
  }
  return false;
}

size_t Host::add_addrs(const crypto::PeerId& peer, const std::vector<Multiaddr>& addrs) {
  if (peer == peer_id_) return 0;
  auto now = Clock::now();
  bool loopback = listens_on_loopback();
  auto& info = peer_store_[peer];
  auto& expiry = addr_expiry_[peer];
  size_t added = 0;
  for (const auto& a : addrs) {
    auto addr = a.without_p2p();
    if (!dialable_from_peer(addr, loopback)) continue;
    auto key = addr.to_string();
    if (std::find(info.addrs.begin(), info.addrs.end(), addr) == info.addrs.end()) {
      if (info.addrs.size() >= config_.max_addrs_per_peer) continue;
      info.addrs.push_back(addr);
      ++added;
    }
    expiry[key] = now + config_.address_ttl;
  }
  last_heard_[peer] = now;
  if (info.addrs.empty() && !connection_to(peer)) {
    peer_store_.erase(peer);
    addr_expiry_.erase(peer);
  }
  if (peer_store_.size() > config_.max_peer_store_peers || now >= next_prune_)
    prune_peer_store(now);
  return added;
}

Result<crypto::PeerRecord> Host::add_signed_peer_record(const crypto::PeerId& peer,
                                                        BytesView envelope) {
  auto record = crypto::open_signed_peer_record(envelope);
  if (!record) return record;
  if (record->peer != peer)
    return fail(Errc::peer_id_mismatch,
                "peer record: of " + record->peer.to_string() + ", not " + peer.to_string());
  if (peer == peer_id_) return record;
  if (auto it = peer_store_.find(peer); it != peer_store_.end() &&
                                        !it->second.signed_peer_record.empty() &&
                                        it->second.peer_record_seq >= record->seq)
    return record;  // not newer: the one we hold stays (as go's certified address book)
  add_addrs(peer, record->addrs);
  // add_addrs forgets a peer with no dialable address and no connection: nothing to keep then.
  if (auto it = peer_store_.find(peer); it != peer_store_.end()) {
    it->second.signed_peer_record.assign(envelope.begin(), envelope.end());
    it->second.peer_record_seq = record->seq;
  }
  return record;
}

void Host::prune_peer_store(Clock::time_point now) {
  next_prune_ = now + std::chrono::minutes(1);
  std::vector<std::pair<Clock::time_point, crypto::PeerId>> idle;
  for (auto it = peer_store_.begin(); it != peer_store_.end();) {
    const auto& peer = it->first;
    auto& info = it->second;
    bool connected = connections_.contains(peer);
    auto& expiry = addr_expiry_[peer];
    std::erase_if(info.addrs, [&](const Multiaddr& a) {
      auto key = a.to_string();
      auto e = expiry.find(key);
      if (e == expiry.end()) {
        // Added by a component that writes the map directly: its TTL starts now.
        expiry[key] = now + config_.address_ttl;
        return false;
      }
      if (connected) e->second = now + config_.address_ttl;  // connected peers' addresses stay
      if (e->second > now) return false;
      expiry.erase(e);
      return true;
    });
    if (info.addrs.size() > config_.max_addrs_per_peer)
      info.addrs.resize(config_.max_addrs_per_peer);
    if (!connected && info.addrs.empty()) {
      addr_expiry_.erase(peer);
      last_heard_.erase(peer);
      it = peer_store_.erase(it);
      continue;
    }
    if (!connected) {
      auto heard = last_heard_.find(peer);
      idle.emplace_back(heard == last_heard_.end() ? Clock::time_point{} : heard->second, peer);
    }
    ++it;
  }
  if (peer_store_.size() <= config_.max_peer_store_peers) return;
  // Over the bound: forget the peers heard of longest ago first; connected ones stay.
  std::sort(idle.begin(), idle.end());
  size_t excess = peer_store_.size() - config_.max_peer_store_peers;
  for (size_t i = 0; i < idle.size() && i < excess; ++i) {
    peer_store_.erase(idle[i].second);
    addr_expiry_.erase(idle[i].second);
    last_heard_.erase(idle[i].second);
  }
}

// ---------------------------------------------------------------- stream helpers

Task<Result<std::string>> select_protocol(Stream& stream,
                                          const std::vector<std::string>& protocols) {
  multistream::Dialer dialer(protocols);
  auto w = co_await stream.write(dialer.start());
  if (!w) co_return tl::unexpected(w.error());
  uint8_t buffer[1024];
  while (!dialer.done()) {
    auto n = co_await stream.read_some(buffer);
    if (!n) co_return tl::unexpected(n.error());
    if (*n == 0) co_return fail(Errc::closed, "stream closed during protocol negotiation");
    auto fed = dialer.feed(BytesView(buffer, *n));
    if (!fed) co_return tl::unexpected(fed.error());
    Bytes out = dialer.take_output();
    if (!out.empty()) {
      auto w2 = co_await stream.write(out);
      if (!w2) co_return tl::unexpected(w2.error());
    }
  }
  stream.unread(dialer.take_remaining());
  co_return dialer.selected();
}

Task<Result<std::string>> accept_protocol(Stream& stream,
                                          const std::function<bool(std::string_view)>& supports) {
  multistream::Listener listener(supports);
  uint8_t buffer[1024];
  while (!listener.done()) {
    auto n = co_await stream.read_some(buffer);
    if (!n) co_return tl::unexpected(n.error());
    if (*n == 0) co_return fail(Errc::closed, "stream closed during protocol negotiation");
    auto fed = listener.feed(BytesView(buffer, *n));
    Bytes out = listener.take_output();
    if (!out.empty()) {
      auto w = co_await stream.write(out);
      if (!w) co_return tl::unexpected(w.error());
    }
    if (!fed) co_return tl::unexpected(fed.error());
  }
  stream.unread(listener.take_remaining());
  co_return listener.selected();
}

Task<Result<Bytes>> read_length_prefixed(Stream& stream, size_t max_size) {
  Bytes prefix;
  uint64_t length = 0;
  for (;;) {
    uint8_t b;
    auto r = co_await stream.read_exact({&b, 1});
    if (!r) co_return tl::unexpected(r.error());
    prefix.push_back(b);
    auto v = varint_decode(prefix);
    if (!v) co_return tl::unexpected(v.error());
    if (*v) {
      length = (*v)->value;
      break;
    }
  }
  if (length > max_size)
    co_return fail(Errc::limit_exceeded, "message of " + std::to_string(length) +
                                             " bytes exceeds the limit of " +
                                             std::to_string(max_size));
  // The buffer grows with the bytes that arrive, not with the length the peer announced, and
  // is accounted against the stream while it is being filled.
  constexpr size_t kChunk = 64 * 1024;
  Bytes message;
  size_t reserved = 0;
  struct Release {
    Stream& stream;
    size_t& n;
    ~Release() { stream.release_memory(n); }
  } release{stream, reserved};
  while (message.size() < length) {
    size_t n = std::min<size_t>(kChunk, length - message.size());
    if (auto r = stream.reserve_memory(n); !r) {
      stream.reset();
      co_return tl::unexpected(r.error());
    }
    reserved += n;
    size_t at = message.size();
    message.resize(at + n);
    auto r = co_await stream.read_exact(std::span<uint8_t>(message.data() + at, n));
    if (!r) co_return tl::unexpected(r.error());
  }
  co_return message;
}

Task<Result<void>> write_length_prefixed(Stream& stream, BytesView message) {
  Bytes framed = varint_bytes(message.size());
  append(framed, message);
  co_return co_await stream.write(framed);
}

}  // namespace p2pmq::host
