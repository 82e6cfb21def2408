#pragma once
// The resource manager: accounting of what peers make us hold, in the spirit of go-libp2p's
// rcmgr (p2p/host/resource-manager). Sans-IO: no sockets, no clocks; the host asks before it
// accepts, dials, opens streams or grows a buffer, and the answer is yes or a refusal that names
// the scope and the resource.
//
// Scopes form a DAG; a reservation is checked against the scope and every ancestor, and is
// either taken from all of them or from none:
//
//   system ─┬─ transient            (connections still handshaking, streams still negotiating)
//           ├─ service ─ protocol   (streams once their protocol is known)
//           └─ peer ─ connection ─ stream
//
// A connection starts under transient (a pending handshake) and moves under its peer once the
// handshake names it. A stream starts under transient (negotiating) and moves under its
// protocol (and the protocol's service) once negotiated. Per-IP and per-subnet (/24 IPv4, /64
// IPv6) connection counts are kept beside the tree.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace p2pmq::host {

enum class Direction { inbound, outbound };

// One scope's limits. Counts of streams and connections are open ones, either direction unless
// the name says.
struct ScopeLimits {
  uint64_t memory = 0;  // bytes reserved by buffers and queues
  size_t streams_inbound = 0;
  size_t streams_outbound = 0;
  size_t streams = 0;
  size_t connections_inbound = 0;
  size_t connections_outbound = 0;
  size_t connections = 0;
  size_t fds = 0;  // sockets
};

inline constexpr uint64_t kMiB = 1024 * 1024;

// The defaults are sized for an agent that may use 1 GiB, of which one peer holds at most
// 64 MiB (so at least 16 peers must collude to fill the system scope).
struct ResourceLimits {
  ScopeLimits system{1024 * kMiB, 4096, 4096, 8192, 256, 256, 512, 600};
  // What is not yet attributed: pending handshakes (connections) and negotiating streams.
  ScopeLimits transient{64 * kMiB, 128, 256, 384, 64, 64, 128, 128};
  // Each service (pubsub, dht, sync, ...) and each protocol, once negotiated.
  ScopeLimits service{512 * kMiB, 4096, 4096, 8192, 0, 0, 0, 0};
  ScopeLimits protocol{512 * kMiB, 4096, 4096, 8192, 0, 0, 0, 0};
  ScopeLimits peer{64 * kMiB, 256, 256, 512, 2, 2, 2, 2};
  ScopeLimits connection{32 * kMiB, 256, 256, 512, 1, 1, 1, 1};  // counts itself
  ScopeLimits stream{16 * kMiB, 1, 1, 1, 0, 0, 0, 0};            // counts itself
  // Connections (pending and established) per remote address. Loopback addresses are one host
  // and are only held to the loopback limit (a local devnet puts every peer on 127.0.0.1).
  size_t connections_per_ip = 8;
  size_t connections_per_subnet4 = 32;  // per /24
  size_t connections_per_subnet6 = 32;  // per /64
  size_t connections_per_loopback_ip = 1024;
  // Pending handshakes per remote address (slowloris: the transient slots are shared).
  size_t handshakes_per_ip = 4;
  size_t handshakes_per_loopback_ip = 64;
  // Inbound streams of one peer still choosing a protocol.
  size_t negotiations_per_peer = 64;  // js-libp2p opens 64 at once in its echo test
};

// One scope's use next to its limits (`p2pmq status`, tests).
struct ScopeUsage {
  std::string
      name;  // "system", "transient", "service:pubsub", "protocol:/meshsub/1.1.0", "peer:.."
  uint64_t memory = 0;
  size_t streams_inbound = 0;
  size_t streams_outbound = 0;
  size_t connections_inbound = 0;
  size_t connections_outbound = 0;
  size_t fds = 0;
  ScopeLimits limits;
};

// Refusals by resource; "who pays" shows in the log line and the Error message.
struct ResourceCounters {
  uint64_t memory_refused = 0;
  uint64_t streams_refused = 0;
  uint64_t connections_refused = 0;
  uint64_t handshakes_refused = 0;  // per-IP pending handshake limit
  uint64_t negotiations_refused = 0;
};

class ResourceManager;

// A node of the scope tree. Owned by shared_ptr: children keep their ancestors alive.
class Scope {
 public:
  Scope(std::string name, ScopeLimits limits, ResourceManager* manager);
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

  const std::string& name() const { return name_; }
  ScopeUsage usage() const;
  bool idle() const;

 private:
  friend class ResourceManager;
  friend class ConnectionScope;
  friend class StreamScope;
  struct Use {
    uint64_t memory = 0;
    size_t streams_in = 0, streams_out = 0, conns_in = 0, conns_out = 0, fds = 0;
  };
  // Why `more` does not fit in this scope alone, or nullopt.
  std::optional<std::string> refuses(const Use& more) const;
  void add(const Use& more);
  void remove(const Use& less);

  std::string name_;
  ScopeLimits limits_;
  Use use_;
};

// The scopes a reservation goes through: a leaf and all its ancestors, without duplicates.
using ScopeChain = std::vector<std::shared_ptr<Scope>>;

// A connection's account. Destroying it gives back everything it holds.
class ConnectionScope {
 public:
  ~ConnectionScope();
  ConnectionScope(const ConnectionScope&) = delete;
  ConnectionScope& operator=(const ConnectionScope&) = delete;

  // Leaves transient for the peer's scope: the peer's connection limits apply now. On refusal
  // nothing changes (the connection should close).
  Result<void> set_peer(const std::string& peer);
  Result<void> reserve_memory(uint64_t n);
  void release_memory(uint64_t n);
  Direction direction() const { return direction_; }
  const std::string& ip() const { return ip_; }
  const std::string& peer() const { return peer_; }
  uint64_t memory() const { return self_->use_.memory; }
  const std::shared_ptr<Scope>& peer_scope() const { return peer_scope_; }

 private:
  friend class ResourceManager;
  ConnectionScope(ResourceManager* manager, Direction direction, std::string ip);
  ScopeChain chain() const;
  Scope::Use own() const;

  ResourceManager* manager_;
  Direction direction_;
  std::string ip_;
  std::string peer_;
  bool handshaking_ = true;
  std::shared_ptr<Scope> self_;
  std::shared_ptr<Scope> peer_scope_;  // null while handshaking
};

// A stream's account. Destroying it gives back everything it holds.
class StreamScope {
 public:
  ~StreamScope();
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

  // Leaves transient for the protocol's scope (and its service's, if the protocol has one).
  Result<void> set_protocol(const std::string& protocol);
  Result<void> reserve_memory(uint64_t n);
  void release_memory(uint64_t n);
  uint64_t memory() const { return self_->use_.memory; }
  Direction direction() const { return direction_; }

 private:
  friend class ResourceManager;
  StreamScope(ResourceManager* manager, Direction direction, std::shared_ptr<Scope> connection,
              std::shared_ptr<Scope> peer, std::string peer_name);
  ScopeChain chain() const;
  Scope::Use own() const;

  ResourceManager* manager_;
  Direction direction_;
  bool negotiating_ = true;
  std::shared_ptr<Scope> self_;
  std::shared_ptr<Scope> connection_;
  std::shared_ptr<Scope> peer_;
  std::string peer_name_;
  std::shared_ptr<Scope> protocol_;  // null while negotiating
  std::shared_ptr<Scope> service_;   // null unless the protocol belongs to a service
};

class ResourceManager {
 public:
  explicit ResourceManager(ResourceLimits limits = {});
  // Scopes refer back to the manager: it must outlive them.
  ResourceManager(const ResourceManager&) = delete;
  ResourceManager& operator=(const ResourceManager&) = delete;

  // A connection being accepted or dialed, from/to `ip` (textual, as asio prints it). It counts
  // as a pending handshake until set_peer.
  Result<std::unique_ptr<ConnectionScope>> open_connection(Direction direction,
                                                           const std::string& ip);
  // A stream on an established connection (its scope named the peer).
  Result<std::unique_ptr<StreamScope>> open_stream(const ConnectionScope& connection,
                                                   Direction direction);
  // Groups a protocol's streams under a service ("pubsub", "dht", ...).
  void set_service(const std::string& protocol, const std::string& service);

  // Every non-idle scope, system first; then services, protocols and peers by name.
  std::vector<ScopeUsage> usage() const;
  ScopeUsage system_usage() const { return system_->usage(); }
  ScopeUsage transient_usage() const { return transient_->usage(); }
  std::optional<ScopeUsage> peer_usage(const std::string& peer) const;
  const ResourceCounters& counters() const { return counters_; }
  const ResourceLimits& limits() const { return limits_; }

  // The subnet key of an address: "a.b.c.0/24" or the /64 prefix; empty for loopback.
  static std::string subnet_of(const std::string& ip);
  static bool is_loopback(const std::string& ip);

 private:
  friend class ConnectionScope;
  friend class StreamScope;
  // Takes `more` from every scope of `chain`, or from none; the reason names the scope.
  Result<void> reserve(const ScopeChain& chain, const Scope::Use& more, uint64_t* counter);
  void release(const ScopeChain& chain, const Scope::Use& less);
  std::shared_ptr<Scope> peer_scope(const std::string& peer);
  std::shared_ptr<Scope> protocol_scope(const std::string& protocol);
  std::shared_ptr<Scope> service_scope(const std::string& service);
  void forget_connection(const ConnectionScope& c);

  ResourceLimits limits_;
  std::shared_ptr<Scope> system_;
  std::shared_ptr<Scope> transient_;
  std::map<std::string, std::weak_ptr<Scope>> peers_;
  std::map<std::string, std::shared_ptr<Scope>> protocols_;
  std::map<std::string, std::shared_ptr<Scope>> services_;
  std::map<std::string, std::string> service_of_;  // protocol -> service
  std::map<std::string, size_t> per_ip_;
  std::map<std::string, size_t> per_subnet_;
  std::map<std::string, size_t> handshakes_per_ip_;
  std::map<std::string, size_t> negotiating_per_peer_;
  ResourceCounters counters_;
};

}  // namespace p2pmq::host
