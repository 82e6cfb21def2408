#pragma once
// The agent's use of the DHT: topic discovery (advertise under each joined topic's key, look up
// its providers while the topic has fewer than D peers, and connect to them), the archive
// advertisement, and the connection manager that keeps the peer count within watermarks.
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "dht/io/dht_service.hpp"
#include "pubsub/io/gossipsub_service.hpp"

namespace p2pmq::cli {

struct DiscoveryConfig {
  std::chrono::milliseconds interval{10000};  // between lookups of an under-connected topic
  bool advertise_topics = true;               // bootstrappers only route
  bool advertise_archive = false;             // archive role: also under archive_key(topic)
  size_t low_water = 64;                      // connection manager
  size_t high_water = 96;
  std::chrono::milliseconds grace{30000};  // new connections are never trimmed
};

struct DiscoveryStats {
  uint64_t lookups = 0;
  uint64_t dials = 0;
  uint64_t trimmed = 0;  // connections closed by the connection manager
};

class Discovery {
 public:
  Discovery(host::Host& host, dht::DhtService& dht, pubsub::GossipsubService& gossip,
            DiscoveryConfig config);
  ~Discovery();
  void start();
  void stop();
  // Look at the joined topics now (after a subscription), not at the next tick.
  void poke() { wake_.notify(); }
  // Archives of a topic found through the DHT (archive_key providers).
  host::Task<std::vector<dht::KadPeer>> find_archives(const std::string& topic);
  const DiscoveryStats& stats() const { return stats_; }

 private:
  struct TopicState {
    host::Clock::time_point next_lookup{};
    bool looking = false;
  };
  host::Task<void> loop();
  void tick();
  host::Task<void> discover(std::string topic);
  void trim();

  host::Host& host_;
  dht::DhtService& dht_;
  pubsub::GossipsubService& gossip_;
  DiscoveryConfig config_;
  std::map<std::string, TopicState> topics_;
  std::set<std::string> advertised_;
  std::map<uint64_t, host::Clock::time_point> first_seen_;  // connection id -> when
  bool running_ = false;
  host::Signal wake_;
  DiscoveryStats stats_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace p2pmq::cli
