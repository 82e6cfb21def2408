#include "sync_agent.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/log_limiter.hpp"
#include "pubsub/message.hpp"

namespace p2pmq::cli {

using host::Task;
namespace asio = host::asio;

namespace {
constexpr auto kTick = std::chrono::milliseconds(200);
constexpr auto kFlushInterval = std::chrono::seconds(1);
constexpr size_t kMaxArchivesAsked = 6;
}  // namespace

const char* archive_source_name(ArchiveSource s) {
  switch (s) {
    case ArchiveSource::config:
      return "config";
    case ArchiveSource::identify:
      return "identify";
    case ArchiveSource::dht:
      return "dht";
  }
  return "?";
}

SyncAgent::SyncAgent(host::Host& host, pubsub::GossipsubService& gossip, sync::SyncService& sync,
                     Discovery* discovery, SyncAgentConfig config, Hooks hooks,
                     std::vector<sync::WatermarkEntry> watermarks)
    : host_(host),
      gossip_(gossip),
      sync_(sync),
      discovery_(discovery),
      config_(std::move(config)),
      hooks_(std::move(hooks)),
      tracker_(config_.delivery),
      fetch_slots_(config_.fetch_slots),
      wake_(host.executor()) {
  tracker_.import_watermarks(watermarks, host::Clock::now());
  for (const auto& a : config_.archives) {
    auto id = a.p2p();
    if (!id) continue;
    auto peer = crypto::PeerId::from_bytes(*id);
    if (!peer) continue;
    auto& addrs = host_.peer_store()[*peer].addrs;
    if (std::find(addrs.begin(), addrs.end(), a.without_p2p()) == addrs.end())
      addrs.push_back(a.without_p2p());
    static_archives_.push_back(*peer);
  }
}

SyncAgent::~SyncAgent() {
  stop();
  *alive_ = false;
}

void SyncAgent::start() {
  if (running_) return;
  running_ = true;
  asio::co_spawn(host_.executor(), loop(), asio::detached);
}

void SyncAgent::stop() {
  if (!running_) return;
  running_ = false;
  flush();
  wake_.notify();
}

// ---- Delivery ----------------------------------------------------------------------------------

void SyncAgent::on_live(const pubsub::DeliverMessage& d) {
  offer(d.message, sync::Source::live);
}

void SyncAgent::offer(pubsub::Message message, sync::Source source) {
  apply(tracker_.offer(std::move(message), source, host::Clock::now()));
}

void SyncAgent::apply(sync::DeliveryOutput out) {
  for (auto& event : out.events) {
    if (auto* d = std::get_if<sync::Deliver>(&event)) {
      const auto& m = d->message;
      pubsub::DeliverMessage dm{pubsub::message_id(m, gossip_.router().id_fn(m.topic)), m,
                                host_.peer_id()};
      bool synced = d->source == sync::Source::synced;
      if (synced) {
        ++stats_.synced_delivered;
        ++counters_[m.topic].synced;
      }
      if (config_.archive_role) store(m);
      if (hooks_.deliver) hooks_.deliver(dm, synced);
      if (d->seqno != 0 && m.from) {
        tracker_.mark_delivered(m.topic, *m.from, d->seqno, d->seqno);
        dirty_ = true;
      }
    } else if (auto* g = std::get_if<sync::GapEvent>(&event)) {
      ++stats_.gaps;
      ++counters_[g->topic].gaps;
      spdlog::warn("sync: {}: seqnos {}-{} of {} could not be recovered", g->topic, g->from, g->to,
                   to_hex(g->origin));
      if (hooks_.gap) hooks_.gap(*g);
      tracker_.mark_delivered(g->topic, g->origin, g->from, g->to);
      dirty_ = true;
    }
  }
  for (auto& f : out.fetches) {
    if (!fetch_slots_.try_acquire(f.topic)) {
      ++stats_.fetches_deferred;  // the gap stays open and asks again after fetch_retry
      continue;
    }
    asio::co_spawn(host_.executor(), run_fetch(std::move(f)), asio::detached);
  }
}

void SyncAgent::store(const pubsub::Message& m) {
  auto seqno = pubsub::seqno_value(m);
  if (!m.from || !seqno) return;  // archives key messages by (origin, seqno)
  sync_.store(m.topic, *m.from, *seqno, pubsub::encode_message(m), sync::WallClock::now(),
              [this, alive = alive_](Result<bool> r) {
                if (!*alive) return;
                if (r) {
                  stats_.archived += *r ? 1 : 0;
                } else {
                  ++stats_.archive_failures;
                  // A full disk fails every write: one line per 10 s, not one per message.
                  static agent::LogLimiter limiter;
                  uint64_t held_back = 0;
                  if (limiter.allow(agent::LogLimiter::Clock::now(), held_back))
                    spdlog::error("sync: archive write failed: {} ({} more failures held back)",
                                  r.error().to_string(), held_back);
                }
              });
}

// A fetched message is held to the same rules as a live one before the tracker sees it.
void SyncAgent::on_fetched(const crypto::PeerId& from, sync::FetchedMessage f,
                           const std::string& topic) {
  auto& m = f.message;
  if (m.topic != topic) {
    ++stats_.synced_rejected;
    spdlog::info("sync: {} answered with a message of topic '{}' for '{}'", from.to_string(),
                 m.topic, topic);
    return;
  }
  if (auto ok = pubsub::check_message(m, gossip_.router().config().signature_policy); !ok) {
    ++stats_.synced_rejected;
    spdlog::info("sync: {} sent a message that fails its checks: {}", from.to_string(),
                 ok.error().detail);
    return;
  }
  if (m.from && *m.from == host_.peer_id().bytes()) {
    offer(std::move(m), sync::Source::synced);  // our own: no need to ask the validator
    return;
  }
  pubsub::DeliverMessage d{pubsub::message_id(m, gossip_.router().id_fn(m.topic)), std::move(m),
                           from};
  if (!hooks_.validate) {
    offer(std::move(d.message), sync::Source::synced);
    return;
  }
  auto message = std::make_shared<pubsub::Message>(d.message);
  hooks_.validate(d, [this, alive = alive_, message](pubsub::Verdict v) {
    if (!*alive) return;
    if (v == pubsub::Verdict::accept)
      offer(std::move(*message), sync::Source::synced);
    else
      ++stats_.synced_rejected;
  });
}

// ---- Fetching ----------------------------------------------------------------------------------

Task<std::vector<crypto::PeerId>> SyncAgent::archive_peers(const std::string& topic) {
  auto alive = alive_;
  auto& state = topics_[topic];
  if (discovery_ && host::Clock::now() - state.dht_looked >= config_.dht_refresh) {
    state.dht_looked = host::Clock::now();
    auto found = co_await discovery_->find_archives(topic);
    if (!*alive) co_return std::vector<crypto::PeerId>{};
    auto& st = topics_[topic];
    st.dht_archives.clear();
    for (const auto& p : found) st.dht_archives.push_back(p.id);
  }
  std::vector<crypto::PeerId> out;
  for (const auto& a : archives(topic))
    if (out.size() < kMaxArchivesAsked) out.push_back(a.peer);
  co_return out;
}

std::vector<KnownArchive> SyncAgent::archives(const std::string& topic) const {
  std::vector<KnownArchive> out;
  auto add = [&](const crypto::PeerId& p, ArchiveSource s) {
    if (p == host_.peer_id() || host_.is_blocked(p)) return;
    for (const auto& a : out)
      if (a.peer == p) return;
    out.push_back({p, s});
  };
  for (const auto& p : static_archives_) add(p, ArchiveSource::config);
  for (const auto& p : gossip_.router().topic_peers(topic)) {
    auto it = host_.peer_store().find(p);
    if (it == host_.peer_store().end()) continue;
    const auto& protocols = it->second.protocols;
    if (std::find(protocols.begin(), protocols.end(), sync::kSyncProtocol) != protocols.end())
      add(p, ArchiveSource::identify);
  }
  if (auto it = topics_.find(topic); it != topics_.end())
    for (const auto& p : it->second.dht_archives) add(p, ArchiveSource::dht);
  return out;
}

Task<void> SyncAgent::run_fetch(sync::FetchRange range) {
  auto alive = alive_;
  ++stats_.fetches;
  // The slot taken in apply() goes back however this ends.
  struct Release {
    SyncAgent* self;
    std::shared_ptr<bool> alive;
    std::string topic;
    ~Release() {
      if (*alive) self->fetch_slots_.release(topic);
    }
  } release{this, alive, range.topic};
  auto archives = co_await archive_peers(range.topic);
  if (!*alive || archives.empty()) co_return;
  auto topic = range.topic;
  // Named, not a temporary in the co_await expression: GCC 12 destroys such a converted
  // temporary twice.
  sync::FetchHandler handler = [this, alive, topic](sync::FetchedMessage f) {
    if (*alive) on_fetched(host_.peer_id(), std::move(f), topic);
  };
  auto result = co_await sync_.fetch_range(archives, range, std::move(handler));
  if (!*alive) co_return;
  if (!result.complete())
    spdlog::info("sync: {}: {} ranges of {} still missing after asking {} archives", topic,
                 result.missing.size(), to_hex(range.origin), result.archives_asked);
}

void SyncAgent::catch_up(const std::string& topic) {
  if (!config_.catch_up || !running_) return;
  auto& state = topics_[topic];
  if (state.catching_up) {
    state.again = true;
    return;
  }
  state.catching_up = true;
  asio::co_spawn(host_.executor(), run_catch_up(topic), asio::detached);
}

// Everything past our watermarks, from every archive we know of: after a partition each side's
// archives hold what the other side lacks.
Task<void> SyncAgent::run_catch_up(std::string topic) {
  auto alive = alive_;
  for (;;) {
    asio::steady_timer settle(host_.executor(), config_.settle);
    boost::system::error_code ec;
    co_await settle.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!*alive || !running_) co_return;
    topics_[topic].again = false;
    ++stats_.catch_ups;
    auto archives = co_await archive_peers(topic);
    for (const auto& archive : archives) {
      if (!*alive || !running_) co_return;
      std::vector<sync::Watermark> marks;
      for (const auto& w : tracker_.export_watermarks())
        if (w.topic == topic) marks.push_back({w.origin, w.seqno});
      sync::FetchHandler handler = [this, alive, topic, archive](sync::FetchedMessage f) {
        if (*alive) on_fetched(archive, std::move(f), topic);
      };
      auto r = co_await sync_.fetch_since(archive, topic, std::move(marks), std::move(handler));
      if (!*alive) co_return;
      if (!r)
        spdlog::info("sync: catch-up of {} from {}: {}", topic, archive.to_string(),
                     r.error().to_string());
      else if (r->messages > 0)
        spdlog::info("sync: caught up {} messages of {} from {}", r->messages, topic,
                     archive.to_string());
    }
    auto& state = topics_[topic];
    if (!state.again) {
      state.catching_up = false;
      co_return;
    }
  }
}

void SyncAgent::on_listener(const std::string& topic, bool ordered_listeners_now) {
  apply(tracker_.set_ordered(topic, ordered_listeners_now));
  auto& state = topics_[topic];
  if (!state.listened) {
    state.listened = true;
    catch_up(topic);
  }
}

// ---- Timer -------------------------------------------------------------------------------------

Task<void> SyncAgent::loop() {
  auto alive = alive_;
  while (*alive && running_) {
    tick();
    auto next = host::Clock::now() + kTick;
    if (auto d = tracker_.next_deadline(); d && *d < next) next = *d;
    co_await wake_.wait_until(next);
  }
}

void SyncAgent::tick() {
  auto now = host::Clock::now();
  if (auto d = tracker_.next_deadline(); d && *d <= now) apply(tracker_.on_timer(now));
  // A peer we did not have in a topic: start-up, or the end of a partition. Catch up.
  for (const auto& topic : gossip_.router().topics()) {
    auto peers = gossip_.router().topic_peers(topic);
    std::set<crypto::PeerId> current(peers.begin(), peers.end());
    auto& state = topics_[topic];
    bool gained = std::any_of(current.begin(), current.end(),
                              [&](const crypto::PeerId& p) { return !state.peers.contains(p); });
    state.peers = std::move(current);
    if (gained) catch_up(topic);
  }
  if (dirty_ && now >= next_flush_) flush();
  if (hooks_.prune && now >= next_prune_) {
    if (next_prune_ != host::Clock::time_point{}) hooks_.prune();
    next_prune_ = now + config_.prune_interval;
  }
}

void SyncAgent::flush() {
  if (!dirty_) return;
  dirty_ = false;
  next_flush_ = host::Clock::now() + kFlushInterval;
  if (hooks_.save_watermarks) hooks_.save_watermarks(tracker_.export_watermarks());
}

}  // namespace p2pmq::cli
