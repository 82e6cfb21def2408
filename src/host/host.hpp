#pragma once
// The swarm: listeners, dialer (timeouts, dedup per peer), stream handlers keyed by protocol id,
// connection limits and events, peer store, graceful shutdown.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "crypto/peer_record.hpp"
#include "host/resource_manager.hpp"
#include "host/upgrade.hpp"

namespace p2pmq::host {

struct HostConfig {
  std::vector<Multiaddr> listen;
  size_t max_inbound_connections = 256;
  size_t max_outbound_connections = 256;
  size_t max_pending_dials = 64;
  size_t max_connections_per_peer = 2;  // the peer scope's connection limit
  // One deadline for a whole connect(), every address of the peer included.
  std::chrono::milliseconds dial_timeout{10000};
  // Per-stream multistream-select, both directions.
  std::chrono::milliseconds negotiation_timeout{10000};
  // Inbound streams still choosing a protocol, all peers together (the transient scope's
  // inbound stream limit); per peer: resources.negotiations_per_peer.
  size_t max_negotiating_streams = 128;
  // A socket write that does not complete in this time closes the connection (0: never).
  std::chrono::milliseconds write_timeout{10000};  // go-yamux ConnectionWriteTimeout
  // Peer store: peers without a connection are forgotten first beyond max_peers; an address
  // learnt from the network expires after address_ttl unless its peer is connected.
  size_t max_peer_store_peers = 10000;
  size_t max_addrs_per_peer = 32;
  std::chrono::milliseconds address_ttl{3600 * 1000};
  ResourceLimits resources;
  UpgradeConfig upgrade;
};

using StreamHandler = std::function<Task<void>(std::shared_ptr<Stream>)>;

struct PeerInfo {
  std::vector<Multiaddr> addrs;
  std::vector<std::string> protocols;
  std::string agent_version;
  std::string protocol_version;
  std::optional<crypto::PublicKey> public_key;
  // The newest signed peer record the peer gave us (identify, or a PX entry), sealed as
  // received (at most crypto::kMaxSignedPeerRecordSize bytes): what we pass on in PX.
  Bytes signed_peer_record;
  uint64_t peer_record_seq = 0;
};

enum class ConnectionEvent { opened, closed };
using ConnectionObserver = std::function<void(const std::shared_ptr<Connection>&, ConnectionEvent)>;

class Host {
 public:
  Host(asio::io_context& io, crypto::PrivateKey identity, HostConfig config);
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  // Binds every configured listen address and starts accepting.
  Result<void> start();
  // Closes listeners and every connection cleanly (GoAway, flush), then returns.
  Task<void> shutdown();

  const crypto::PeerId& peer_id() const { return peer_id_; }
  const crypto::PrivateKey& identity() const { return identity_; }
  // Bound addresses, port 0 resolved; without /p2p/.
  std::vector<Multiaddr> listen_addrs() const;
  // What peers are told (identify, DHT): the listen addresses with 0.0.0.0 and :: expanded to
  // this machine's addresses of that family (announce_addrs), never the unspecified ones.
  std::vector<Multiaddr> advertised_addrs() const;
  asio::any_io_executor executor() { return io_.get_executor(); }

  // `service` groups protocols under one resource scope ("pubsub", "dht", ...).
  void handle(const std::string& protocol, StreamHandler handler, const std::string& service = {});
  void unhandle(const std::string& protocol);
  std::vector<std::string> protocols() const;
  // Called when a protocol is added or removed (identify pushes the change to peers).
  void on_protocols_changed(std::function<void()> f) {
    protocol_observers_.push_back(std::move(f));
  }
  void observe(ConnectionObserver observer) { observers_.push_back(std::move(observer)); }

  // Reuses an open connection to the peer of a /p2p/ address, joins a dial already under way,
  // or dials. Without /p2p/ it always dials.
  Task<Result<std::shared_ptr<Connection>>> connect(const Multiaddr& addr);
  Task<Result<std::shared_ptr<Connection>>> connect(const crypto::PeerId& peer);
  // Opens a stream and negotiates the first protocol of `protocols` the remote supports.
  Task<Result<std::shared_ptr<Stream>>> new_stream(const std::shared_ptr<Connection>& conn,
                                                   const std::vector<std::string>& protocols);
  Task<Result<std::shared_ptr<Stream>>> new_stream(const crypto::PeerId& peer,
                                                   const std::vector<std::string>& protocols);

  std::shared_ptr<Connection> connection_to(const crypto::PeerId& peer) const;
  std::vector<std::shared_ptr<Connection>> connections() const;
  void disconnect(const crypto::PeerId& peer, const std::string& reason);
  // A connection gater: a blocked peer is disconnected, never dialed, and its inbound
  // connections are closed once the handshake names it. (Operators: ban a peer; tests: split a
  // network.)
  void block(const crypto::PeerId& peer);
  void unblock(const crypto::PeerId& peer);
  bool is_blocked(const crypto::PeerId& peer) const { return blocked_.contains(peer); }

  std::map<crypto::PeerId, PeerInfo>& peer_store() { return peer_store_; }
  // Adds addresses a peer or the network told us about: filtered (see dialable_from_peer), at
  // most max_addrs_per_peer, each valid for address_ttl. Returns how many were new.
  size_t add_addrs(const crypto::PeerId& peer, const std::vector<Multiaddr>& addrs);
  // Opens a signed peer record (RFC 0002/0003) that should be `peer`'s, and keeps it with its
  // addresses (as add_addrs) when its seq is newer than the one held: one record per peer.
  // An invalid record, or one of another peer, is an error and changes nothing.
  Result<crypto::PeerRecord> add_signed_peer_record(const crypto::PeerId& peer, BytesView envelope);
  // Drops expired addresses, then peers without addresses or connection, then (beyond
  // max_peer_store_peers) the least recently heard-of peers without a connection.
  void prune_peer_store(Clock::time_point now);

  // Per scope: use and limit (system, transient, services, protocols, peers).
  std::vector<ScopeUsage> resource_usage() const { return rcmgr_->usage(); }
  const ResourceCounters& resource_counters() const { return rcmgr_->counters(); }
  ResourceManager& resource_manager() { return *rcmgr_; }

 private:
  struct PendingDial;
  struct InFlight;
  // `in_flight` is passed, not read from the host: the loop may first run after the host is
  // gone.
  Task<void> accept_loop(std::shared_ptr<tcp::acceptor> acceptor,
                         std::shared_ptr<InFlight> in_flight);
  Task<void> handle_inbound(tcp::socket socket);
  Task<Result<std::shared_ptr<Connection>>> dial(const Multiaddr& addr,
                                                 std::optional<crypto::PeerId> expected,
                                                 Clock::time_point deadline);
  Task<Result<std::shared_ptr<Connection>>> connect_until(const Multiaddr& addr,
                                                          Clock::time_point deadline);
  bool listens_on_loopback() const;
  void add_connection(const std::shared_ptr<Connection>& conn);
  void on_stream(const std::shared_ptr<Stream>& stream);
  Task<void> serve_stream(std::shared_ptr<Stream> stream);
  size_t count(bool outbound) const;

  asio::io_context& io_;
  crypto::PrivateKey identity_;
  crypto::PeerId peer_id_;
  HostConfig config_;
  bool stopping_ = false;
  std::vector<std::shared_ptr<tcp::acceptor>> acceptors_;
  std::map<std::string, StreamHandler> handlers_;
  std::multimap<crypto::PeerId, std::shared_ptr<Connection>> connections_;
  std::map<crypto::PeerId, std::shared_ptr<PendingDial>> pending_dials_;
  // Counters that coroutines still under way may touch after the Host is gone: shared.
  struct InFlight {
    bool alive = true;
    size_t dials = 0;
    size_t inbound = 0;  // inbound connections still upgrading
  };
  std::shared_ptr<InFlight> in_flight_ = std::make_shared<InFlight>();
  Signal abort_upgrades_{io_.get_executor()};  // shutdown: end every handshake under way
  std::shared_ptr<ResourceManager> rcmgr_;
  Signal all_closed_{io_.get_executor()};
  std::vector<ConnectionObserver> observers_;
  std::vector<std::function<void()>> protocol_observers_;
  std::map<crypto::PeerId, PeerInfo> peer_store_;
  // When each stored address expires, and when each peer was last heard of.
  std::map<crypto::PeerId, std::map<std::string, Clock::time_point>> addr_expiry_;  // by text
  std::map<crypto::PeerId, Clock::time_point> last_heard_;
  Clock::time_point next_prune_{};
  std::set<crypto::PeerId> blocked_;
};

// Whether an address a peer (identify, DHT, mDNS) gave us may be dialed: a TCP address on a
// routable IP; never unspecified (0.0.0.0, ::), never link-local (fe80::/10, 169.254/16), no
// multicast, and loopback only when we listen on loopback ourselves. DNS names are kept.
bool dialable_from_peer(const Multiaddr& addr, bool allow_loopback);

// Multistream-select over an open stream.
Task<Result<std::string>> select_protocol(Stream& stream,
                                          const std::vector<std::string>& protocols);
Task<Result<std::string>> accept_protocol(Stream& stream,
                                          const std::function<bool(std::string_view)>& supports);

// Unsigned-varint length-prefixed messages, as most libp2p protocols frame protobufs.
Task<Result<Bytes>> read_length_prefixed(Stream& stream, size_t max_size);
Task<Result<void>> write_length_prefixed(Stream& stream, BytesView message);

}  // namespace p2pmq::host
