#pragma once
// What the gRPC services need from the agent. Every method may be called from any gRPC thread;
// the agent's implementation hands the work to its io thread (asio::post) and completes the
// callback from there. Callbacks must not block.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace p2pmq::api {

struct AgentMessage {
  Bytes id;
  std::string topic;
  Bytes data;
  std::string origin;  // peer id text (base58); empty when unsigned (StrictNoSign)
  uint64_t seqno = 0;  // 0 when the message has none
  std::chrono::system_clock::time_point received;
  bool synced = false;  // arrived through sync rather than live
};

// Seqnos from..to (inclusive) of `origin` on `topic` will not be delivered: sync gave up on
// them (v1::Gap).
struct GapNotice {
  std::string topic;
  std::string origin;  // peer id text
  uint64_t from = 0;
  uint64_t to = 0;
  bool operator==(const GapNotice&) const = default;
};

// What a listener receives.
using ListenItem = std::variant<AgentMessage, GapNotice>;
// One item shared by every listener of its topic: a message fanned out to N Listen streams is
// held once, not N times (a hostile local client can open many streams that never read).
using SharedListenItem = std::shared_ptr<const ListenItem>;

struct ListenOptions {
  // Per-origin seqno order (v1::ListenRequest.ordered); what it takes is the Backend's business.
  bool ordered = false;
};

struct PublishResult {
  Bytes id;
  uint64_t seqno = 0;
};

enum class Verdict { accept, ignore, reject };

struct PeerStatus {
  std::string peer_id;
  std::vector<std::string> addrs;
  std::vector<std::string> topics;
  std::vector<std::string> mesh_topics;
  double score = 0;
  std::string agent_version;
};

struct OriginWatermark {
  std::string origin;  // peer id text
  uint64_t delivered_seqno = 0;
};

struct TopicStatus {
  std::string topic;
  uint64_t published_seqno = 0;  // our own last seqno on the topic
  std::vector<OriginWatermark> origins;
  uint64_t gaps = 0;  // given up, reported as GapNotice
  uint64_t synced_messages = 0;
};

struct ArchiveInfo {
  std::string peer_id;
  std::vector<std::string> addrs;
  std::string source;  // "dht", "config" or "identify"
};

struct SyncActivity {
  uint64_t fetches = 0;
  uint64_t fetched_messages = 0;
  uint64_t fetch_failures = 0;
  uint64_t served_requests = 0;
  uint64_t served_messages = 0;
  bool archive_role = false;
  uint64_t archived_messages = 0;
};

// One resource-manager scope's use and limits (host::ScopeUsage, flattened).
struct ResourceScopeStatus {
  std::string name;
  uint64_t memory = 0;
  uint64_t memory_limit = 0;
  uint64_t streams = 0;
  uint64_t streams_limit = 0;
  uint64_t connections = 0;
  uint64_t connections_limit = 0;
  uint64_t fds = 0;
};

struct AgentStatus {
  std::string peer_id;
  std::vector<std::string> listen_addrs;
  std::vector<std::string> topics;
  std::vector<PeerStatus> peers;
  std::vector<TopicStatus> topic_status;
  std::vector<ArchiveInfo> archives;
  SyncActivity sync;
  std::string dht_mode;  // "client", "server", "bootstrapper"; empty without a DHT
  uint64_t dht_table_size = 0;
  uint64_t connected_peers = 0;
  std::vector<ResourceScopeStatus> resources;  // non-idle scopes
  std::string metrics_address;                 // "host:port" as bound; empty without metrics
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Idempotent; unknown topics are fine.
  virtual void subscribe(const std::string& topic, std::function<void(Result<void>)> done) = 0;
  virtual void unsubscribe(const std::string& topic, std::function<void(Result<void>)> done) = 0;
  // Joins the topic when unknown.
  virtual void publish(const std::string& topic, Bytes data,
                       std::function<void(Result<PublishResult>)> done) = 0;
  // Every message of `topic` delivered to the agent from now on goes to `sink` (on the io
  // thread), until the returned handle is passed to remove_listener. Subscribes when unknown.
  // With options.ordered, each origin's messages come in seqno order. Every listener of the
  // topic, ordered or not, also gets the topic's GapNotices. When the listener cannot be added
  // (joining the topic is over a limit), `refused` is called instead, once, on the io thread;
  // the handle must still be removed.
  virtual uint64_t add_listener(const std::string& topic, ListenOptions options,
                                std::function<void(const SharedListenItem&)> sink,
                                std::function<void(const Error&)> refused) = 0;
  virtual void remove_listener(uint64_t handle) = 0;
  virtual void status(std::function<void(AgentStatus)> done) = 0;
};

}  // namespace p2pmq::api
