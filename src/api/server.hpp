#pragma once
// The agent's gRPC server: Control, Messaging and Admin (proto/p2pmq/v1/p2pmq.proto), the
// standard health service and server reflection. It runs on gRPC's own threads (the callback
// API: no thread is pinned per stream) and talks to the agent only through Backend.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "api/backend.hpp"
#include "core/result.hpp"

namespace p2pmq::api {

struct ApiConfig {
  // host:port to bind; port 0 picks a free one (see ApiServer::bound_address). Loopback by
  // default: exposing the API is a deliberate choice.
  std::string address = "127.0.0.1:0";
  // TLS: when cert and key are set the server speaks TLS only. With a client CA as well, clients
  // must present a certificate signed by it (mutual TLS). PEM files.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // Largest PublishRequest.data accepted (INVALID_ARGUMENT beyond): pubsub::kMaxMessageDataSize,
  // what fits one frame of go-libp2p's 1 MiB limit with its signed envelope.
  size_t max_message_size = (size_t{1} << 20) - (size_t{4} << 10);
  // Longest topic name, in bytes (INVALID_ARGUMENT beyond).
  size_t max_topic_length = 256;
  // Concurrent Listen streams (RESOURCE_EXHAUSTED beyond).
  size_t max_listen_streams = 1024;
  // Topics in one ListenRequest (INVALID_ARGUMENT beyond).
  size_t max_topics_per_listen = 256;
  // A Listen stream's buffer in messages: ListenRequest.buffer_size, or this default when 0;
  // requests above max_listen_buffer are refused (INVALID_ARGUMENT).
  uint32_t default_listen_buffer = 1024;
  uint32_t max_listen_buffer = 65536;
  // A Listen stream's buffer in bytes (api::footprint), whatever its message count; and all
  // streams' buffers together: while the total is reached a stream keeps at most its equal
  // share (total / open streams). A stream always keeps its newest message.
  size_t max_listen_buffer_bytes = 16 << 20;
  size_t max_listen_total_bytes = 64 << 20;
  // Publish payloads handed to the backend and not answered yet (RESOURCE_EXHAUSTED beyond).
  size_t max_pending_publish_bytes = 64 << 20;
  // Without TLS, an address that is not loopback (or unix:) is refused unless this is set.
  bool allow_insecure_remote = false;
  // Serve grpc.reflection.v1alpha. gRPC registers the plugin process-wide: once one server in
  // the process enabled it, later servers serve it too.
  bool reflection = true;
};

class ApiServer {
 public:
  // `backend` must outlive the server.
  ApiServer(Backend& backend, ApiConfig config);
  ~ApiServer();  // stops
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds and starts serving. Fails with invalid_input for unreadable TLS files or a half TLS
  // configuration, and with io when the address cannot be bound. Call once.
  Result<void> start();
  // "host:port" with the port actually bound; empty before start().
  std::string bound_address() const;
  // Cancels open streams (Listen streams end with CANCELLED), waits for handlers to finish and
  // removes every listener from the backend. Idempotent.
  void stop();

  // Open Listen streams (for status and tests).
  size_t listen_streams() const;
  // Bytes waiting in every Listen stream's buffer (api::footprint), for status and tests.
  size_t listen_buffered_bytes() const;
  // Messages dropped from full Listen buffers (sent as Missed events), since start.
  uint64_t listen_missed_messages() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2pmq::api
