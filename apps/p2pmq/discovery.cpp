#include "discovery.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace p2pmq::cli {

using host::Task;
namespace asio = host::asio;

namespace {
// How often joined topics and the connection count are looked at.
constexpr auto kTick = std::chrono::seconds(1);
}  // namespace

Discovery::Discovery(host::Host& host, dht::DhtService& dht, pubsub::GossipsubService& gossip,
                     DiscoveryConfig config)
    : host_(host), dht_(dht), gossip_(gossip), config_(config), wake_(host.executor()) {}

Discovery::~Discovery() {
  stop();
  *alive_ = false;
}

void Discovery::start() {
  if (running_) return;
  running_ = true;
  dht_.on_bootstrapped([this, alive = alive_] {
    if (*alive) wake_.notify();
  });
  asio::co_spawn(host_.executor(), loop(), asio::detached);
}

void Discovery::stop() {
  running_ = false;
  wake_.notify();
}

Task<void> Discovery::loop() {
  auto alive = alive_;
  while (*alive && running_) {
    tick();
    co_await wake_.wait_until(host::Clock::now() + kTick);
  }
}

void Discovery::tick() {
  auto now = host::Clock::now();
  auto joined = gossip_.router().topics();
  std::set<std::string> current(joined.begin(), joined.end());
  // Advertise new topics, withdraw left ones.
  for (const auto& t : current) {
    if (advertised_.contains(t)) continue;
    advertised_.insert(t);
    if (config_.advertise_topics) (void)dht_.start_providing(dht::topic_key(t));
    if (config_.advertise_archive) (void)dht_.start_providing(dht::archive_key(t));
  }
  for (auto it = advertised_.begin(); it != advertised_.end();) {
    if (current.contains(*it)) {
      ++it;
      continue;
    }
    dht_.stop_providing(dht::topic_key(*it));
    dht_.stop_providing(dht::archive_key(*it));
    topics_.erase(*it);
    it = advertised_.erase(it);
  }
  // Look up providers of topics with fewer peers than gossipsub's D (so a mesh can reach D_lo
  // with room to choose, and a healed partition reconnects its halves).
  if (dht_.bootstrapped()) {
    size_t d = gossip_.router().config().D;
    for (const auto& t : current) {
      auto& state = topics_[t];
      if (state.looking || now < state.next_lookup) continue;
      if (gossip_.router().topic_peers(t).size() >= d) continue;
      state.looking = true;
      state.next_lookup = now + config_.interval;
      asio::co_spawn(host_.executor(), discover(t), asio::detached);
    }
  }
  trim();
}

Task<void> Discovery::discover(std::string topic) {
  auto alive = alive_;
  ++stats_.lookups;
  const auto& gc = gossip_.router().config();
  auto providers = co_await dht_.find_providers(dht::topic_key(topic), gc.D + gc.D_lo);
  if (!*alive) co_return;
  // Providers come most recently published first, the same list for every asker: dial a
  // random choice among them, or every newcomer would pile onto the same few peers.
  std::shuffle(providers.begin(), providers.end(), rng_);
  size_t have = gossip_.router().topic_peers(topic).size();
  size_t want = gc.D > have ? gc.D - have : 0;
  for (const auto& p : providers) {
    if (want == 0) break;
    if (p.id == host_.peer_id() || host_.connection_to(p.id)) continue;
    --want;
    ++stats_.dials;
    asio::co_spawn(
        host_.executor(),
        [this, alive, peer = p.id]() -> Task<void> {
          auto conn = co_await host_.connect(peer);
          if (*alive && !conn)
            spdlog::debug("discovery: {}: {}", peer.to_string(), conn.error().to_string());
        },
        asio::detached);
  }
  if (auto it = topics_.find(topic); it != topics_.end()) it->second.looking = false;
  spdlog::debug("discovery: {}: {} providers", topic, providers.size());
}

Task<std::vector<dht::KadPeer>> Discovery::find_archives(const std::string& topic) {
  co_return co_await dht_.find_providers(dht::archive_key(topic), 8);
}

// Above high_water, close the connections of the least useful peers down to low_water. Kept:
// mesh peers of any topic, peers younger than the grace period, and then the best scored.
void Discovery::trim() {
  auto now = host::Clock::now();
  std::map<crypto::PeerId, host::Clock::time_point> peers;  // peer -> its oldest connection
  std::map<uint64_t, host::Clock::time_point> seen;
  for (const auto& conn : host_.connections()) {
    auto it = first_seen_.find(conn->id());
    auto since = it != first_seen_.end() ? it->second : now;
    seen[conn->id()] = since;
    auto [p, inserted] = peers.emplace(conn->remote_peer(), since);
    if (!inserted) p->second = std::min(p->second, since);
  }
  first_seen_ = std::move(seen);
  if (peers.size() <= config_.high_water) return;
  std::set<crypto::PeerId> keep;
  for (const auto& t : gossip_.router().topics())
    for (const auto& p : gossip_.router().mesh(t)) keep.insert(p);
  std::vector<std::pair<double, crypto::PeerId>> candidates;
  for (const auto& [peer, since] : peers) {
    if (keep.contains(peer) || now - since < config_.grace) continue;
    candidates.emplace_back(gossip_.router().score(peer, now), peer);
  }
  std::sort(candidates.begin(), candidates.end());
  size_t excess = peers.size() - config_.low_water;
  for (const auto& [score, peer] : candidates) {
    if (excess == 0) break;
    --excess;
    ++stats_.trimmed;
    spdlog::debug("connmgr: closing {} (score {:.2f})", peer.to_string(), score);
    host_.disconnect(peer, "connection manager: over high water");
  }
}

}  // namespace p2pmq::cli
