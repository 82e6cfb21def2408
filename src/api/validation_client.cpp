#include "api/validation_client.hpp"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "api/convert.hpp"
#include "api/held_messages.hpp"
#include "p2pmq/v1/p2pmq.grpc.pb.h"

namespace p2pmq::api {
namespace {

using Clock = std::chrono::steady_clock;

class Stream;

struct Endpoint {
  std::string target;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::MsgValidation::Stub> stub;
  Stream* stream = nullptr;  // the open channel, if any
  Clock::time_point next_attempt;
  std::chrono::milliseconds backoff{0};
  bool opened_before = false;
};

struct Pending {
  v1::Message message;
  std::function<void(Verdict)> done;
  Clock::time_point deadline;
  Stream* stream = nullptr;
  std::string source;  // the peer it came from
  size_t bytes = 0;    // footprint, counted in pending_bytes
};

using Done = std::pair<std::function<void(Verdict)>, Verdict>;

}  // namespace

// All state sits behind one mutex. gRPC never runs a reaction inline in StartWrite, StartRead,
// TryCancel or RemoveHold (client reactions are can_inline=false), so they are called with the
// mutex held, which keeps every stream's lifetime obvious. `done` callbacks run unlocked.
struct ValidationClient::Impl {
  explicit Impl(ValidationConfig c) : config(std::move(c)) {}

  Verdict policy() const {
    return config.no_validator_policy == ValidationConfig::Policy::accept ? Verdict::accept
                                                                          : Verdict::ignore;
  }
  Stream* pick_locked();
  // Every removal from `pending` goes through here, so the byte and per-peer counts stay exact.
  void erase_locked(std::map<uint64_t, Pending>::iterator it);
  void open_locked(size_t endpoint);
  void run_timer();

  const ValidationConfig config;
  mutable std::mutex mu;
  std::condition_variable cv;  // the timer's wake-ups, and the destructor waiting for streams
  std::vector<Endpoint> endpoints;
  // Ordered by request number, which (with one timeout for all) is also deadline order.
  std::map<uint64_t, Pending> pending;
  size_t pending_bytes = 0;
  std::unordered_map<std::string, size_t> pending_per_source;
  uint64_t next_request = 1;
  size_t round_robin = 0;
  size_t live_streams = 0;
  uint64_t unset_logged = 0;
  bool stopping = false;
  ValidationCounters counters;
  std::thread timer;
};

namespace {

// One ValidationChannel. Holds a gRPC hold while it may still write, so the reactor outlives
// any StartWrite; deletes itself in OnDone.
class Stream final : public grpc::ClientBidiReactor<v1::Message, v1::ValidatedMessage> {
 public:
  using Impl = ValidationClient::Impl;
  Stream(Impl& impl, size_t endpoint) : impl_(impl), endpoint_(endpoint) {}

  void start_locked(v1::MsgValidation::Stub& stub) {
    // Waits for the channel to connect instead of failing: the channel redials with its own
    // backoff (initial..max of the config) and the stream starts as soon as it is up.
    ctx_.set_wait_for_ready(true);
    stub.async()->ValidationChannel(&ctx_, this);
    AddHold();
    StartRead(&reply_);
    StartCall();
  }

  // Usable for new messages: not closing and the transport is up.
  bool ready_locked() const {
    return !closing_ && impl_.endpoints[endpoint_].channel->GetState(false) == GRPC_CHANNEL_READY;
  }

  void send_locked(uint64_t request, const std::string& id) {
    by_id_[id].push_back(request);
    out_queue_.push_back(request);
    if (!writing_ && !closing_) write_next_locked();
  }

  // The request timed out: a late reply must not match it.
  void forget_locked(uint64_t request, const std::string& id) {
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return;
    std::erase(it->second, request);
    if (it->second.empty()) by_id_.erase(it);
  }

  void cancel_locked() { ctx_.TryCancel(); }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(impl_.mu);
    writing_ = false;
    if (!ok) closing_ = true;
    if (closing_) {
      release_locked();
    } else {
      write_next_locked();
    }
  }

  void OnReadDone(bool ok) override {
    std::vector<Done> dones;
    {
      std::lock_guard lock(impl_.mu);
      if (!ok) {
        closing_ = true;
        release_locked();
        return;
      }
      auto& ep = impl_.endpoints[endpoint_];
      if (!got_reply_) {
        got_reply_ = true;
        ep.backoff = impl_.config.reconnect_initial;
      }
      bool unset = false;
      Verdict v = from_proto(reply_.verdict(), unset);
      auto it = by_id_.find(reply_.id());
      if (it == by_id_.end()) {
        spdlog::debug("validator {}: a verdict for an unknown or timed-out message", ep.target);
      } else {
        uint64_t request = it->second.front();
        it->second.pop_front();
        if (it->second.empty()) by_id_.erase(it);
        auto p = impl_.pending.find(request);
        if (p != impl_.pending.end()) {
          dones.emplace_back(std::move(p->second.done), v);
          impl_.erase_locked(p);
          auto& c = impl_.counters;
          if (unset) {
            ++c.unset;
            if (impl_.unset_logged++ % 1000 == 0) {
              spdlog::warn("validator {} sent VERDICT_UNSPECIFIED ({}): treated as IGNORE",
                           ep.target, static_cast<int>(reply_.verdict()));
            }
          }
          if (v == Verdict::accept) ++c.accepted;
          if (v == Verdict::reject) ++c.rejected;
          if (v == Verdict::ignore) ++c.ignored;
        }
      }
      StartRead(&reply_);
    }
    for (auto& [done, v] : dones) done(v);
  }

  void OnDone(const grpc::Status& status) override {
    std::vector<Done> dones;
    {
      std::lock_guard lock(impl_.mu);
      auto& ep = impl_.endpoints[endpoint_];
      ep.stream = nullptr;
      if (!impl_.stopping) {
        spdlog::warn("validator {}: ValidationChannel closed ({}: {}); reopening in {} ms",
                     ep.target, static_cast<int>(status.error_code()), status.error_message(),
                     ep.backoff.count());
        ep.next_attempt = Clock::now() + ep.backoff;
        ep.backoff = std::min(ep.backoff * 2, impl_.config.reconnect_max);
        // What this channel still owed goes to another validator, or gets the policy.
        for (auto& [id, requests] : by_id_) {
          for (auto request : requests) {
            auto p = impl_.pending.find(request);
            if (p == impl_.pending.end()) continue;
            if (Stream* other = impl_.pick_locked()) {
              p->second.stream = other;
              other->send_locked(request, id);
            } else {
              ++impl_.counters.no_validator;
              dones.emplace_back(std::move(p->second.done), impl_.policy());
              impl_.erase_locked(p);
            }
          }
        }
      }
    }
    for (auto& [done, v] : dones) done(v);
    // The context holds a channel reference: drop it while the client still holds its own, so
    // the last reference to a channel never goes inside one of the channel's callbacks (gRPC
    // 1.51 double-frees the channel's callback queue then).
    Impl& impl = impl_;
    delete this;
    std::lock_guard lock(impl.mu);
    --impl.live_streams;
    impl.cv.notify_all();
    // The client may be destroyed as soon as the mutex is released.
  }

 private:
  void write_next_locked() {
    while (!out_queue_.empty()) {
      uint64_t request = out_queue_.front();
      out_queue_.pop_front();
      auto p = impl_.pending.find(request);
      if (p == impl_.pending.end() || p->second.stream != this) continue;  // timed out, moved
      out_ = p->second.message;
      writing_ = true;
      ++impl_.counters.sent;
      StartWrite(&out_);
      return;
    }
  }

  void release_locked() {
    if (!writing_ && !released_) {
      released_ = true;
      RemoveHold();
    }
  }

  Impl& impl_;
  const size_t endpoint_;
  grpc::ClientContext ctx_;
  v1::Message out_;
  v1::ValidatedMessage reply_;
  std::deque<uint64_t> out_queue_;
  std::unordered_map<std::string, std::deque<uint64_t>> by_id_;  // message id → requests
  bool writing_ = false;
  bool closing_ = false;   // reads or writes failed: no new messages
  bool released_ = false;  // the hold is gone
  bool got_reply_ = false;
};

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::invalid_input, "cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

Stream* ValidationClient::Impl::pick_locked() {
  for (size_t i = 0; i < endpoints.size(); ++i) {
    auto& ep = endpoints[(round_robin + i) % endpoints.size()];
    if (ep.stream && ep.stream->ready_locked()) {
      round_robin = (round_robin + i + 1) % endpoints.size();
      return ep.stream;
    }
  }
  return nullptr;
}

void ValidationClient::Impl::erase_locked(std::map<uint64_t, Pending>::iterator it) {
  pending_bytes -= it->second.bytes;
  if (!it->second.source.empty()) {
    auto s = pending_per_source.find(it->second.source);
    if (--s->second == 0) pending_per_source.erase(s);
  }
  pending.erase(it);
}

void ValidationClient::Impl::open_locked(size_t endpoint) {
  auto& ep = endpoints[endpoint];
  if (ep.opened_before) ++counters.reconnects;
  ep.opened_before = true;
  ep.stream = new Stream(*this, endpoint);
  ++live_streams;
  ep.stream->start_locked(*ep.stub);
}

void ValidationClient::Impl::run_timer() {
  std::unique_lock lock(mu);
  while (!stopping) {
    auto now = Clock::now();
    std::vector<Done> expired;
    while (!pending.empty() && pending.begin()->second.deadline <= now) {
      auto& [request, p] = *pending.begin();
      if (p.stream) static_cast<Stream*>(p.stream)->forget_locked(request, p.message.id());
      expired.emplace_back(std::move(p.done), policy());
      ++counters.timeouts;
      erase_locked(pending.begin());
    }
    if (!expired.empty()) {
      lock.unlock();
      for (auto& [done, v] : expired) done(v);
      lock.lock();
      continue;
    }
    auto wake = now + std::chrono::hours(1);
    if (!pending.empty()) wake = std::min(wake, pending.begin()->second.deadline);
    for (size_t i = 0; i < endpoints.size(); ++i) {
      if (endpoints[i].stream) continue;
      if (endpoints[i].next_attempt <= now) {
        open_locked(i);
      } else {
        wake = std::min(wake, endpoints[i].next_attempt);
      }
    }
    cv.wait_until(lock, wake);
  }
}

ValidationClient::ValidationClient(std::vector<std::string> targets, ValidationConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {
  auto& c = impl_->config;
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!c.tls_ca_file.empty()) {
    auto ca = read_file(c.tls_ca_file);
    if (!ca) throw std::runtime_error("validation: " + ca.error().message);
    grpc::SslCredentialsOptions opts;
    opts.pem_root_certs = *ca;
    creds = grpc::SslCredentials(opts);
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, static_cast<int>(c.reconnect_initial.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(c.reconnect_max.count()));
  for (auto& t : targets) {
    Endpoint ep;
    ep.target = t;
    ep.channel = grpc::CreateCustomChannel(t, creds, args);
    ep.stub = v1::MsgValidation::NewStub(ep.channel);
    ep.backoff = c.reconnect_initial;
    ep.next_attempt = Clock::now();
    impl_->endpoints.push_back(std::move(ep));
  }
  impl_->timer = std::thread([impl = impl_.get()] { impl->run_timer(); });
}

ValidationClient::~ValidationClient() {
  std::vector<Done> dones;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    for (auto& [_, p] : impl_->pending) {
      ++impl_->counters.no_validator;
      dones.emplace_back(std::move(p.done), impl_->policy());
    }
    impl_->pending.clear();
    impl_->pending_bytes = 0;
    impl_->pending_per_source.clear();
    for (auto& ep : impl_->endpoints) {
      if (ep.stream) ep.stream->cancel_locked();
    }
    impl_->cv.notify_all();
  }
  for (auto& [done, v] : dones) done(v);
  impl_->timer.join();
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait(lock, [&] { return impl_->live_streams == 0; });
}

void ValidationClient::validate(const AgentMessage& message, std::function<void(Verdict)> done,
                                const std::string& source) {
  v1::Message m;
  to_proto(message, m);
  Verdict fallback = impl_->policy();
  size_t bytes = footprint(message);
  {
    std::lock_guard lock(impl_->mu);
    auto& c = impl_->counters;
    const auto& config = impl_->config;
    Stream* s = nullptr;
    auto per_source = impl_->pending_per_source.find(source);
    if (impl_->pending.size() >= config.max_pending ||
        impl_->pending_bytes + bytes > config.max_pending_bytes) {
      // Overload is never the no-validator policy: with `accept` a flood would be forwarded
      // unvalidated.
      ++c.overloaded;
      fallback = Verdict::ignore;
    } else if (!source.empty() && per_source != impl_->pending_per_source.end() &&
               per_source->second >= config.max_pending_per_peer) {
      ++c.over_peer_share;
      fallback = Verdict::ignore;
    } else if (impl_->stopping || !(s = impl_->pick_locked())) {
      ++c.no_validator;
    } else {
      uint64_t request = impl_->next_request++;
      auto id = m.id();
      impl_->pending.emplace(request, Pending{std::move(m), std::move(done),
                                              Clock::now() + config.timeout, s, source, bytes});
      impl_->pending_bytes += bytes;
      if (!source.empty()) ++impl_->pending_per_source[source];
      if (impl_->pending.size() == 1) impl_->cv.notify_all();  // a deadline to watch
      s->send_locked(request, id);
      return;
    }
  }
  done(fallback);
}

bool ValidationClient::connected() const {
  return connected_count() > 0;
}

size_t ValidationClient::connected_count() const {
  std::lock_guard lock(impl_->mu);
  size_t n = 0;
  for (auto& ep : impl_->endpoints) n += ep.stream && ep.stream->ready_locked();
  return n;
}

ValidationCounters ValidationClient::counters() const {
  std::lock_guard lock(impl_->mu);
  return impl_->counters;
}

}  // namespace p2pmq::api
