#pragma once
// The agent's side of the gRPC API: every call from a gRPC thread is posted to the io thread,
// where the host and the gossipsub service live; results go back through the callbacks.
#include <atomic>
#include <map>
#include <set>

#include "api/backend.hpp"
#include "host/host.hpp"
#include "protocols/identify.hpp"
#include "pubsub/io/gossipsub_service.hpp"

namespace p2pmq::cli {

class AgentBackend : public api::Backend {
 public:
  AgentBackend(host::Host& host, pubsub::GossipsubService& gossip);

  void subscribe(const std::string& topic, std::function<void(Result<void>)> done) override;
  void unsubscribe(const std::string& topic, std::function<void(Result<void>)> done) override;
  void publish(const std::string& topic, Bytes data,
               std::function<void(Result<api::PublishResult>)> done) override;
  uint64_t add_listener(const std::string& topic,
                        std::function<void(const api::AgentMessage&)> sink) override;
  void remove_listener(uint64_t handle) override;
  void status(std::function<void(api::AgentStatus)> done) override;

  // io thread only.
  uint64_t next_seqno(const std::string& topic) { return ++seqnos_[topic]; }
  static api::AgentMessage to_agent_message(const pubsub::DeliverMessage& d, bool synced);

 private:
  void deliver(const pubsub::DeliverMessage& d);

  host::Host& host_;
  pubsub::GossipsubService& gossip_;
  std::atomic<uint64_t> next_handle_{1};
  // io thread only:
  std::map<std::string, uint64_t> seqnos_;  // TODO(sync): persisted per topic in the data dir
  std::map<std::string, std::map<uint64_t, std::function<void(const api::AgentMessage&)>>>
      listeners_;
  std::map<uint64_t, std::string> listener_topics_;
};

}  // namespace p2pmq::cli
