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

#include "host/upgrade.hpp"

namespace p2pmq::host {

struct HostConfig {
  std::vector<Multiaddr> listen;
  size_t max_inbound_connections = 256;
  size_t max_outbound_connections = 256;
  size_t max_pending_dials = 64;
  size_t max_connections_per_peer = 2;
  std::chrono::milliseconds dial_timeout{10000};
  std::chrono::milliseconds negotiation_timeout{10000};  // per-stream multistream-select
  size_t max_negotiating_streams = 128;  // inbound streams still choosing a protocol
  UpgradeConfig upgrade;
};

using StreamHandler = std::function<Task<void>(std::shared_ptr<Stream>)>;

struct PeerInfo {
  std::vector<Multiaddr> addrs;
  std::vector<std::string> protocols;
  std::string agent_version;
  std::string protocol_version;
  std::optional<crypto::PublicKey> public_key;
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
  asio::any_io_executor executor() { return io_.get_executor(); }

  void handle(const std::string& protocol, StreamHandler handler);
  void unhandle(const std::string& protocol);
  std::vector<std::string> protocols() const;
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

 private:
  struct PendingDial;
  Task<void> accept_loop(std::shared_ptr<tcp::acceptor> acceptor);
  Task<void> handle_inbound(tcp::socket socket);
  Task<Result<std::shared_ptr<Connection>>> dial(const Multiaddr& addr,
                                                 std::optional<crypto::PeerId> expected);
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
  size_t negotiating_ = 0;
  Signal all_closed_{io_.get_executor()};
  std::vector<ConnectionObserver> observers_;
  std::map<crypto::PeerId, PeerInfo> peer_store_;
  std::set<crypto::PeerId> blocked_;
};

// Multistream-select over an open stream.
Task<Result<std::string>> select_protocol(Stream& stream,
                                          const std::vector<std::string>& protocols);
Task<Result<std::string>> accept_protocol(Stream& stream,
                                          const std::function<bool(std::string_view)>& supports);

// Unsigned-varint length-prefixed messages, as most libp2p protocols frame protobufs.
Task<Result<Bytes>> read_length_prefixed(Stream& stream, size_t max_size);
Task<Result<void>> write_length_prefixed(Stream& stream, BytesView message);

}  // namespace p2pmq::host
