#pragma once
// A probe per module: each reads the module's own counters at scrape time (issue 12, item 3).
// The modules hold no reference to the probes; a probe only reads, on the io thread.
#include "metrics/collector.hpp"

namespace p2pmq::host {
class Host;
}
namespace p2pmq::pubsub {
class GossipsubService;
}
namespace p2pmq::dht {
class DhtService;
}
namespace p2pmq::sync {
class SyncService;
class ArchiveStore;
}  // namespace p2pmq::sync

namespace p2pmq::metrics {

// Connections and streams by direction (streams also by protocol), and the resource manager's
// scopes: system, transient, services and protocols (never per peer: unbounded label values).
class HostProbe : public Probe {
 public:
  explicit HostProbe(const host::Host& host) : host_(host) {}
  void collect(Collector& out) const override;

 private:
  const host::Host& host_;
};

// Gossipsub: message counts overall and per joined topic, mesh sizes, validation latency and
// queue depth, gossip control traffic, and the distribution of peer scores.
class GossipProbe : public Probe {
 public:
  explicit GossipProbe(const pubsub::GossipsubService& gossip) : gossip_(gossip) {}
  void collect(Collector& out) const override;

 private:
  const pubsub::GossipsubService& gossip_;
};

// Kademlia: routing table size, queries and their latency, requests both ways.
class DhtProbe : public Probe {
 public:
  explicit DhtProbe(const dht::DhtService& dht) : dht_(dht) {}
  void collect(Collector& out) const override;

 private:
  const dht::DhtService& dht_;
};

// /p2pmq/sync/1.0.0 both sides, and the archive's size (archive role; null otherwise).
class SyncProbe : public Probe {
 public:
  SyncProbe(const sync::SyncService& sync, const sync::ArchiveStore* archive)
      : sync_(sync), archive_(archive) {}
  void collect(Collector& out) const override;

 private:
  const sync::SyncService& sync_;
  const sync::ArchiveStore* archive_;
};

// Upper bounds of the peer score histogram: scores span thresholds from -80000 (graylist) to
// small positive values, so the buckets are logarithmic on both sides of zero.
inline constexpr double kScoreBuckets[] = {-10000, -1000, -100, -10, -1, 0, 1, 10, 100, 1000};

}  // namespace p2pmq::metrics
