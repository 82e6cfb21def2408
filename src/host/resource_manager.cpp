#include "host/resource_manager.hpp"

#include <boost/asio/ip/address.hpp>
#include <cstdio>

namespace p2pmq::host {

// ---------------------------------------------------------------- Scope

Scope::Scope(std::string name, ScopeLimits limits, ResourceManager*)
    : name_(std::move(name)), limits_(limits) {}

ScopeUsage Scope::usage() const {
  return {name_,         use_.memory,    use_.streams_in, use_.streams_out,
          use_.conns_in, use_.conns_out, use_.fds,        limits_};
}

bool Scope::idle() const {
  return use_.memory == 0 && use_.streams_in == 0 && use_.streams_out == 0 && use_.conns_in == 0 &&
         use_.conns_out == 0 && use_.fds == 0;
}

std::optional<std::string> Scope::refuses(const Use& more) const {
  auto over = [&](const char* what, uint64_t used, uint64_t add,
                  uint64_t limit) -> std::optional<std::string> {
    if (add == 0 || used + add <= limit) return std::nullopt;
    return name_ + ": " + what + " limit " + std::to_string(limit) + " reached (" +
           std::to_string(used) + " in use)";
  };
  const Use& u = use_;
  const ScopeLimits& l = limits_;
  if (auto r = over("memory", u.memory, more.memory, l.memory)) return r;
  if (auto r = over("inbound stream", u.streams_in, more.streams_in, l.streams_inbound)) return r;
  if (auto r = over("outbound stream", u.streams_out, more.streams_out, l.streams_outbound))
    return r;
  if (auto r = over("stream", u.streams_in + u.streams_out, more.streams_in + more.streams_out,
                    l.streams))
    return r;
  if (auto r = over("inbound connection", u.conns_in, more.conns_in, l.connections_inbound))
    return r;
  if (auto r = over("outbound connection", u.conns_out, more.conns_out, l.connections_outbound))
    return r;
  if (auto r = over("connection", u.conns_in + u.conns_out, more.conns_in + more.conns_out,
                    l.connections))
    return r;
  if (auto r = over("file descriptor", u.fds, more.fds, l.fds)) return r;
  return std::nullopt;
}

void Scope::add(const Use& more) {
  use_.memory += more.memory;
  use_.streams_in += more.streams_in;
  use_.streams_out += more.streams_out;
  use_.conns_in += more.conns_in;
  use_.conns_out += more.conns_out;
  use_.fds += more.fds;
}

void Scope::remove(const Use& less) {
  // Saturating: a release never drives a counter below zero, whatever the caller's bookkeeping.
  auto sub = [](auto& v, auto n) { v = v > n ? v - n : 0; };
  sub(use_.memory, less.memory);
  sub(use_.streams_in, less.streams_in);
  sub(use_.streams_out, less.streams_out);
  sub(use_.conns_in, less.conns_in);
  sub(use_.conns_out, less.conns_out);
  sub(use_.fds, less.fds);
}

// ---------------------------------------------------------------- ConnectionScope

ConnectionScope::ConnectionScope(ResourceManager* manager, Direction direction, std::string ip)
    : manager_(manager),
      direction_(direction),
      ip_(std::move(ip)),
      self_(std::make_shared<Scope>("connection", manager->limits_.connection, manager)) {}

ConnectionScope::~ConnectionScope() {
  Scope::Use held = self_->use_;  // a copy: releasing zeroes self_ first
  manager_->release(chain(), held);
  manager_->forget_connection(*this);
}

ScopeChain ConnectionScope::chain() const {
  if (handshaking_) return {self_, manager_->transient_, manager_->system_};
  return {self_, peer_scope_, manager_->system_};
}

Scope::Use ConnectionScope::own() const {
  Scope::Use u;
  (direction_ == Direction::inbound ? u.conns_in : u.conns_out) = 1;
  u.fds = 1;
  return u;
}

Result<void> ConnectionScope::set_peer(const std::string& peer) {
  if (!handshaking_) return fail(Errc::invalid_input, "connection scope already has a peer");
  auto scope = manager_->peer_scope(peer);
  // Everything the connection holds moves from transient to the peer.
  Scope::Use held = self_->use_;
  if (auto r = manager_->reserve({scope}, held, &manager_->counters_.connections_refused); !r)
    return r;
  manager_->transient_->remove(held);
  handshaking_ = false;
  peer_ = peer;
  peer_scope_ = std::move(scope);
  if (auto it = manager_->handshakes_per_ip_.find(ip_); it != manager_->handshakes_per_ip_.end())
    if (--it->second == 0) manager_->handshakes_per_ip_.erase(it);
  return {};
}

Result<void> ConnectionScope::reserve_memory(uint64_t n) {
  Scope::Use u;
  u.memory = n;
  return manager_->reserve(chain(), u, &manager_->counters_.memory_refused);
}

void ConnectionScope::release_memory(uint64_t n) {
  Scope::Use u;
  u.memory = std::min(n, self_->use_.memory);
  manager_->release(chain(), u);
}

// ---------------------------------------------------------------- StreamScope

StreamScope::StreamScope(ResourceManager* manager, Direction direction,
                         std::shared_ptr<Scope> connection, std::shared_ptr<Scope> peer,
                         std::string peer_name)
    : manager_(manager),
      direction_(direction),
      self_(std::make_shared<Scope>("stream", manager->limits_.stream, manager)),
      connection_(std::move(connection)),
      peer_(std::move(peer)),
      peer_name_(std::move(peer_name)) {}

StreamScope::~StreamScope() {
  Scope::Use held = self_->use_;  // a copy: releasing zeroes self_ first
  manager_->release(chain(), held);
  if (negotiating_ && direction_ == Direction::inbound) {
    auto it = manager_->negotiating_per_peer_.find(peer_name_);
    if (it != manager_->negotiating_per_peer_.end() && --it->second == 0)
      manager_->negotiating_per_peer_.erase(it);
  }
}

ScopeChain StreamScope::chain() const {
  ScopeChain c{self_, connection_, peer_};
  if (negotiating_) {
    c.push_back(manager_->transient_);
  } else {
    c.push_back(protocol_);
    if (service_) c.push_back(service_);
  }
  c.push_back(manager_->system_);
  return c;
}

Scope::Use StreamScope::own() const {
  Scope::Use u;
  (direction_ == Direction::inbound ? u.streams_in : u.streams_out) = 1;
  return u;
}

Result<void> StreamScope::set_protocol(const std::string& protocol) {
  if (!negotiating_) return fail(Errc::invalid_input, "stream scope already has a protocol");
  auto proto = manager_->protocol_scope(protocol);
  std::shared_ptr<Scope> service;
  if (auto it = manager_->service_of_.find(protocol); it != manager_->service_of_.end())
    service = manager_->service_scope(it->second);
  ScopeChain target{proto};
  if (service) target.push_back(service);
  Scope::Use held = self_->use_;
  if (auto r = manager_->reserve(target, held, &manager_->counters_.streams_refused); !r) return r;
  manager_->transient_->remove(held);
  negotiating_ = false;
  protocol_ = std::move(proto);
  service_ = std::move(service);
  if (direction_ == Direction::inbound) {
    auto it = manager_->negotiating_per_peer_.find(peer_name_);
    if (it != manager_->negotiating_per_peer_.end() && --it->second == 0)
      manager_->negotiating_per_peer_.erase(it);
  }
  return {};
}

Result<void> StreamScope::reserve_memory(uint64_t n) {
  Scope::Use u;
  u.memory = n;
  return manager_->reserve(chain(), u, &manager_->counters_.memory_refused);
}

void StreamScope::release_memory(uint64_t n) {
  Scope::Use u;
  u.memory = std::min(n, self_->use_.memory);
  manager_->release(chain(), u);
}

// ---------------------------------------------------------------- ResourceManager

ResourceManager::ResourceManager(ResourceLimits limits)
    : limits_(limits),
      system_(std::make_shared<Scope>("system", limits.system, this)),
      transient_(std::make_shared<Scope>("transient", limits.transient, this)) {}

Result<void> ResourceManager::reserve(const ScopeChain& chain, const Scope::Use& more,
                                      uint64_t* counter) {
  for (const auto& scope : chain) {
    if (auto why = scope->refuses(more)) {
      if (counter) ++*counter;
      return fail(Errc::limit_exceeded, *why);
    }
  }
  for (const auto& scope : chain) scope->add(more);
  return {};
}

void ResourceManager::release(const ScopeChain& chain, const Scope::Use& less) {
  for (const auto& scope : chain) scope->remove(less);
}

std::shared_ptr<Scope> ResourceManager::peer_scope(const std::string& peer) {
  auto& weak = peers_[peer];
  if (auto scope = weak.lock()) return scope;
  auto scope = std::make_shared<Scope>("peer:" + peer, limits_.peer, this);
  weak = scope;
  return scope;
}

std::shared_ptr<Scope> ResourceManager::protocol_scope(const std::string& protocol) {
  auto& scope = protocols_[protocol];
  if (!scope) scope = std::make_shared<Scope>("protocol:" + protocol, limits_.protocol, this);
  return scope;
}

std::shared_ptr<Scope> ResourceManager::service_scope(const std::string& service) {
  auto& scope = services_[service];
  if (!scope) scope = std::make_shared<Scope>("service:" + service, limits_.service, this);
  return scope;
}

void ResourceManager::set_service(const std::string& protocol, const std::string& service) {
  service_of_[protocol] = service;
}

bool ResourceManager::is_loopback(const std::string& ip) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(ip, ec);
  if (ec) return false;
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6()).is_loopback();
  return a.is_loopback();
}

std::string ResourceManager::subnet_of(const std::string& ip) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(ip, ec);
  if (ec || is_loopback(ip)) return {};
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    char out[32];
    std::snprintf(out, sizeof out, "%u.%u.%u.0/24", b[0], b[1], b[2]);
    return out;
  }
  auto b = a.to_v6().to_bytes();
  for (size_t i = 8; i < 16; ++i) b[i] = 0;
  return boost::asio::ip::address_v6(b).to_string() + "/64";
}

Result<std::unique_ptr<ConnectionScope>> ResourceManager::open_connection(Direction direction,
                                                                          const std::string& ip) {
  bool loopback = is_loopback(ip);
  size_t ip_limit = loopback ? limits_.connections_per_loopback_ip : limits_.connections_per_ip;
  if (per_ip_[ip] + 1 > ip_limit) {
    if (per_ip_[ip] == 0) per_ip_.erase(ip);
    ++counters_.connections_refused;
    return fail(Errc::limit_exceeded,
                "ip " + ip + ": connection limit " + std::to_string(ip_limit) + " reached");
  }
  std::string subnet = subnet_of(ip);
  if (!subnet.empty()) {
    size_t limit = subnet.find(':') != std::string::npos ? limits_.connections_per_subnet6
                                                         : limits_.connections_per_subnet4;
    if (per_subnet_[subnet] + 1 > limit) {
      if (per_subnet_[subnet] == 0) per_subnet_.erase(subnet);
      if (per_ip_[ip] == 0) per_ip_.erase(ip);
      ++counters_.connections_refused;
      return fail(Errc::limit_exceeded,
                  "subnet " + subnet + ": connection limit " + std::to_string(limit) + " reached");
    }
  }
  size_t hs_limit = loopback ? limits_.handshakes_per_loopback_ip : limits_.handshakes_per_ip;
  if (handshakes_per_ip_[ip] + 1 > hs_limit) {
    if (handshakes_per_ip_[ip] == 0) handshakes_per_ip_.erase(ip);
    if (per_ip_[ip] == 0) per_ip_.erase(ip);
    if (!subnet.empty() && per_subnet_[subnet] == 0) per_subnet_.erase(subnet);
    ++counters_.handshakes_refused;
    return fail(Errc::limit_exceeded,
                "ip " + ip + ": pending handshake limit " + std::to_string(hs_limit) + " reached");
  }
  std::unique_ptr<ConnectionScope> c(new ConnectionScope(this, direction, ip));
  auto own = c->own();
  if (auto r = reserve({c->self_, transient_, system_}, own, &counters_.connections_refused); !r) {
    if (handshakes_per_ip_[ip] == 0) handshakes_per_ip_.erase(ip);
    if (per_ip_[ip] == 0) per_ip_.erase(ip);
    if (!subnet.empty() && per_subnet_[subnet] == 0) per_subnet_.erase(subnet);
    c->self_->use_ = {};  // nothing was taken: the destructor must give nothing back
    c->ip_.clear();       // ... and must not touch the per-IP counts
    return tl::unexpected(r.error());
  }
  ++per_ip_[ip];
  if (!subnet.empty()) ++per_subnet_[subnet];
  ++handshakes_per_ip_[ip];
  return c;
}

void ResourceManager::forget_connection(const ConnectionScope& c) {
  if (c.ip_.empty()) return;
  auto drop = [](std::map<std::string, size_t>& m, const std::string& key) {
    auto it = m.find(key);
    if (it != m.end() && --it->second == 0) m.erase(it);
  };
  drop(per_ip_, c.ip_);
  if (auto subnet = subnet_of(c.ip_); !subnet.empty()) drop(per_subnet_, subnet);
  if (c.handshaking_) drop(handshakes_per_ip_, c.ip_);
  if (!c.peer_.empty()) {
    auto it = peers_.find(c.peer_);
    // The last holder is this connection: the peer's scope goes with it.
    if (it != peers_.end() && c.peer_scope_.use_count() <= 1) peers_.erase(it);
  }
}

Result<std::unique_ptr<StreamScope>> ResourceManager::open_stream(const ConnectionScope& connection,
                                                                  Direction direction) {
  if (connection.handshaking_)
    return fail(Errc::invalid_input, "stream on a connection still handshaking");
  const std::string& peer = connection.peer_;
  if (direction == Direction::inbound &&
      negotiating_per_peer_[peer] + 1 > limits_.negotiations_per_peer) {
    ++counters_.negotiations_refused;
    return fail(Errc::limit_exceeded, "peer:" + peer + ": negotiating stream limit " +
                                          std::to_string(limits_.negotiations_per_peer) +
                                          " reached");
  }
  std::unique_ptr<StreamScope> s(
      new StreamScope(this, direction, connection.self_, connection.peer_scope_, peer));
  auto own = s->own();
  if (auto r = reserve(s->chain(), own, &counters_.streams_refused); !r) {
    s->self_->use_ = {};
    s->negotiating_ = false;  // nothing to give back on destruction
    s->protocol_ = transient_;
    if (negotiating_per_peer_[peer] == 0) negotiating_per_peer_.erase(peer);
    return tl::unexpected(r.error());
  }
  if (direction == Direction::inbound) ++negotiating_per_peer_[peer];
  return s;
}

std::vector<ScopeUsage> ResourceManager::usage() const {
  std::vector<ScopeUsage> out{system_->usage(), transient_->usage()};
  for (const auto& [name, scope] : services_) out.push_back(scope->usage());
  for (const auto& [name, scope] : protocols_)
    if (!scope->idle()) out.push_back(scope->usage());
  for (const auto& [name, weak] : peers_)
    if (auto scope = weak.lock()) out.push_back(scope->usage());
  return out;
}

std::optional<ScopeUsage> ResourceManager::peer_usage(const std::string& peer) const {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return std::nullopt;
  auto scope = it->second.lock();
  if (!scope) return std::nullopt;
  return scope->usage();
}

}  // namespace p2pmq::host
