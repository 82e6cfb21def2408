#pragma once
// What the gRPC services need from the agent. Every method may be called from any gRPC thread;
// the agent's implementation hands the work to its io thread (asio::post) and completes the
// callback from there. Callbacks must not block.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
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

struct AgentStatus {
  std::string peer_id;
  std::vector<std::string> listen_addrs;
  std::vector<std::string> topics;
  std::vector<PeerStatus> peers;
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
  virtual uint64_t add_listener(const std::string& topic,
                                std::function<void(const AgentMessage&)> sink) = 0;
  virtual void remove_listener(uint64_t handle) = 0;
  virtual void status(std::function<void(AgentStatus)> done) = 0;
};

}  // namespace p2pmq::api
