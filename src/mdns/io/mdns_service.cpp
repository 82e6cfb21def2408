#include "mdns/io/mdns_service.hpp"

#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>
#include <random>

namespace p2pmq::mdns {

namespace asio = host::asio;
using udp = asio::ip::udp;
using host::Task;

namespace {

// Only TCP addresses are any use to this host; /p2p/ is implied by the peer id.
std::vector<Multiaddr> dialable(const std::vector<Multiaddr>& addrs) {
  std::vector<Multiaddr> out;
  for (const auto& a : addrs)
    if (a.tcp_target()) out.push_back(a.without_p2p());
  return out;
}

uint64_t random_seed() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd();
}

}  // namespace

// Everything the coroutines touch: they hold it by shared_ptr, so a service destroyed (or
// restarted) while they are suspended leaves them a consistent, stopped state to find.
struct MdnsService::State {
  State(host::Host& h, MdnsConfig c, std::shared_ptr<std::vector<PeerHandler>> hs)
      : host(h),
        config(std::move(c)),
        handlers(std::move(hs)),
        socket(h.executor()),
        wake(h.executor()),
        core(h.peer_id(), {}, config.core, random_seed()) {}

  host::Host& host;
  MdnsConfig config;
  std::shared_ptr<std::vector<PeerHandler>> handlers;
  udp::socket socket;
  host::Signal wake;
  Mdns core;
  udp::endpoint group;
  std::vector<std::optional<asio::ip::address_v4>> interfaces;  // nullopt: the default one
  Bytes buffer;
  bool running = false;
  std::map<PeerId, host::Clock::time_point> last_dial;
  size_t dials_in_flight = 0;
  ServiceStats stats;
};

namespace {

using State = MdnsService::State;

void send(State& s, const Bytes& datagram) {
  for (const auto& iface : s.interfaces) {
    boost::system::error_code ec;
    if (iface) s.socket.set_option(asio::ip::multicast::outbound_interface(*iface), ec);
    if (!ec) s.socket.send_to(asio::buffer(datagram), s.group, 0, ec);
    if (ec) {
      ++s.stats.send_errors;
      spdlog::debug("mdns: send on {} failed: {}", iface ? iface->to_string() : "default",
                    ec.message());
    } else {
      ++s.stats.sent;
    }
  }
}

void refresh_addrs(State& s) {
  s.core.set_addrs(s.host.advertised_addrs());
}

Task<void> dial(std::shared_ptr<State> s, PeerId peer, std::vector<Multiaddr> addrs) {
  ++s->stats.dials;
  bool connected = false;
  std::string last_error;
  for (const auto& a : addrs) {
    if (!s->running || s->host.is_blocked(peer)) break;
    auto target = a.with_p2p(peer.bytes());
    auto conn = co_await s->host.connect(target);
    if (conn) {
      connected = true;
      break;
    }
    last_error = conn.error().to_string();
  }
  --s->dials_in_flight;
  if (connected) {
    spdlog::debug("mdns: connected to {}", peer.to_string());
  } else if (s->running) {
    ++s->stats.dial_failures;
    spdlog::debug("mdns: could not dial {}: {}", peer.to_string(), last_error);
  }
}

void maybe_dial(const std::shared_ptr<State>& s, const PeerId& peer, std::vector<Multiaddr> addrs) {
  if (s->host.connection_to(peer) || s->dials_in_flight >= s->config.max_concurrent_dials) return;
  const auto now = host::Clock::now();
  if (auto it = s->last_dial.find(peer); it != s->last_dial.end()) {
    if (now - it->second < s->config.redial_interval) return;
  } else if (s->last_dial.size() >= s->config.max_dial_memory) {
    std::erase_if(s->last_dial,
                  [&](const auto& kv) { return now - kv.second >= s->config.redial_interval; });
    if (s->last_dial.size() >= s->config.max_dial_memory) return;
  }
  s->last_dial[peer] = now;
  ++s->dials_in_flight;
  asio::co_spawn(
      s->host.executor(),
      [s, peer, addrs = std::move(addrs)]() -> Task<void> { co_await dial(s, peer, addrs); },
      asio::detached);
}

void on_discovered(const std::shared_ptr<State>& s, DiscoveredPeer& d) {
  if (d.peer == s->host.peer_id() || s->host.is_blocked(d.peer)) return;
  auto tcp = dialable(d.addrs);
  if (s->config.add_to_peer_store && !tcp.empty()) {
    auto& known = s->host.peer_store()[d.peer].addrs;
    for (const auto& a : tcp)
      if (known.size() < s->config.core.max_addrs_per_peer &&
          std::find(known.begin(), known.end(), a) == known.end())
        known.push_back(a);
  }
  if (d.is_new) {
    ++s->stats.discovered;
    // Debug: anyone on the link can make up peers (the callbacks may log what they trust).
    spdlog::debug("mdns: found peer {} ({} addresses)", d.peer.to_string(), d.addrs.size());
    // A copy: a handler may register another.
    auto handlers = *s->handlers;
    for (auto& h : handlers) {
      h(d.peer, d.addrs);
      if (!s->running) return;
    }
  }
  if (s->config.dial && !tcp.empty()) maybe_dial(s, d.peer, std::move(tcp));
}

Task<void> receive_loop(std::shared_ptr<State> s) {
  while (s->running) {
    udp::endpoint from;
    boost::system::error_code ec;
    size_t n = co_await s->socket.async_receive_from(asio::buffer(s->buffer), from,
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (!s->running || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      ++s->stats.receive_errors;
      spdlog::debug("mdns: receive failed: {}", ec.message());
      asio::steady_timer pause(s->host.executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    ++s->stats.received;
    if (n >= s->buffer.size()) {  // it filled the buffer: larger than we accept
      ++s->stats.too_large;
      continue;
    }
    auto found = s->core.on_datagram(BytesView(s->buffer.data(), n), host::Clock::now());
    for (auto& d : found) {
      on_discovered(s, d);
      if (!s->running) co_return;
    }
    s->wake.notify();  // an answer may be due
  }
}

Task<void> timer_loop(std::shared_ptr<State> s) {
  while (s->running) {
    auto now = host::Clock::now();
    if (s->core.next_deadline() <= now) {
      refresh_addrs(*s);  // before sending: listeners and interfaces change
      for (const auto& d : s->core.poll_send(now)) send(*s, d);
    }
    co_await s->wake.wait_until(s->core.next_deadline());
  }
}

}  // namespace

MdnsService::MdnsService(host::Host& host, MdnsConfig config)
    : host_(host), config_(std::move(config)) {}

MdnsService::~MdnsService() {
  stop();
}

bool MdnsService::running() const {
  return state_ && state_->running;
}

Result<void> MdnsService::start() {
  if (running()) return {};
  if (!config_.enabled) {
    spdlog::debug("mdns: disabled");
    return {};
  }
  auto s = std::make_shared<State>(host_, config_, handlers_);
  boost::system::error_code ec;
  auto group = asio::ip::make_address_v4(std::string(kMdnsGroupV4), ec);
  s->group = udp::endpoint(group, kMdnsPort);

  std::vector<asio::ip::address_v4> candidates;
  if (!config_.interface_address.empty()) {
    auto a = asio::ip::make_address_v4(config_.interface_address, ec);
    if (ec)
      return fail(Errc::invalid_input,
                  "mdns: interface address '" + config_.interface_address + "' is not IPv4");
    candidates.push_back(a);
  } else {
    for (const auto& l : local_addresses())
      if (l.multicast && l.address.is_v4()) candidates.push_back(l.address.to_v4());
  }

  auto io_error = [&](const char* what) {
    boost::system::error_code ignored;
    s->socket.close(ignored);
    return fail(Errc::io, std::string("mdns: ") + what + ": " + ec.message());
  };
  s->socket.open(udp::v4(), ec);
  if (ec) return io_error("cannot open a UDP socket");
  s->socket.set_option(udp::socket::reuse_address(true), ec);
  if (ec) return io_error("cannot set SO_REUSEADDR");
  s->socket.bind(udp::endpoint(asio::ip::address_v4::any(), kMdnsPort), ec);
  if (ec) return io_error("cannot bind port 5353");
  for (const auto& iface : candidates) {
    s->socket.set_option(asio::ip::multicast::join_group(group, iface), ec);
    if (ec) {
      spdlog::debug("mdns: cannot join {} on {}: {}", group.to_string(), iface.to_string(),
                    ec.message());
      continue;
    }
    s->interfaces.emplace_back(iface);
  }
  if (s->interfaces.empty()) {
    if (!config_.interface_address.empty()) return io_error("cannot join the group there");
    s->socket.set_option(asio::ip::multicast::join_group(group), ec);
    if (ec) return io_error("cannot join the mDNS group");
    s->interfaces.emplace_back(std::nullopt);
  }
  s->socket.set_option(asio::ip::multicast::enable_loopback(true), ec);
  if (!ec) s->socket.set_option(asio::ip::multicast::hops(255), ec);  // RFC 6762 §11
  if (!ec) s->socket.non_blocking(true, ec);
  if (ec) return io_error("cannot set multicast options");

  s->buffer.resize(config_.core.limits.max_message_size + 1);
  refresh_addrs(*s);
  s->running = true;
  state_ = s;
  std::string on;
  for (const auto& i : s->interfaces)
    on += (on.empty() ? "" : ", ") + (i ? i->to_string() : "default");
  spdlog::info("mdns: discovery on {} as {} ({} addresses announced)", on, s->core.peer_name(),
               s->core.addrs().size());
  asio::co_spawn(
      host_.executor(), [s]() -> Task<void> { co_await receive_loop(s); }, asio::detached);
  asio::co_spawn(
      host_.executor(), [s]() -> Task<void> { co_await timer_loop(s); }, asio::detached);
  return {};
}

void MdnsService::stop() {
  if (!running()) return;
  auto& s = *state_;
  for (const auto& d : s.core.goodbye()) send(s, d);
  s.running = false;
  boost::system::error_code ec;
  s.socket.close(ec);
  s.wake.notify();
}

const ServiceStats& MdnsService::stats() const {
  static const ServiceStats none;
  return state_ ? state_->stats : none;
}

const Stats& MdnsService::core_stats() const {
  static const Stats none;
  return state_ ? state_->core.stats() : none;
}

const Mdns* MdnsService::core() const {
  return state_ ? &state_->core : nullptr;
}

}  // namespace p2pmq::mdns
