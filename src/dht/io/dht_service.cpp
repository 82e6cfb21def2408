#include "dht/io/dht_service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace p2pmq::dht {

using host::Task;
namespace asio = host::asio;

namespace {

// An inbound stream with no request for this long is closed (go-libp2p-kad-dht: 1 min idle).
constexpr auto kInboundIdle = std::chrono::seconds(60);

// Resets a stream when its deadline passes; extend() moves the deadline, cancel() disarms it.
class StreamDeadline {
 public:
  StreamDeadline(asio::any_io_executor ex, std::weak_ptr<host::Stream> stream,
                 host::Clock::time_point at)
      : state_(std::make_shared<State>(ex, at)) {
    asio::co_spawn(
        ex,
        [state = state_, stream]() -> Task<void> {
          while (!state->done) {
            boost::system::error_code ec;
            co_await state->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (state->done) break;
            if (host::Clock::now() < state->timer.expiry()) continue;  // moved by extend()
            state->fired = true;
            if (auto s = stream.lock()) s->reset();
            break;
          }
        },
        asio::detached);
  }
  ~StreamDeadline() { cancel(); }
  StreamDeadline(const StreamDeadline&) = delete;
  StreamDeadline& operator=(const StreamDeadline&) = delete;

  void extend(host::Clock::time_point at) { state_->timer.expires_at(at); }
  void cancel() {
    state_->done = true;
    state_->timer.cancel();
  }
  bool fired() const { return state_->fired; }

 private:
  struct State {
    State(asio::any_io_executor ex, host::Clock::time_point at) : timer(ex, at) {}
    asio::steady_timer timer;
    bool done = false;
    bool fired = false;
  };
  std::shared_ptr<State> state_;
};

bool lists(const std::vector<std::string>& protocols, const std::string& protocol) {
  return std::find(protocols.begin(), protocols.end(), protocol) != protocols.end();
}

// Only TCP addresses are any use to this host; /p2p/ is implied by the peer id.
std::vector<Multiaddr> dialable(const std::vector<Multiaddr>& addrs) {
  std::vector<Multiaddr> out;
  for (const auto& a : addrs)
    if (a.tcp_target()) out.push_back(a.without_p2p());
  return out;
}

}  // namespace

struct DhtService::Run {
  Run(Query q, asio::any_io_executor ex) : query(std::move(q)), wake(ex) {}
  Query query;
  host::Signal wake;
  bool finished = false;
  std::map<PeerId, size_t> depth;  // round in which each candidate was learned
};

DhtService::DhtService(host::Host& host, protocols::Identify& identify, DhtConfig config,
                       std::vector<Multiaddr> bootstrappers)
    : host_(host),
      identify_(identify),
      dht_(host.peer_id(), std::move(config)),
      bootstrappers_(std::move(bootstrappers)),
      protocol_(dht_.protocol_id()),
      timer_wake_(host.executor()) {}

DhtService::~DhtService() {
  stop();
  *alive_ = false;
}

void DhtService::start() {
  if (running_) return;
  running_ = true;
  if (dht_.mode() != Mode::client) {
    host_.handle(
        protocol_,
        [this, alive = alive_](std::shared_ptr<host::Stream> s) -> Task<void> {
          if (!*alive) co_return;
          co_await serve(std::move(s));
        },
        "dht");
  }
  identify_.on_identified([this, alive = alive_](const protocols::IdentifyInfo& info) {
    if (*alive && running_) on_identified(info);
  });
  // Peers identified before we started.
  for (const auto& [peer, info] : host_.peer_store())
    if (lists(info.protocols, protocol_) && host_.connection_to(peer)) peer_alive(peer, info.addrs);
  asio::co_spawn(
      host_.executor(),
      [this, alive = alive_]() -> Task<void> {
        co_await bootstrap();
        if (!*alive) co_return;
        bootstrapped_ = true;
        for (auto& f : bootstrapped_handlers_) f();
        co_await timer_loop();
      },
      asio::detached);
}

void DhtService::stop() {
  if (!running_) return;
  running_ = false;
  if (dht_.mode() != Mode::client) host_.unhandle(protocol_);
  timer_wake_.notify();
}

// ---- Peers -----------------------------------------------------------------------------------

void DhtService::on_identified(const protocols::IdentifyInfo& info) {
  if (info.peer == host_.peer_id()) return;
  if (lists(info.protocols, protocol_)) {
    peer_alive(info.peer, info.listen_addrs);
  } else if (dht_.table().contains(info.peer)) {
    // It stopped serving the DHT (identify push): client mode now.
    dht_.table().remove(info.peer);
  }
}

void DhtService::peer_alive(const PeerId& peer, std::vector<Multiaddr> addrs) {
  auto outcome = dht_.on_peer_alive(peer, dialable(addrs), now());
  if (outcome.probe && running_) {
    asio::co_spawn(
        host_.executor(),
        [this, alive = alive_, p = *outcome.probe]() -> Task<void> {
          if (*alive) co_await probe(p);
        },
        asio::detached);
  }
}

// The least recently seen peer of a full bucket: still there? (spec: replace only dead peers)
Task<void> DhtService::probe(PeerId peer) {
  KadMessage ping;
  ping.type = MessageType::find_node;
  ping.key = host_.peer_id().bytes();
  auto answer = co_await send(peer, ping, true);
  if (!running_) co_return;
  if (answer)
    peer_alive(peer, addrs_of(peer));
  else
    dht_.on_peer_failed(peer);
}

void DhtService::remember_addrs(const KadPeer& peer) {
  if (peer.id == host_.peer_id()) return;
  auto addrs = dialable(peer.addrs);
  if (addrs.empty()) return;
  if (addrs.size() > dht_.config().limits.max_addrs_per_peer)
    addrs.resize(dht_.config().limits.max_addrs_per_peer);
  // The host filters (no unspecified, link-local, foreign loopback), bounds and ages them.
  host_.add_addrs(peer.id, addrs);
}

std::vector<Multiaddr> DhtService::addrs_of(const PeerId& peer) const {
  if (peer == host_.peer_id()) return host_.advertised_addrs();
  auto it = host_.peer_store().find(peer);
  std::vector<Multiaddr> addrs;
  if (it != host_.peer_store().end()) addrs = dialable(it->second.addrs);
  if (addrs.empty())
    if (auto conn = host_.connection_to(peer); conn && conn->info().outbound)
      addrs.push_back(conn->info().remote_addr);
  return addrs;
}

// Peers in answers carry the addresses we know (the routing table's, the peer store's, ours).
void DhtService::fill_addrs(std::vector<KadPeer>& peers) const {
  for (auto& p : peers) {
    if (p.addrs.empty()) p.addrs = addrs_of(p.id);
    if (host_.connection_to(p.id)) p.connection = ConnectionType::connected;
  }
}

// ---- Serving ---------------------------------------------------------------------------------

Task<void> DhtService::serve(std::shared_ptr<host::Stream> stream) {
  auto peer = stream->remote_peer();
  // Per-IP provider limits and address filters key on where the connection comes from.
  RequestSource source;
  if (auto conn = stream->connection()) source = request_source(conn->info().remote_addr);
  StreamDeadline idle(host_.executor(), stream, host::Clock::now() + kInboundIdle);
  MessageReader reader(dht_.config().limits);
  Bytes buffer(16 * 1024);
  host::BufferAccount account(*stream);  // the partial request is held for this peer
  for (;;) {
    auto n = co_await stream->read_some(buffer);
    if (!n || *n == 0 || !running_) break;
    if (auto r = account.update(buffer.size() + reader.buffered() + *n); !r) {
      ++stats_.requests_refused;
      stream->reset();
      co_return;
    }
    reader.feed(BytesView(buffer.data(), *n));
    for (;;) {
      auto request = reader.next();
      if (!request) {
        ++stats_.requests_refused;
        spdlog::info("dht: dropping stream from {}: {}", peer.to_string(),
                     request.error().to_string());
        stream->reset();
        co_return;
      }
      if (!*request) break;
      ++stats_.requests_served;
      idle.extend(host::Clock::now() + kInboundIdle);
      // Kad records are stamped on receipt (go does the same): the sender's timeReceived, if
      // any, is not ours to keep.
      if ((*request)->type == MessageType::put_value && (*request)->record)
        (*request)->record->time_received = format_time_received(std::chrono::system_clock::now());
      auto answer = dht_.handle_request(peer, **request, now(), source);
      if (!answer) {
        ++stats_.requests_refused;
        spdlog::debug("dht: refused {} from {}: {}", message_type_name((*request)->type),
                      peer.to_string(), answer.error().to_string());
        stream->reset();
        co_return;
      }
      if (!*answer) continue;  // ADD_PROVIDER: nothing to say
      auto& reply = **answer;
      fill_addrs(reply.closer_peers);
      fill_addrs(reply.provider_peers);
      Bytes frame;
      append_framed(frame, reply);
      auto w = co_await stream->write(frame);
      if (!w) co_return;
    }
  }
  stream->close_write();
}

// ---- Requests --------------------------------------------------------------------------------

Task<Result<std::optional<KadMessage>>> DhtService::send(const PeerId& peer,
                                                         const KadMessage& request,
                                                         bool expect_answer) {
  ++stats_.requests_sent;
  auto conn = co_await host_.connect(peer);
  if (!conn) {
    ++stats_.request_failures;
    co_return tl::unexpected(conn.error());
  }
  const std::vector<std::string> protocols{protocol_};
  auto stream = co_await host_.new_stream(*conn, protocols);
  if (!stream) {
    ++stats_.request_failures;
    co_return tl::unexpected(stream.error());
  }
  auto s = *stream;
  StreamDeadline deadline(host_.executor(), s,
                          host::Clock::now() + dht_.config().query.request_timeout);
  Bytes frame;
  append_framed(frame, request);
  if (auto w = co_await s->write(frame); !w) {
    ++stats_.request_failures;
    co_return tl::unexpected(w.error());
  }
  if (!expect_answer) {
    s->close_write();
    co_return std::optional<KadMessage>{};
  }
  MessageReader reader(dht_.config().limits);
  Bytes buffer(16 * 1024);
  for (;;) {
    auto n = co_await s->read_some(buffer);
    if (!n || *n == 0) {
      ++stats_.request_failures;
      if (deadline.fired()) co_return fail(Errc::timeout, "kad request timed out");
      if (!n) co_return tl::unexpected(n.error());
      co_return fail(Errc::closed, "kad stream closed before the answer");
    }
    reader.feed(BytesView(buffer.data(), *n));
    auto answer = reader.next();
    if (!answer) {
      ++stats_.request_failures;
      spdlog::info("dht: bad answer from {}: {}", peer.to_string(), answer.error().to_string());
      s->reset();
      co_return tl::unexpected(answer.error());
    }
    if (*answer) {
      s->close_write();
      co_return std::optional<KadMessage>(std::move(**answer));
    }
  }
}

Task<LookupResult> DhtService::drive(Query query) {
  ++stats_.queries;
  auto started = host::Clock::now();
  auto run = std::make_shared<Run>(std::move(query), host_.executor());
  auto alive = alive_;
  for (;;) {
    for (auto& peer : run->query.poll(now())) {
      run->depth.emplace(peer.id, 0);  // seeds; learned peers already have theirs
      asio::co_spawn(host_.executor(), ask(run, std::move(peer)), asio::detached);
    }
    if (run->query.done() || !*alive) break;
    auto next = run->query.next_deadline();
    co_await run->wake.wait_until(next ? *next : host::Clock::now() + std::chrono::seconds(1));
    if (!*alive) break;
    run->query.on_timer(now());
  }
  run->finished = true;
  LookupResult result;
  result.state = run->query.state();
  result.closest = run->query.closest();
  result.providers = run->query.providers();
  result.stats = run->query.stats();
  if (!result.closest.empty()) {
    auto it = run->depth.find(result.closest.front().id);
    if (it != run->depth.end()) result.hops = it->second + 1;
  }
  result.elapsed = host::Clock::now() - started;
  if (*alive) stats_.query_seconds.observe(std::chrono::duration<double>(result.elapsed).count());
  if (*alive) fill_addrs(result.closest);
  co_return result;
}

Task<void> DhtService::ask(std::shared_ptr<Run> run, KadPeer peer) {
  auto alive = alive_;
  remember_addrs(peer);
  auto answer = co_await send(peer.id, run->query.request(), true);
  if (!*alive || run->finished) co_return;
  if (answer && *answer) {
    size_t depth = run->depth[peer.id];
    for (const auto& p : (*answer)->closer_peers) {
      remember_addrs(p);
      run->depth.emplace(p.id, depth + 1);
    }
    for (const auto& p : (*answer)->provider_peers) remember_addrs(p);
    run->query.on_response(peer.id, **answer, now());
    peer_alive(peer.id, peer.addrs.empty() ? addrs_of(peer.id) : peer.addrs);
  } else {
    spdlog::debug("dht: {} failed: {}", peer.id.to_string(),
                  answer ? std::string("no answer") : answer.error().to_string());
    run->query.on_failure(peer.id, now());
    dht_.on_peer_failed(peer.id);
  }
  run->wake.notify();
}

Task<LookupResult> DhtService::lookup(Bytes key) {
  co_return co_await drive(dht_.find_node(key, now()));
}

Task<std::optional<KadPeer>> DhtService::find_peer(const PeerId& peer) {
  if (host_.connection_to(peer)) {
    auto addrs = addrs_of(peer);
    if (!addrs.empty()) co_return KadPeer{peer, addrs, ConnectionType::connected};
  }
  auto result = co_await lookup(peer.bytes());
  auto addrs = addrs_of(peer);
  if (addrs.empty()) co_return std::nullopt;
  co_return KadPeer{peer, addrs, ConnectionType::can_connect};
}

Task<std::vector<KadPeer>> DhtService::find_providers(Bytes key, size_t wanted) {
  std::vector<KadPeer> found;
  if (dht_.mode() != Mode::client) found = dht_.stored_providers(key, now(), SIZE_MAX);
  if (wanted == 0 || found.size() < wanted) {
    auto result = co_await drive(dht_.get_providers(key, now(), wanted));
    for (auto& p : result.providers) {
      bool known =
          std::any_of(found.begin(), found.end(), [&](const KadPeer& f) { return f.id == p.id; });
      if (!known) found.push_back(std::move(p));
    }
  }
  for (const auto& p : found) remember_addrs(p);
  fill_addrs(found);
  co_return found;
}

Task<size_t> DhtService::provide(Bytes key) {
  auto alive = alive_;
  if (dht_.mode() != Mode::client) (void)dht_.providers().add(key, host_.peer_id(), {}, now());
  auto result = co_await drive(dht_.find_node(key, now()));
  if (!*alive) co_return 0;
  auto message = dht_.add_provider_message(key, host_.advertised_addrs());
  size_t sent = 0;
  for (const auto& p : result.closest) {
    auto r = co_await send(p.id, message, false);
    if (!*alive) co_return sent;
    if (r) ++sent;
  }
  spdlog::debug("dht: provided {} to {} peers", to_hex(key), sent);
  co_return sent;
}

Result<void> DhtService::start_providing(const Bytes& key) {
  auto r = dht_.start_providing(key, now());
  if (r) timer_wake_.notify();  // due now: the timer loop announces it
  return r;
}

void DhtService::stop_providing(const Bytes& key) {
  dht_.stop_providing(key);
}

// ---- Bootstrap and maintenance ----------------------------------------------------------------

Task<void> DhtService::bootstrap() {
  if (bootstrapping_) co_return;
  bootstrapping_ = true;
  auto alive = alive_;
  auto pending = std::make_shared<size_t>(bootstrappers_.size());
  auto done = std::make_shared<host::Signal>(host_.executor());
  for (const auto& addr : bootstrappers_) {
    asio::co_spawn(
        host_.executor(),
        [this, alive, addr, pending, done]() -> Task<void> {
          auto conn = co_await host_.connect(addr);
          if (*alive && conn) {
            // Identify tells whether it serves the DHT; the listener adds it to the table.
            auto info = co_await identify_.identify(*conn);
            if (!info && *alive)
              spdlog::warn("dht: bootstrapper {}: identify: {}", addr.to_string(),
                           info.error().to_string());
          } else if (*alive) {
            spdlog::warn("dht: bootstrapper {}: {}", addr.to_string(), conn.error().to_string());
          }
          --*pending;
          done->notify();
        },
        asio::detached);
  }
  auto limit = host::Clock::now() + dht_.config().query.request_timeout * 2;
  while (*pending > 0 && host::Clock::now() < limit) {
    co_await done->wait_until(limit);
    if (!*alive) co_return;
  }
  bootstrapping_ = false;
}

void DhtService::run_maintenance() {
  auto m = dht_.on_timer(now());
  auto ex = host_.executor();
  if (m.dial_bootstrappers && !bootstrappers_.empty())
    asio::co_spawn(
        ex,
        [this, alive = alive_]() -> Task<void> {
          co_await bootstrap();
          if (*alive && dht_.table().size() > 0) (void)co_await lookup(host_.peer_id().bytes());
        },
        asio::detached);
  for (auto& key : m.lookups)
    asio::co_spawn(
        ex,
        [this, alive = alive_, key = std::move(key)]() -> Task<void> {
          if (*alive) (void)co_await lookup(key);
        },
        asio::detached);
  for (auto& key : m.provides)
    asio::co_spawn(
        ex,
        [this, alive = alive_, key = std::move(key)]() -> Task<void> {
          if (*alive) (void)co_await provide(key);
        },
        asio::detached);
}

Task<void> DhtService::timer_loop() {
  auto alive = alive_;
  while (*alive && running_) {
    auto next = dht_.next_deadline();
    if (!next || now() >= *next) {
      run_maintenance();
      next = dht_.next_deadline();
      // Never spin: whatever the core says, wait a little between rounds.
      auto floor = now() + std::chrono::milliseconds(100);
      if (!next || *next < floor) next = floor;
    }
    co_await timer_wake_.wait_until(*next);
  }
}

}  // namespace p2pmq::dht
