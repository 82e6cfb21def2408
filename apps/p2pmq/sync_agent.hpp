#pragma once
// The agent side of sync (DESIGN.md §5): every accepted message, live or fetched, goes through
// the DeliveryTracker (dedup per (topic, origin, seqno), order for ordered topics, gaps), then to
// the listeners; seqno jumps that gossip does not fill are fetched from archives; a catch-up
// (everything past our watermarks) runs when a topic gains a peer it did not have (start-up,
// the end of a partition) and when the first listener of a topic arrives. Archive role: every
// delivered message is also stored. Fetched messages are signature-checked and externally
// validated like live ones, delivered once, marked synced, and never re-broadcast.
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "discovery.hpp"
#include "pubsub/io/gossipsub_service.hpp"
#include "sync/delivery.hpp"
#include "sync/io/sync_service.hpp"

namespace p2pmq::cli {

enum class ArchiveSource { config, identify, dht };
const char* archive_source_name(ArchiveSource s);

struct KnownArchive {
  crypto::PeerId peer;
  ArchiveSource source;
};

struct SyncAgentConfig {
  sync::DeliveryConfig delivery;
  sync::FetchSlotsConfig fetch_slots;  // gap fetches in flight, per topic and in total
  std::vector<Multiaddr> archives;     // static, with /p2p/
  bool archive_role = false;
  bool catch_up = true;                          // on new topic peers, first listeners, start-up
  std::chrono::milliseconds settle{500};         // a catch-up waits this long after its trigger
  std::chrono::milliseconds dht_refresh{30000};  // archive providers looked up again after
  std::chrono::milliseconds prune_interval{60000};
};

struct SyncAgentStats {
  uint64_t catch_ups = 0;
  uint64_t fetches = 0;           // gap fetches
  uint64_t fetches_deferred = 0;  // over the fetch slots: asked again after fetch_retry
  uint64_t synced_delivered = 0;
  uint64_t synced_rejected = 0;  // bad signature, wrong topic, validator REJECT
  uint64_t archived = 0;
  uint64_t archive_failures = 0;
  uint64_t gaps = 0;
};

class SyncAgent {
 public:
  struct Hooks {
    // A message for the listeners (the backend holds it when none is open).
    std::function<void(const pubsub::DeliverMessage&, bool synced)> deliver;
    std::function<void(const sync::GapEvent&)> gap;
    // External validation of a fetched message (the same validator as live traffic).
    std::function<void(const pubsub::DeliverMessage&, std::function<void(pubsub::Verdict)>)>
        validate;
    // Persist watermarks (changed entries; called at most once per flush interval).
    std::function<void(const std::vector<sync::WatermarkEntry>&)> save_watermarks;
    // Archive role: apply retention (age) to every topic; called every prune_interval.
    std::function<void()> prune;
  };

  SyncAgent(host::Host& host, pubsub::GossipsubService& gossip, sync::SyncService& sync,
            Discovery* discovery, SyncAgentConfig config, Hooks hooks,
            std::vector<sync::WatermarkEntry> watermarks);
  ~SyncAgent();
  void start();
  void stop();  // flushes the watermarks

  // A live message the router accepted (our own publications included).
  void on_live(const pubsub::DeliverMessage& d);
  // A Listen stream opened on `topic`.
  void on_listener(const std::string& topic, bool ordered_listeners_now);
  void catch_up(const std::string& topic);

  std::vector<KnownArchive> archives(const std::string& topic) const;
  std::vector<sync::WatermarkEntry> watermarks() const { return tracker_.export_watermarks(); }
  const SyncAgentStats& stats() const { return stats_; }
  struct TopicCounters {
    uint64_t synced = 0;
    uint64_t gaps = 0;
  };
  TopicCounters topic_counters(const std::string& topic) const {
    auto it = counters_.find(topic);
    return it == counters_.end() ? TopicCounters{} : it->second;
  }
  const sync::DeliveryStats& delivery_stats() const { return tracker_.stats(); }

 private:
  struct TopicState {
    std::set<crypto::PeerId> peers;  // topic peers at the last look
    bool catching_up = false;
    bool again = false;  // another trigger came during a catch-up
    bool listened = false;
    std::vector<crypto::PeerId> dht_archives;
    host::Clock::time_point dht_looked{};
  };
  host::Task<void> loop();
  void tick();
  void apply(sync::DeliveryOutput out);
  void offer(pubsub::Message message, sync::Source source);
  void on_fetched(const crypto::PeerId& from, sync::FetchedMessage f, const std::string& topic);
  host::Task<void> run_catch_up(std::string topic);
  host::Task<void> run_fetch(sync::FetchRange range);
  host::Task<std::vector<crypto::PeerId>> archive_peers(const std::string& topic);
  void store(const pubsub::Message& message);
  void flush();

  host::Host& host_;
  pubsub::GossipsubService& gossip_;
  sync::SyncService& sync_;
  Discovery* discovery_;
  SyncAgentConfig config_;
  Hooks hooks_;
  sync::DeliveryTracker tracker_;
  sync::FetchSlots fetch_slots_;
  std::vector<crypto::PeerId> static_archives_;
  std::map<std::string, TopicState> topics_;
  bool dirty_ = false;
  host::Clock::time_point next_flush_{};
  host::Clock::time_point next_prune_{};
  bool running_ = false;
  host::Signal wake_;
  SyncAgentStats stats_;
  std::map<std::string, TopicCounters> counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace p2pmq::cli
