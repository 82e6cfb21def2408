#pragma once
// The agent's side of the gRPC API: every call from a gRPC thread is posted to the io thread,
// where the host and the gossipsub service live; results go back through the callbacks.
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <set>

#include "api/backend.hpp"
#include "api/held_messages.hpp"
#include "host/host.hpp"
#include "protocols/identify.hpp"
#include "pubsub/io/gossipsub_service.hpp"

namespace p2pmq::cli {

class AgentBackend : public api::Backend {
 public:
  // Without a delivery path set by the agent (set_hooks), live gossip goes straight to deliver().
  // Subscribe, Publish and Listen may make the agent join at most max_topics topics in all.
  AgentBackend(host::Host& host, pubsub::GossipsubService& gossip, api::HoldConfig hold = {},
               size_t max_topics = 1024);

  // How the agent plugs persistence and sync in. Every hook runs on the io thread; unset ones
  // keep the in-memory behaviour.
  struct Hooks {
    std::function<Result<uint64_t>(const std::string& topic)> next_seqno;  // persisted counter
    std::function<void(const std::string& topic, uint64_t seqno)> rollback_seqno;
    std::function<Result<uint32_t>(const std::string& topic)> topic_number;  // persisted
    // Set: a seqno from next_seqno is used only once this calls back with success (on the io
    // thread): the counter's fsync, off the io thread (sync.durability: power_loss).
    std::function<void(std::function<void(Result<void>)> done)> make_durable;
    std::function<void(const std::string& topic, bool subscribed)> subscription_changed;
    // A Listen stream opened; `ordered` is how many ordered ones the topic has now.
    std::function<void(const std::string& topic, size_t ordered)> listeners_changed;
    bool own_delivery = false;  // true: the agent calls deliver() itself (through sync)
  };
  void set_hooks(Hooks hooks);

  void subscribe(const std::string& topic, std::function<void(Result<void>)> done) override;
  void unsubscribe(const std::string& topic, std::function<void(Result<void>)> done) override;
  void publish(const std::string& topic, Bytes data,
               std::function<void(Result<api::PublishResult>)> done) override;
  uint64_t add_listener(const std::string& topic, api::ListenOptions options,
                        std::function<void(const api::SharedListenItem&)> sink,
                        std::function<void(const Error&)> refused) override;
  void remove_listener(uint64_t handle) override;
  void status(std::function<void(api::AgentStatus)> done) override;
  // The same, at once; io thread only (the status page).
  api::AgentStatus status_now() const;
  // Messages held for subscribed topics without a listener (metrics); io thread only.
  const api::HeldMessages& held() const { return held_; }

  // io thread only. The topic's next count (1, 2, 3 ...), and the seqno that carries it on the
  // wire: the count itself, or under stock ids pubsub::stock_seqno of it.
  Result<uint64_t> next_seqno(const std::string& topic);
  Result<uint64_t> wire_seqno(const std::string& topic, uint64_t count);
  static api::AgentMessage to_agent_message(const pubsub::DeliverMessage& d, bool synced);

  // Delivery, io thread only. deliver() hands a message to every listener of its topic, ordered
  // or not: the ordered flag is only recorded here (ordered_listeners), putting messages in
  // order is the caller's job (the agent's SyncAgent). deliver_gap() hands a gap to every
  // listener of its topic. While a topic a client subscribed to (Control.Subscribe) has no
  // listener, its items are held (api::HeldMessages, bounded in bytes) and replayed to the next
  // listener that opens.
  void deliver(const api::AgentMessage& message);
  void deliver_gap(const api::GapNotice& gap);
  // Listeners of `topic` that asked for ordered delivery. io thread only.
  size_t ordered_listeners(const std::string& topic) const;
  // Holds the topic's messages for the next listener as if a client had subscribed (the
  // subscriptions a restarted agent restores). io thread only.
  void hold_for(const std::string& topic);

  // Runs on the io thread at the end of every status(), after the backend filled what it knows
  // (identity, addresses, topics, peers, connected_peers, and topic_status with one entry per
  // subscribed topic carrying published_seqno), to add the sync and DHT fields. Set it before
  // the API server starts, or from the io thread.
  void set_status_extender(std::function<void(api::AgentStatus&)> extender);

 private:
  struct Listener {
    bool ordered = false;
    std::function<void(const api::SharedListenItem&)> sink;
  };
  void deliver_item(const std::string& topic, api::ListenItem item);
  // Joins the topic unless joined or at max_topics_. io thread only.
  Result<void> join(const std::string& topic);
  void publish_numbered(const std::string& topic, Bytes data, uint64_t seqno,
                        std::function<void(Result<api::PublishResult>)> done);
  void give_back_seqno(const std::string& topic, uint64_t seqno);

  host::Host& host_;
  pubsub::GossipsubService& gossip_;
  Hooks hooks_;
  api::HeldMessages held_;
  size_t max_topics_;
  std::atomic<uint64_t> next_handle_{1};
  // io thread only:
  std::map<std::string, uint64_t> seqnos_;         // last published, per topic
  std::map<std::string, uint32_t> topic_numbers_;  // stock ids, without a state store
  std::map<std::string, std::map<uint64_t, Listener>> listeners_;
  std::map<uint64_t, std::string> listener_topics_;
  std::function<void(api::AgentStatus&)> status_extender_;
};

}  // namespace p2pmq::cli
