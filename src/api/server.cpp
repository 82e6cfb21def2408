#include "api/server.hpp"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <variant>

#include "api/convert.hpp"
#include "p2pmq/v1/p2pmq.grpc.pb.h"

namespace p2pmq::api {
namespace {

// How long stop() lets in-flight unary calls finish before cancelling them.
constexpr auto kShutdownGrace = std::chrono::seconds(2);
// Room for the protobuf and gRPC framing around the largest payload.
constexpr size_t kFramingHeadroom = 64 * 1024;

std::optional<grpc::Status> check_topic(const std::string& topic, const ApiConfig& config) {
  if (topic.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty topic");
  if (topic.size() > config.max_topic_length) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        fmt::format("topic is {} bytes, the limit is {}", topic.size(), config.max_topic_length));
  }
  return std::nullopt;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::invalid_input, "cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A Listen call refused before it started.
class FailedListen final : public grpc::ServerWriteReactor<v1::ListenEvent> {
 public:
  explicit FailedListen(grpc::Status s) { Finish(std::move(s)); }
  void OnDone() override { delete this; }
};

}  // namespace

namespace {

// One Listen stream. The agent's io thread pushes messages (push); gRPC threads run the
// reactions. One mutex guards the buffer and the write state; gRPC never runs a reaction inline
// in StartWrite/Finish (can_inline=false), so calling them under the mutex is safe, and it makes
// the lifetime simple: nothing calls the reactor once `finished_` is set, and gRPC calls OnDone
// only after Finish.
//
// Flow control: at most one write is in flight; the rest waits in `queue_`, whose messages are
// bounded by count and bytes. On overflow the oldest message is dropped and counted per topic;
// the counts go out as Missed events before the next message. Gap events are never dropped:
// they do not count against the buffer, and a stream with more than `capacity` of them waiting
// is ended with RESOURCE_EXHAUSTED instead.
class ListenReactor;

// The open Listen streams, so stop() can end them at once.
struct ListenRegistry {
  std::atomic<size_t> open{0};  // counts reactors from admission to OnDone
  std::mutex mu;
  bool shutting_down = false;
  std::map<ListenReactor*, std::weak_ptr<ListenReactor>> live;
};

class ListenReactor final : public grpc::ServerWriteReactor<v1::ListenEvent> {
 public:
  ListenReactor(Backend& backend, ListenRegistry& registry, size_t capacity, size_t max_bytes)
      : backend_(backend), registry_(registry), capacity_(capacity), max_bytes_(max_bytes) {}

  // Registers the listeners and sends the response headers once they are in place. Returns
  // the reactor for gRPC; it owns itself until OnDone.
  static ListenReactor* open(Backend& backend, ListenRegistry& registry,
                             const std::vector<std::string>& topics, ListenOptions options,
                             size_t capacity, size_t max_bytes) {
    auto r = std::make_shared<ListenReactor>(backend, registry, capacity, max_bytes);
    r->self_ = r;
    {
      std::lock_guard lock(registry.mu);
      registry.live.emplace(r.get(), r);
    }
    std::weak_ptr<ListenReactor> weak = r;
    for (const auto& t : topics) {
      r->handles_.push_back(backend.add_listener(t, options, [weak](const ListenItem& item) {
        if (auto s = weak.lock()) s->push(item);
      }));
    }
    {
      std::lock_guard lock(r->mu_);
      // Holds the write slot until the headers are out, so messages follow them.
      r->writing_ = true;
      r->StartSendInitialMetadata();
    }
    return r.get();
  }

  void OnSendInitialMetadataDone(bool ok) override { op_done(ok); }
  void OnWriteDone(bool ok) override { op_done(ok); }

  void OnCancel() override { end(grpc::Status::CANCELLED); }

  // Ends the stream with `s` as soon as no write is in flight.
  void end(grpc::Status s) {
    std::lock_guard lock(mu_);
    end_locked(std::move(s));
  }

  void OnDone() override {
    for (auto h : handles_) backend_.remove_listener(h);
    {
      std::lock_guard lock(registry_.mu);
      registry_.live.erase(this);
    }
    registry_.open.fetch_sub(1);
    auto self = std::move(self_);  // may destroy this on return
  }

  void push(const ListenItem& item) {
    std::lock_guard lock(mu_);
    if (finished_ || end_status_) return;
    queue_.push_back(item);
    if (const auto* m = std::get_if<AgentMessage>(&item)) {
      ++messages_;
      bytes_ += m->data.size();
      while (messages_ > capacity_ || (bytes_ > max_bytes_ && messages_ > 1)) {
        drop_oldest_message_locked();
      }
    } else if (++gaps_ > capacity_) {
      end_locked({grpc::StatusCode::RESOURCE_EXHAUSTED,
                  fmt::format("the client reads too slowly: {} Gap events are waiting", gaps_)});
      return;
    }
    if (!writing_) write_next_locked();
  }

 private:
  void op_done(bool ok) {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (finished_) return;
    if (!ok) {  // the client went away
      finish_locked(grpc::Status::CANCELLED);
      return;
    }
    if (end_status_) {
      finish_locked(*end_status_);
      return;
    }
    write_next_locked();
  }

  static bool is_gap(const ListenItem& item) { return std::holds_alternative<GapNotice>(item); }

  void drop_oldest_message_locked() {
    auto it =
        std::find_if(queue_.begin(), queue_.end(), [](const ListenItem& i) { return !is_gap(i); });
    const auto& m = std::get<AgentMessage>(*it);
    ++missed_[m.topic];
    bytes_ -= m.data.size();
    --messages_;
    queue_.erase(it);
  }

  void write_next_locked() {
    out_.Clear();
    // Missed goes right before the next message (gaps ahead of it go first).
    if (!missed_.empty() && (queue_.empty() || !is_gap(queue_.front()))) {
      auto it = missed_.begin();
      auto* m = out_.mutable_missed();
      m->set_topic(it->first);
      m->set_count(it->second);
      missed_.erase(it);
    } else if (!queue_.empty()) {
      to_proto(queue_.front(), out_);
      if (const auto* m = std::get_if<AgentMessage>(&queue_.front())) {
        bytes_ -= m->data.size();
        --messages_;
      } else {
        --gaps_;
      }
      queue_.pop_front();
    } else {
      return;
    }
    writing_ = true;
    StartWrite(&out_);
  }

  void end_locked(grpc::Status s) {
    if (!end_status_) end_status_ = std::move(s);
    if (!writing_ && !finished_) finish_locked(*end_status_);
  }

  void finish_locked(grpc::Status s) {
    finished_ = true;
    queue_.clear();
    messages_ = gaps_ = bytes_ = 0;
    missed_.clear();
    Finish(std::move(s));
  }

  Backend& backend_;
  ListenRegistry& registry_;
  const size_t capacity_;
  const size_t max_bytes_;
  std::vector<uint64_t> handles_;  // written before gRPC sees the reactor, read in OnDone
  std::shared_ptr<ListenReactor> self_;

  std::mutex mu_;
  std::deque<ListenItem> queue_;
  size_t messages_ = 0;  // AgentMessages in queue_
  size_t gaps_ = 0;      // GapNotices in queue_
  size_t bytes_ = 0;     // payload bytes in queue_
  std::map<std::string, uint64_t> missed_;
  v1::ListenEvent out_;  // the event being written; touched only by the holder of writing_
  bool writing_ = false;
  std::optional<grpc::Status> end_status_;  // set: end the stream once no write is in flight
  bool finished_ = false;
};

class ControlService final : public v1::Control::CallbackService {
 public:
  ControlService(Backend& b, const ApiConfig& c) : backend_(b), config_(c) {}

  grpc::ServerUnaryReactor* Subscribe(grpc::CallbackServerContext* ctx,
                                      const v1::SubscribeRequest* req,
                                      v1::SubscribeResponse*) override {
    auto* r = ctx->DefaultReactor();
    if (auto bad = check_topic(req->topic(), config_)) {
      r->Finish(*bad);
    } else {
      backend_.subscribe(req->topic(), [r](Result<void> res) {
        r->Finish(res ? grpc::Status::OK : to_status(res.error()));
      });
    }
    return r;
  }

  grpc::ServerUnaryReactor* Unsubscribe(grpc::CallbackServerContext* ctx,
                                        const v1::UnsubscribeRequest* req,
                                        v1::UnsubscribeResponse*) override {
    auto* r = ctx->DefaultReactor();
    if (auto bad = check_topic(req->topic(), config_)) {
      r->Finish(*bad);
    } else {
      backend_.unsubscribe(req->topic(), [r](Result<void> res) {
        r->Finish(res ? grpc::Status::OK : to_status(res.error()));
      });
    }
    return r;
  }

 private:
  Backend& backend_;
  const ApiConfig& config_;
};

class MessagingService final : public v1::Messaging::CallbackService {
 public:
  MessagingService(Backend& b, const ApiConfig& c) : backend_(b), config_(c) {}

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* ctx, const v1::PublishRequest* req,
                                    v1::PublishResponse* resp) override {
    auto* r = ctx->DefaultReactor();
    if (auto bad = check_topic(req->topic(), config_)) {
      r->Finish(*bad);
    } else if (req->data().size() > config_.max_message_size) {
      r->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                             fmt::format("data is {} bytes, the limit is {}", req->data().size(),
                                         config_.max_message_size)));
    } else {
      backend_.publish(req->topic(), Bytes(req->data().begin(), req->data().end()),
                       [r, resp](Result<PublishResult> res) {
                         if (!res) {
                           r->Finish(to_status(res.error()));
                           return;
                         }
                         resp->set_id(res->id.data(), res->id.size());
                         resp->set_seqno(res->seqno);
                         r->Finish(grpc::Status::OK);
                       });
    }
    return r;
  }

  grpc::ServerWriteReactor<v1::ListenEvent>* Listen(grpc::CallbackServerContext*,
                                                    const v1::ListenRequest* req) override {
    if (req->topics().empty()) {
      return new FailedListen({grpc::StatusCode::INVALID_ARGUMENT, "no topics"});
    }
    if (static_cast<size_t>(req->topics().size()) > config_.max_topics_per_listen) {
      return new FailedListen({grpc::StatusCode::INVALID_ARGUMENT,
                               fmt::format("{} topics, the limit is {}", req->topics().size(),
                                           config_.max_topics_per_listen)});
    }
    std::vector<std::string> topics(req->topics().begin(), req->topics().end());
    for (const auto& t : topics) {
      if (auto bad = check_topic(t, config_)) return new FailedListen(*bad);
    }
    std::sort(topics.begin(), topics.end());
    topics.erase(std::unique(topics.begin(), topics.end()), topics.end());
    if (req->buffer_size() > config_.max_listen_buffer) {
      return new FailedListen({grpc::StatusCode::INVALID_ARGUMENT,
                               fmt::format("buffer_size {} is above the limit {}",
                                           req->buffer_size(), config_.max_listen_buffer)});
    }
    size_t capacity = req->buffer_size() ? req->buffer_size() : config_.default_listen_buffer;
    {
      std::lock_guard lock(registry_.mu);
      if (registry_.shutting_down) {
        return new FailedListen({grpc::StatusCode::UNAVAILABLE, "the agent is shutting down"});
      }
    }
    if (registry_.open.fetch_add(1) >= config_.max_listen_streams) {
      registry_.open.fetch_sub(1);
      return new FailedListen(
          {grpc::StatusCode::RESOURCE_EXHAUSTED,
           fmt::format("{} Listen streams are open, the limit", config_.max_listen_streams)});
    }
    return ListenReactor::open(backend_, registry_, topics, ListenOptions{req->ordered()},
                               std::max<size_t>(capacity, 1), config_.max_listen_buffer_bytes);
  }

  size_t open_streams() const { return registry_.open.load(); }

  // Ends every Listen stream with UNAVAILABLE and refuses new ones.
  void shutdown_listeners() {
    std::vector<std::shared_ptr<ListenReactor>> live;
    {
      std::lock_guard lock(registry_.mu);
      registry_.shutting_down = true;
      for (auto& [_, weak] : registry_.live) {
        if (auto r = weak.lock()) live.push_back(std::move(r));
      }
    }
    for (auto& r : live) r->end({grpc::StatusCode::UNAVAILABLE, "the agent is shutting down"});
  }

 private:
  Backend& backend_;
  const ApiConfig& config_;
  ListenRegistry registry_;
};

class AdminService final : public v1::Admin::CallbackService {
 public:
  explicit AdminService(Backend& b) : backend_(b) {}

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx, const v1::StatusRequest*,
                                   v1::StatusResponse* resp) override {
    auto* r = ctx->DefaultReactor();
    backend_.status([r, resp](AgentStatus s) {
      to_proto(s, *resp);
      r->Finish(grpc::Status::OK);
    });
    return r;
  }

 private:
  Backend& backend_;
};

}  // namespace

struct ApiServer::Impl {
  Impl(Backend& b, ApiConfig c)
      : config(std::move(c)), control(b, config), messaging(b, config), admin(b) {}

  ApiConfig config;
  ControlService control;
  MessagingService messaging;
  AdminService admin;
  std::unique_ptr<grpc::Server> server;
  std::string bound;
  std::mutex mu;  // start/stop
};

ApiServer::ApiServer(Backend& backend, ApiConfig config)
    : impl_(std::make_unique<Impl>(backend, std::move(config))) {}

ApiServer::~ApiServer() {
  stop();
}

Result<void> ApiServer::start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->server) return fail(Errc::invalid_input, "the gRPC server is already started");
  const auto& c = impl_->config;

  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!c.tls_cert_file.empty() || !c.tls_key_file.empty() || !c.tls_client_ca_file.empty()) {
    if (c.tls_cert_file.empty() || c.tls_key_file.empty()) {
      return fail(Errc::invalid_input, "TLS needs both a certificate and a key file");
    }
    auto cert = read_file(c.tls_cert_file);
    if (!cert) return tl::unexpected(cert.error());
    auto key = read_file(c.tls_key_file);
    if (!key) return tl::unexpected(key.error());
    grpc::SslServerCredentialsOptions opts(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    opts.pem_key_cert_pairs.push_back({*key, *cert});
    if (!c.tls_client_ca_file.empty()) {
      auto ca = read_file(c.tls_client_ca_file);
      if (!ca) return tl::unexpected(ca.error());
      opts.pem_root_certs = *ca;
      opts.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    creds = grpc::SslServerCredentials(opts);
  }

  // Both are process-wide switches read by the builder.
  grpc::EnableDefaultHealthCheckService(true);
  if (c.reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(c.address, creds, &port);
  builder.RegisterService(&impl_->control);
  builder.RegisterService(&impl_->messaging);
  builder.RegisterService(&impl_->admin);
  builder.SetMaxReceiveMessageSize(static_cast<int>(c.max_message_size + kFramingHeadroom));
  auto server = builder.BuildAndStart();
  if (!server || port == 0) {
    if (server) server->Shutdown();
    return fail(Errc::io, "cannot listen for gRPC on " + c.address);
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  auto colon = c.address.rfind(':');
  impl_->bound = (colon == std::string::npos ? c.address : c.address.substr(0, colon)) + ":" +
                 std::to_string(port);
  impl_->server = std::move(server);
  spdlog::info("gRPC API listening on {}{}", impl_->bound, c.tls_cert_file.empty() ? "" : " (TLS)");
  return {};
}

std::string ApiServer::bound_address() const {
  std::lock_guard lock(impl_->mu);
  return impl_->bound;
}

void ApiServer::stop() {
  std::lock_guard lock(impl_->mu);
  if (!impl_->server) return;
  impl_->server->GetHealthCheckService()->SetServingStatus(false);
  impl_->messaging.shutdown_listeners();
  // Cancels what is still running after the grace period (a Listen stream whose client stopped
  // reading has a write stuck in flight) and waits for every reactor's OnDone, which removes its
  // listeners from the backend.
  impl_->server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  impl_->server->Wait();
  impl_->server.reset();
}

size_t ApiServer::listen_streams() const {
  return impl_->messaging.open_streams();
}

}  // namespace p2pmq::api
