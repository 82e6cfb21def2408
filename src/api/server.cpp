#include "api/server.hpp"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <variant>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include "api/convert.hpp"
#include "api/held_messages.hpp"
#include "p2pmq/v1/p2pmq.grpc.pb.h"

namespace p2pmq::api {
namespace {

// How long stop() lets in-flight unary calls finish before cancelling them.
constexpr auto kShutdownGrace = std::chrono::seconds(2);
// Room for the protobuf and gRPC framing around the largest payload.
constexpr size_t kFramingHeadroom = 64 * 1024;

// RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
  static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  for (size_t i = 0; i < s.size();) {
    auto lead = static_cast<uint8_t>(s[i]);
    size_t more = lead < 0x80 ? 0 : (lead >> 5) == 0x6 ? 1 : (lead >> 4) == 0xE ? 2 : 3;
    if ((lead >= 0x80 && lead < 0xC0) || lead >= 0xF8 || s.size() - i <= more) return false;
    uint32_t cp = lead & (0x7F >> more);
    for (size_t k = 1; k <= more; ++k) {
      auto next = static_cast<uint8_t>(s[i + k]);
      if ((next >> 6) != 0x2) return false;
      cp = (cp << 6) | (next & 0x3F);
    }
    if (cp < kMin[more] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += more + 1;
  }
  return true;
}

std::optional<grpc::Status> check_topic(const std::string& topic, const ApiConfig& config) {
  if (topic.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty topic");
  if (topic.size() > config.max_topic_length) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        fmt::format("topic is {} bytes, the limit is {}", topic.size(), config.max_topic_length));
  }
  if (!valid_utf8(topic))
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the topic is not valid UTF-8");
  return std::nullopt;
}

// Requests arrive as bytes (raw methods) so that a request gRPC could not decode gets
// INVALID_ARGUMENT with a reason, not gRPC's bare UNIMPLEMENTED. The string fields are checked
// for UTF-8 before protobuf parses them (protobuf would refuse them, logging each one).
template <class Request>
std::optional<grpc::Status> decode(const grpc::ByteBuffer* in, Request& out) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (in && !in->Dump(&slices).ok())
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unreadable request");
  for (const auto& slice : slices)
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  const auto* type = Request::descriptor();
  google::protobuf::io::CodedInputStream wire(reinterpret_cast<const uint8_t*>(bytes.data()),
                                              static_cast<int>(bytes.size()));
  for (uint32_t tag; (tag = wire.ReadTag()) != 0;) {
    using WF = google::protobuf::internal::WireFormatLite;
    const auto* field = type->FindFieldByNumber(static_cast<int>(WF::GetTagFieldNumber(tag)));
    if (WF::GetTagWireType(tag) == WF::WIRETYPE_LENGTH_DELIMITED && field &&
        field->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
      std::string value;
      if (!WF::ReadString(&wire, &value)) break;  // truncated: ParseFromString says so below
      if (!valid_utf8(value))
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            fmt::format("{}.{} is not valid UTF-8", type->name(), field->name()));
    } else if (!WF::SkipField(&wire, tag)) {
      break;
    }
  }
  if (!out.ParseFromString(bytes))
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        fmt::format("the request is not a valid {} (protobuf)", type->name()));
  return std::nullopt;
}

grpc::ByteBuffer encode(const google::protobuf::MessageLite& message) {
  grpc::Slice slice(message.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

// Loopback, "localhost" or a unix socket: reachable from this machine only.
bool is_local_address(const std::string& address) {
  if (address.starts_with("unix:")) return true;
  auto colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host == "localhost" || host == "::1") return true;
  unsigned a = 0, b = 0, c = 0, d = 0;
  char end = 0;
  return std::sscanf(host.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &end) == 4 && a == 127 &&
         b < 256 && c < 256 && d < 256;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::invalid_input, "cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A Listen call refused before it started.
class FailedListen final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
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
// bounded by count and bytes (footprint): the stream's own limit, and its equal share of the
// total for all streams. On overflow the oldest message is dropped and counted per topic; the
// counts go out as Missed events before the next message. Gap events are never dropped: they do
// not count against the buffer, and a stream with more than `capacity` of them waiting is ended
// with RESOURCE_EXHAUSTED instead.
class ListenReactor;

// The open Listen streams, so stop() can end them at once, and their buffers' bytes.
struct ListenRegistry {
  std::atomic<size_t> open{0};      // counts reactors from admission to OnDone
  std::atomic<size_t> buffered{0};  // bytes in every stream's queue_
  std::atomic<uint64_t> missed{0};  // messages dropped from full streams, all streams ever
  std::mutex mu;
  bool shutting_down = false;
  std::map<ListenReactor*, std::weak_ptr<ListenReactor>> live;
};

struct ListenLimits {
  size_t capacity = 0;      // messages
  size_t stream_bytes = 0;  // ApiConfig::max_listen_buffer_bytes
  size_t total_bytes = 0;   // ApiConfig::max_listen_total_bytes
};

class ListenReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  ListenReactor(Backend& backend, ListenRegistry& registry, ListenLimits limits)
      : backend_(backend), registry_(registry), limits_(limits) {}

  // Registers the listeners and sends the response headers once they are in place. Returns
  // the reactor for gRPC; it owns itself until OnDone.
  static ListenReactor* open(Backend& backend, ListenRegistry& registry,
                             const std::vector<std::string>& topics, ListenOptions options,
                             ListenLimits limits) {
    auto r = std::make_shared<ListenReactor>(backend, registry, limits);
    r->self_ = r;
    {
      std::lock_guard lock(registry.mu);
      registry.live.emplace(r.get(), r);
    }
    std::weak_ptr<ListenReactor> weak = r;
    for (const auto& t : topics) {
      r->handles_.push_back(backend.add_listener(
          t, options,
          [weak](const SharedListenItem& item) {
            if (auto s = weak.lock()) s->push(item);
          },
          [weak](const Error& e) {
            if (auto s = weak.lock()) s->end(to_status(e));
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

  void push(const SharedListenItem& item) {
    std::lock_guard lock(mu_);
    if (finished_ || end_status_) return;
    queue_.push_back(item);
    if (std::holds_alternative<AgentMessage>(*item)) {
      ++messages_;
      // Counted in full although shared with the topic's other streams: the bounds hold
      // whatever the others do.
      add_bytes_locked(footprint(*item));
      size_t limit = byte_limit();
      while (messages_ > limits_.capacity || (bytes_ > limit && messages_ > 1)) {
        drop_oldest_message_locked();
      }
    } else if (++gaps_ > limits_.capacity) {
      end_locked({grpc::StatusCode::RESOURCE_EXHAUSTED,
                  fmt::format("the client reads too slowly: {} Gap events are waiting", gaps_)});
      return;
    }
    if (!writing_) write_next_locked();
  }

 private:
  // The stream's own limit, or, while all streams together are at the total, its equal share.
  size_t byte_limit() const {
    if (registry_.buffered.load() <= limits_.total_bytes) return limits_.stream_bytes;
    size_t share = limits_.total_bytes / std::max<size_t>(registry_.open.load(), 1);
    return std::min(limits_.stream_bytes, share);
  }

  void add_bytes_locked(size_t n) {
    bytes_ += n;
    registry_.buffered.fetch_add(n);
  }
  void sub_bytes_locked(size_t n) {
    bytes_ -= n;
    registry_.buffered.fetch_sub(n);
  }

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

  static bool is_gap(const SharedListenItem& item) {
    return std::holds_alternative<GapNotice>(*item);
  }

  void drop_oldest_message_locked() {
    auto it = std::find_if(queue_.begin(), queue_.end(), [](const auto& i) { return !is_gap(i); });
    const auto& m = std::get<AgentMessage>(**it);
    ++missed_[m.topic];
    registry_.missed.fetch_add(1);
    sub_bytes_locked(footprint(**it));
    --messages_;
    queue_.erase(it);
  }

  void write_next_locked() {
    v1::ListenEvent event;
    // Missed goes right before the next message (gaps ahead of it go first).
    if (!missed_.empty() && (queue_.empty() || !is_gap(queue_.front()))) {
      auto it = missed_.begin();
      auto* m = event.mutable_missed();
      m->set_topic(it->first);
      m->set_count(it->second);
      missed_.erase(it);
    } else if (!queue_.empty()) {
      to_proto(*queue_.front(), event);
      if (std::holds_alternative<AgentMessage>(*queue_.front())) {
        sub_bytes_locked(footprint(*queue_.front()));
        --messages_;
      } else {
        --gaps_;
      }
      queue_.pop_front();
    } else {
      return;
    }
    out_ = encode(event);
    writing_ = true;
    StartWrite(&out_);
  }

  void end_locked(grpc::Status s) {
    if (!end_status_) end_status_ = std::move(s);
    if (!writing_ && !finished_) finish_locked(*end_status_);
  }

  void finish_locked(grpc::Status s) {
    finished_ = true;
    sub_bytes_locked(bytes_);
    std::deque<SharedListenItem>().swap(queue_);  // gives the memory back now
    messages_ = gaps_ = 0;
    missed_.clear();
    Finish(std::move(s));
  }

  Backend& backend_;
  ListenRegistry& registry_;
  const ListenLimits limits_;
  std::vector<uint64_t> handles_;  // written before gRPC sees the reactor, read in OnDone
  std::shared_ptr<ListenReactor> self_;

  std::mutex mu_;
  std::deque<SharedListenItem> queue_;
  size_t messages_ = 0;  // AgentMessages in queue_
  size_t gaps_ = 0;      // GapNotices in queue_
  size_t bytes_ = 0;     // footprint of the AgentMessages in queue_
  std::map<std::string, uint64_t> missed_;
  grpc::ByteBuffer out_;  // the event being written; touched only by the holder of writing_
  bool writing_ = false;
  std::optional<grpc::Status> end_status_;  // set: end the stream once no write is in flight
  bool finished_ = false;
};

using ControlBase = v1::Control::WithRawCallbackMethod_Subscribe<
    v1::Control::WithRawCallbackMethod_Unsubscribe<v1::Control::Service>>;

class ControlService final : public ControlBase {
 public:
  ControlService(Backend& b, const ApiConfig& c) : backend_(b), config_(c) {}

  grpc::ServerUnaryReactor* Subscribe(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw,
                                      grpc::ByteBuffer* resp) override {
    auto* r = ctx->DefaultReactor();
    v1::SubscribeRequest req;
    if (auto bad = decode(raw, req)) {
      r->Finish(*bad);
    } else if (auto bad_topic = check_topic(req.topic(), config_)) {
      r->Finish(*bad_topic);
    } else {
      backend_.subscribe(req.topic(), [r, resp](Result<void> res) {
        if (res) *resp = encode(v1::SubscribeResponse());
        r->Finish(res ? grpc::Status::OK : to_status(res.error()));
      });
    }
    return r;
  }

  grpc::ServerUnaryReactor* Unsubscribe(grpc::CallbackServerContext* ctx,
                                        const grpc::ByteBuffer* raw,
                                        grpc::ByteBuffer* resp) override {
    auto* r = ctx->DefaultReactor();
    v1::UnsubscribeRequest req;
    if (auto bad = decode(raw, req)) {
      r->Finish(*bad);
    } else if (auto bad_topic = check_topic(req.topic(), config_)) {
      r->Finish(*bad_topic);
    } else {
      backend_.unsubscribe(req.topic(), [r, resp](Result<void> res) {
        if (res) *resp = encode(v1::UnsubscribeResponse());
        r->Finish(res ? grpc::Status::OK : to_status(res.error()));
      });
    }
    return r;
  }

 private:
  Backend& backend_;
  const ApiConfig& config_;
};

using MessagingBase = v1::Messaging::WithRawCallbackMethod_Publish<
    v1::Messaging::WithRawCallbackMethod_Listen<v1::Messaging::Service>>;

class MessagingService final : public MessagingBase {
 public:
  MessagingService(Backend& b, const ApiConfig& c) : backend_(b), config_(c) {}

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw,
                                    grpc::ByteBuffer* resp) override {
    auto* r = ctx->DefaultReactor();
    v1::PublishRequest req;
    if (auto bad = decode(raw, req)) {
      r->Finish(*bad);
    } else if (auto bad_topic = check_topic(req.topic(), config_)) {
      r->Finish(*bad_topic);
    } else if (req.data().size() > config_.max_message_size) {
      r->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                             fmt::format("data is {} bytes, the limit is {}", req.data().size(),
                                         config_.max_message_size)));
    } else if (size_t size = req.topic().size() + req.data().size(); !admit_publish(size)) {
      r->Finish(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          fmt::format("{} bytes of publishes are waiting for the agent, the limit is {}",
                      pending_publish_bytes_->load(), config_.max_pending_publish_bytes)));
    } else {
      backend_.publish(
          req.topic(), Bytes(req.data().begin(), req.data().end()),
          [pending = pending_publish_bytes_, r, resp, size](Result<PublishResult> res) {
            pending->fetch_sub(size);
            if (!res) {
              r->Finish(to_status(res.error()));
              return;
            }
            v1::PublishResponse out;
            out.set_id(res->id.data(), res->id.size());
            out.set_seqno(res->seqno);
            *resp = encode(out);
            r->Finish(grpc::Status::OK);
          });
    }
    return r;
  }

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Listen(grpc::CallbackServerContext*,
                                                     const grpc::ByteBuffer* raw) override {
    v1::ListenRequest req;
    if (auto bad = decode(raw, req)) return new FailedListen(*bad);
    if (req.topics().empty()) {
      return new FailedListen({grpc::StatusCode::INVALID_ARGUMENT, "no topics"});
    }
    if (static_cast<size_t>(req.topics().size()) > config_.max_topics_per_listen) {
      return new FailedListen({grpc::StatusCode::INVALID_ARGUMENT,
                               fmt::format("{} topics, the limit is {}", req.topics().size(),
                                           config_.max_topics_per_listen)});
    }
    std::vector<std::string> topics(req.topics().begin(), req.topics().end());
    for (const auto& t : topics) {
      if (auto bad = check_topic(t, config_)) return new FailedListen(*bad);
    }
    std::sort(topics.begin(), topics.end());
    topics.erase(std::unique(topics.begin(), topics.end()), topics.end());
    if (req.buffer_size() > config_.max_listen_buffer) {
      return new FailedListen({grpc::StatusCode::INVALID_ARGUMENT,
                               fmt::format("buffer_size {} is above the limit {}",
                                           req.buffer_size(), config_.max_listen_buffer)});
    }
    size_t capacity = req.buffer_size() ? req.buffer_size() : config_.default_listen_buffer;
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
    ListenLimits limits{std::max<size_t>(capacity, 1), config_.max_listen_buffer_bytes,
                        config_.max_listen_total_bytes};
    return ListenReactor::open(backend_, registry_, topics, ListenOptions{req.ordered()}, limits);
  }

  size_t open_streams() const { return registry_.open.load(); }
  size_t buffered_bytes() const { return registry_.buffered.load(); }
  uint64_t missed_messages() const { return registry_.missed.load(); }

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
  // Reserves `size` bytes of pending publishes; one publish always fits when none is pending.
  bool admit_publish(size_t size) {
    size_t before = pending_publish_bytes_->fetch_add(size);
    if (before == 0 || before + size <= config_.max_pending_publish_bytes) return true;
    pending_publish_bytes_->fetch_sub(size);
    return false;
  }

  Backend& backend_;
  const ApiConfig& config_;
  ListenRegistry registry_;
  // Shared with the callbacks, which may outlive the service if the backend answers late.
  std::shared_ptr<std::atomic<size_t>> pending_publish_bytes_ =
      std::make_shared<std::atomic<size_t>>(0);
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
  bool tls = !c.tls_cert_file.empty() || !c.tls_key_file.empty() || !c.tls_client_ca_file.empty();
  if (!tls && !c.allow_insecure_remote && !is_local_address(c.address)) {
    return fail(Errc::invalid_input,
                "the gRPC API address " + c.address +
                    " is not loopback and has no TLS: anyone who reaches it could publish, "
                    "listen and unsubscribe. Set grpc.tls_cert and grpc.tls_key (and "
                    "grpc.tls_client_ca for client certificates), bind 127.0.0.1, or set "
                    "grpc.allow_insecure_remote: true");
  }
  if (tls) {
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
  if (!tls && !is_local_address(c.address))
    spdlog::warn(
        "gRPC API on {} without TLS (grpc.allow_insecure_remote): anyone who reaches it "
        "can use it",
        impl_->bound);
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

size_t ApiServer::listen_buffered_bytes() const {
  return impl_->messaging.buffered_bytes();
}

uint64_t ApiServer::listen_missed_messages() const {
  return impl_->messaging.missed_messages();
}

}  // namespace p2pmq::api
