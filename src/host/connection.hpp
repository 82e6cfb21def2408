#pragma once
// A secured, multiplexed libp2p connection (TCP + Noise + Yamux) and its streams.
// The protocol state machines (noise::Session, yamux::Session) hold no sockets; this class is
// the IO edge that moves bytes between them and the socket.
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/multiaddr.hpp"
#include "core/result.hpp"
#include "crypto/keys.hpp"
#include "crypto/peer_id.hpp"
#include "host/asio.hpp"
#include "host/resource_manager.hpp"
#include "net/noise.hpp"
#include "net/yamux.hpp"

namespace p2pmq::host {

class Connection;

class Stream : public std::enable_shared_from_this<Stream> {
 public:
  Stream(std::shared_ptr<Connection> conn, yamux::StreamId id, bool inbound,
         std::unique_ptr<StreamScope> scope = nullptr);
  ~Stream();

  // Reads what is there (at least one byte); 0 means the remote closed its write side.
  Task<Result<size_t>> read_some(std::span<uint8_t> out);
  Task<Result<void>> read_exact(std::span<uint8_t> out);
  // Returns once every byte is handed to the muxer (bounded by the remote's window).
  Task<Result<void>> write(BytesView data);
  void close_write();
  void reset();

  const std::string& protocol() const { return protocol_; }
  // Moves the stream's account from transient to the protocol's scope; refused at its limits.
  Result<void> set_protocol(std::string p);
  // Accounts bytes a protocol buffers for this stream (partial messages, queues) against the
  // stream, its connection, its peer, its protocol and the system.
  Result<void> reserve_memory(size_t n);
  void release_memory(size_t n);
  bool inbound() const { return inbound_; }
  yamux::StreamId id() const { return id_; }
  const crypto::PeerId& remote_peer() const { return remote_peer_; }
  std::shared_ptr<Connection> connection() const { return conn_.lock(); }
  // Puts bytes read past a negotiation back in front of the receive buffer.
  void unread(Bytes bytes);

  // Called by the connection.
  void on_data(Bytes data);
  void on_eof();
  void on_reset();
  void on_writable() { writable_.notify(); }

 private:
  std::weak_ptr<Connection> conn_;
  yamux::StreamId id_;
  bool inbound_;
  crypto::PeerId remote_peer_;
  std::string protocol_;
  std::shared_ptr<ResourceManager> rcmgr_;  // outlives scope_
  std::unique_ptr<StreamScope> scope_;      // null when the connection has no account
  size_t received_bytes_ = 0;               // in received_, reserved against scope_
  std::deque<Bytes> received_;
  size_t front_offset_ = 0;
  size_t already_credited_ = 0;
  bool eof_ = false;
  bool reset_ = false;
  bool write_closed_ = false;
  Signal readable_;
  Signal writable_;
};

// Keeps a stream's reservation equal to what a protocol buffers for it (a partial message):
// update() before the buffer grows; the destructor gives it all back.
class BufferAccount {
 public:
  explicit BufferAccount(Stream& stream) : stream_(stream) {}
  ~BufferAccount() { stream_.release_memory(reserved_); }
  BufferAccount(const BufferAccount&) = delete;
  BufferAccount& operator=(const BufferAccount&) = delete;
  Result<void> update(size_t held) {
    if (held > reserved_) {
      if (auto r = stream_.reserve_memory(held - reserved_); !r) return r;
    } else {
      stream_.release_memory(reserved_ - held);
    }
    reserved_ = held;
    return {};
  }

 private:
  Stream& stream_;
  size_t reserved_ = 0;
};

struct ConnectionInfo {
  crypto::PeerId remote_peer;
  crypto::PublicKey remote_key;
  Multiaddr remote_addr;  // without /p2p/
  Multiaddr local_addr;
  bool outbound = false;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using StreamCallback = std::function<void(std::shared_ptr<Stream>)>;
  using ClosedCallback = std::function<void(Connection&)>;

  Connection(tcp::socket socket, noise::Session noise, yamux::Session mux, ConnectionInfo info,
             Bytes early_plaintext, size_t max_streams);
  ~Connection();

  // Gives the connection its account (the host's resource manager); before start().
  void attach(std::shared_ptr<ResourceManager> rcmgr, std::unique_ptr<ConnectionScope> scope,
              std::chrono::milliseconds write_timeout);
  // A scope for a new stream of this connection; null without an account.
  Result<std::unique_ptr<StreamScope>> stream_scope(Direction direction);
  ConnectionScope* scope() const { return scope_.get(); }
  // Starts the read, write and timer loops.
  void start(StreamCallback on_stream, ClosedCallback on_closed);
  Task<Result<std::shared_ptr<Stream>>> open_stream();
  // Sends GoAway, flushes and closes.
  void close(const std::string& reason);
  bool is_open() const { return open_; }
  bool is_closing() const { return closing_; }  // close() called: no new streams

  const ConnectionInfo& info() const { return info_; }
  const crypto::PeerId& remote_peer() const { return info_.remote_peer; }
  uint64_t id() const { return id_; }
  size_t stream_count() const { return streams_.size(); }

  // Used by Stream.
  yamux::Session& mux() { return mux_; }
  void kick_writer() { write_ready_.notify(); }
  void forget_stream(yamux::StreamId id);
  asio::any_io_executor socket_executor();
  std::chrono::nanoseconds last_rtt() const { return last_rtt_; }
  const std::shared_ptr<ResourceManager>& resource_manager() const { return rcmgr_; }

 private:
  std::shared_ptr<Stream> find_stream(yamux::StreamId id);
  void finish(const std::string& reason);
  Task<void> read_loop();
  Task<void> write_loop();
  Task<void> timer_loop();
  void dispatch_events();
  void drop(const std::string& reason);
  // Keeps the reservation equal to what the muxer buffers for the wire; false: over a limit.
  bool account_output();

  tcp::socket socket_;
  noise::Session noise_;
  yamux::Session mux_;
  ConnectionInfo info_;
  Bytes early_plaintext_;
  uint64_t id_;
  bool open_ = true;
  bool closing_ = false;
  std::string close_reason_;
  std::chrono::nanoseconds last_rtt_{0};
  size_t max_streams_ = 0;
  // Weak: a stream its owner dropped is reset by its destructor.
  std::unordered_map<yamux::StreamId, std::weak_ptr<Stream>> streams_;
  StreamCallback on_stream_;
  ClosedCallback on_closed_;
  Signal write_ready_;
  Signal timer_wake_;
  Signal output_taken_;  // the writer took the muxer's output: a paused reader may go on
  std::shared_ptr<ResourceManager> rcmgr_;  // outlives scope_
  std::unique_ptr<ConnectionScope> scope_;
  std::chrono::milliseconds write_timeout_{0};  // 0: none
  size_t output_reserved_ = 0;
  Bytes write_plain_;  // the write loop's buffers: their capacity is accounted as output
  Bytes write_wire_;
};

}  // namespace p2pmq::host
