// ApiServer against a fake Backend, with real gRPC clients over loopback.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "api/server.hpp"
#include "api/test/fake_backend.hpp"
#include "grpc_health_subset.grpc.pb.h"
#include "grpc_reflection_subset.pb.h"
#include "p2pmq/v1/p2pmq.grpc.pb.h"

namespace p2pmq::api::test {
namespace {

using namespace std::chrono_literals;

// Generous: two busy cores run these next to other builds.
constexpr auto kDeadline = 60s;

std::chrono::system_clock::time_point deadline() {
  return std::chrono::system_clock::now() + kDeadline;
}

class ApiServerTest : public ::testing::Test {
 protected:
  void start(ApiConfig config = {}) {
    server_ = std::make_unique<ApiServer>(backend_, std::move(config));
    auto r = server_->start();
    ASSERT_TRUE(r) << r.error().to_string();
    channel_ = grpc::CreateChannel(server_->bound_address(), grpc::InsecureChannelCredentials());
    control_ = v1::Control::NewStub(channel_);
    messaging_ = v1::Messaging::NewStub(channel_);
    admin_ = v1::Admin::NewStub(channel_);
  }

  grpc::Status publish(const std::string& topic, const std::string& data,
                       v1::PublishResponse* out = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::PublishRequest req;
    req.set_topic(topic);
    req.set_data(data);
    v1::PublishResponse resp;
    auto s = messaging_->Publish(&ctx, req, &resp);
    if (out) *out = resp;
    return s;
  }
  grpc::Status subscribe(const std::string& topic) {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::SubscribeRequest req;
    req.set_topic(topic);
    v1::SubscribeResponse resp;
    return control_->Subscribe(&ctx, req, &resp);
  }
  grpc::Status unsubscribe(const std::string& topic) {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::UnsubscribeRequest req;
    req.set_topic(topic);
    v1::UnsubscribeResponse resp;
    return control_->Unsubscribe(&ctx, req, &resp);
  }

  // A Listen stream, open once the server registered it (it sends headers then).
  struct Listener {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::ListenEvent>> reader;
  };
  std::unique_ptr<Listener> listen(std::vector<std::string> topics, uint32_t buffer = 0,
                                   bool ordered = false) {
    auto l = std::make_unique<Listener>();
    v1::ListenRequest req;
    for (auto& t : topics) req.add_topics(t);
    req.set_buffer_size(buffer);
    req.set_ordered(ordered);
    l->reader = messaging_->Listen(&l->ctx, req);
    l->reader->WaitForInitialMetadata();
    return l;
  }
  grpc::Status listen_status(std::vector<std::string> topics, uint32_t buffer = 0) {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    v1::ListenRequest req;
    for (auto& t : topics) req.add_topics(t);
    req.set_buffer_size(buffer);
    auto reader = messaging_->Listen(&ctx, req);
    v1::ListenEvent ev;
    while (reader->Read(&ev)) {
    }
    return reader->Finish();
  }

  FakeBackend backend_;  // first: outlives the server
  std::unique_ptr<ApiServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Control::Stub> control_;
  std::unique_ptr<v1::Messaging::Stub> messaging_;
  std::unique_ptr<v1::Admin::Stub> admin_;
};

TEST_F(ApiServerTest, BindsLoopbackByDefault) {
  start();
  EXPECT_EQ(server_->bound_address().rfind("127.0.0.1:", 0), 0u) << server_->bound_address();
  EXPECT_NE(server_->bound_address(), "127.0.0.1:0");
}

TEST_F(ApiServerTest, PublishReturnsIdAndSeqnoAndJoinsTopic) {
  start();
  v1::PublishResponse r1, r2;
  ASSERT_TRUE(publish("news", "one", &r1).ok());
  ASSERT_TRUE(publish("news", "two", &r2).ok());
  EXPECT_EQ(r1.id(), "news/1");
  EXPECT_EQ(r1.seqno(), 1u);
  EXPECT_EQ(r2.id(), "news/2");
  EXPECT_EQ(r2.seqno(), 2u);
  EXPECT_TRUE(backend_.topics().contains("news"));
}

TEST_F(ApiServerTest, BackendErrorsBecomeStatusCodes) {
  start();
  backend_.set_fail_publish(true);
  auto s = publish("t", "x");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(), "publish refused by the test");
}

TEST_F(ApiServerTest, ListenFansOutToEveryListener) {
  start();
  std::vector<std::unique_ptr<Listener>> ls;
  ls.push_back(listen({"t"}));
  ls.push_back(listen({"t"}));
  ls.push_back(listen({"t", "other", "t"}));         // duplicates are ignored
  EXPECT_TRUE(backend_.topics().contains("other"));  // Listen subscribes unknown topics
  EXPECT_EQ(backend_.listeners("t"), 3u);
  EXPECT_EQ(server_->listen_streams(), 3u);

  constexpr int kCount = 50;
  for (int i = 1; i <= kCount; ++i) ASSERT_TRUE(publish("t", "m" + std::to_string(i)).ok());
  AgentMessage synced;
  synced.id = to_bytes("synced-id");
  synced.topic = "other";
  synced.data = to_bytes("from sync");
  synced.origin = "12D3KooWOther";
  synced.seqno = 7;
  synced.received = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000) +
                                                          std::chrono::microseconds(5));
  synced.synced = true;
  backend_.deliver(synced);

  for (size_t n = 0; n < ls.size(); ++n) {
    v1::ListenEvent ev;
    for (int i = 1; i <= kCount; ++i) {
      ASSERT_TRUE(ls[n]->reader->Read(&ev)) << "listener " << n << " message " << i;
      ASSERT_TRUE(ev.has_message());
      const auto& m = ev.message();
      EXPECT_EQ(m.topic(), "t");
      EXPECT_EQ(m.data(), "m" + std::to_string(i));
      EXPECT_EQ(m.seqno(), static_cast<uint64_t>(i));
      EXPECT_EQ(m.id(), "t/" + std::to_string(i));
      EXPECT_EQ(m.origin(), "12D3KooWSelf");
      EXPECT_GT(m.received_at().seconds(), 1600000000);
      EXPECT_FALSE(m.synced());
    }
    if (n == 2) {
      ASSERT_TRUE(ls[n]->reader->Read(&ev));
      ASSERT_TRUE(ev.has_message());
      EXPECT_EQ(ev.message().topic(), "other");
      EXPECT_EQ(ev.message().id(), "synced-id");
      EXPECT_EQ(ev.message().seqno(), 7u);
      EXPECT_EQ(ev.message().received_at().seconds(), 1700000000);
      EXPECT_EQ(ev.message().received_at().nanos(), 5000);
      EXPECT_TRUE(ev.message().synced());
    }
  }

  // A listener that goes away is removed from the backend.
  ls[0]->ctx.TryCancel();
  ls[0].reset();
  EXPECT_TRUE(eventually([&] { return backend_.listeners("t") == 2; }));
  EXPECT_TRUE(eventually([&] { return server_->listen_streams() == 2; }));
}

TEST_F(ApiServerTest, SlowListenerDoesNotDelayOthersAndLearnsWhatItMissed) {
  start();
  auto slow = listen({"t"}, 8);
  auto fast1 = listen({"t"});
  auto fast2 = listen({"t"});

  // Enough bytes to fill the slow stream's HTTP/2 windows and socket buffers many times over.
  constexpr int kCount = 400;
  const std::string payload(16 * 1024, 'x');
  auto drain = [&](Listener& l, int& got) {
    v1::ListenEvent ev;
    while (got < kCount && l.reader->Read(&ev)) {
      if (ev.has_message() && ev.message().seqno() == static_cast<uint64_t>(got + 1)) ++got;
    }
  };
  int got1 = 0, got2 = 0;
  std::thread r1([&] { drain(*fast1, got1); });
  std::thread r2([&] { drain(*fast2, got2); });
  for (int i = 0; i < kCount; ++i) ASSERT_TRUE(publish("t", payload).ok());
  r1.join();
  r2.join();
  // The fast listeners got everything, in order, while the slow one read nothing.
  EXPECT_EQ(got1, kCount);
  EXPECT_EQ(got2, kCount);

  // The slow listener now reads: every message is either delivered or counted as missed.
  uint64_t delivered = 0, missed = 0, last_seqno = 0;
  v1::ListenEvent ev;
  while (delivered + missed < kCount && slow->reader->Read(&ev)) {
    if (ev.has_missed()) {
      EXPECT_EQ(ev.missed().topic(), "t");
      EXPECT_GT(ev.missed().count(), 0u);
      missed += ev.missed().count();
    } else {
      ASSERT_TRUE(ev.has_message());
      // Drop-oldest keeps order; seqnos only jump where a Missed event was reported.
      EXPECT_GT(ev.message().seqno(), last_seqno);
      last_seqno = ev.message().seqno();
      ++delivered;
    }
  }
  EXPECT_EQ(delivered + missed, static_cast<uint64_t>(kCount));
  EXPECT_GT(missed, 0u);
  EXPECT_EQ(last_seqno, static_cast<uint64_t>(kCount));  // the newest are kept
}

AgentMessage message_of(const std::string& topic, uint64_t seqno, std::string data = "x") {
  AgentMessage m;
  m.topic = topic;
  m.seqno = seqno;
  m.id = to_bytes(topic + "/" + std::to_string(seqno));
  m.data = to_bytes(data);
  m.origin = "12D3KooWOther";
  m.received = std::chrono::system_clock::now();
  return m;
}

TEST_F(ApiServerTest, ListenPassesOrderedThrough) {
  start();
  auto plain = listen({"a"});
  auto ordered = listen({"a", "b"}, 0, true);
  EXPECT_EQ(backend_.listeners("a"), 2u);
  EXPECT_EQ(backend_.ordered_listeners("a"), 1u);
  EXPECT_EQ(backend_.ordered_listeners("b"), 1u);
  ASSERT_TRUE(publish("b", "hello").ok());
  v1::ListenEvent ev;
  ASSERT_TRUE(ordered->reader->Read(&ev));
  ASSERT_TRUE(ev.has_message());
  EXPECT_EQ(ev.message().data(), "hello");
}

TEST_F(ApiServerTest, GapEventsReachEveryListenerInPlace) {
  start();
  std::vector<std::unique_ptr<Listener>> ls;
  ls.push_back(listen({"t"}));
  ls.push_back(listen({"t", "u"}, 0, true));
  auto other_topic = listen({"u"});
  backend_.deliver(message_of("t", 1, "one"));
  backend_.deliver_gap(GapNotice{"t", "12D3KooWOther", 2, 4});
  backend_.deliver(message_of("t", 5, "five"));
  backend_.deliver(message_of("u", 1, "u-one"));

  for (size_t n = 0; n < ls.size(); ++n) {
    v1::ListenEvent ev;
    ASSERT_TRUE(ls[n]->reader->Read(&ev));
    ASSERT_TRUE(ev.has_message()) << n;
    EXPECT_EQ(ev.message().seqno(), 1u);
    ASSERT_TRUE(ls[n]->reader->Read(&ev));
    ASSERT_TRUE(ev.has_gap()) << n;
    EXPECT_EQ(ev.gap().topic(), "t");
    EXPECT_EQ(ev.gap().origin(), "12D3KooWOther");
    EXPECT_EQ(ev.gap().from_seqno(), 2u);
    EXPECT_EQ(ev.gap().to_seqno(), 4u);
    ASSERT_TRUE(ls[n]->reader->Read(&ev));
    ASSERT_TRUE(ev.has_message()) << n;
    EXPECT_EQ(ev.message().seqno(), 5u);
    EXPECT_EQ(ev.message().data(), "five");
  }
  // A listener of another topic sees no gap of "t".
  v1::ListenEvent ev;
  ASSERT_TRUE(other_topic->reader->Read(&ev));
  ASSERT_TRUE(ev.has_message());
  EXPECT_EQ(ev.message().data(), "u-one");
}

TEST_F(ApiServerTest, SlowListenerKeepsEveryGap) {
  start();
  auto slow = listen({"t"}, 8);
  // Enough bytes to block the unread stream's writes many times over, with a gap every 100.
  constexpr uint64_t kCount = 400, kEvery = 100;
  const std::string payload(16 * 1024, 'x');
  for (uint64_t i = 1; i <= kCount; ++i) {
    backend_.deliver(message_of("t", i, payload));
    if (i % kEvery == 0)
      backend_.deliver_gap(GapNotice{"t", "12D3KooWOther", 10'000 + i, 10'000 + i});
  }
  uint64_t delivered = 0, missed = 0, last_seqno = 0;
  std::vector<uint64_t> gaps;
  v1::ListenEvent ev;
  while (gaps.size() < kCount / kEvery && slow->reader->Read(&ev)) {
    if (ev.has_missed()) {
      missed += ev.missed().count();
    } else if (ev.has_gap()) {
      // In place: after every delivered message published before it.
      EXPECT_LE(last_seqno, ev.gap().from_seqno() - 10'000);
      gaps.push_back(ev.gap().from_seqno() - 10'000);
    } else {
      ASSERT_TRUE(ev.has_message());
      EXPECT_GT(ev.message().seqno(), last_seqno);
      if (!gaps.empty()) {
        EXPECT_GT(ev.message().seqno(), gaps.back());
      }
      last_seqno = ev.message().seqno();
      ++delivered;
    }
  }
  EXPECT_EQ(gaps, (std::vector<uint64_t>{100, 200, 300, 400}));
  EXPECT_GT(missed, 0u);
  EXPECT_EQ(delivered + missed, kCount);
}

TEST_F(ApiServerTest, TooManyWaitingGapsEndTheStream) {
  start();
  auto slow = listen({"t"}, 2);
  // Block the unread stream's writes, then queue more gaps than its buffer size.
  const std::string payload(16 * 1024, 'x');
  for (uint64_t i = 1; i <= 800; ++i) backend_.deliver(message_of("t", i, payload));
  for (uint64_t i = 1; i <= 3; ++i) backend_.deliver_gap(GapNotice{"t", "12D3KooWOther", i, i});
  v1::ListenEvent ev;
  while (slow->reader->Read(&ev)) {
  }
  auto s = slow->reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_TRUE(eventually([&] { return backend_.listeners() == 0; }));
}

TEST_F(ApiServerTest, SubscribeAndUnsubscribeAreIdempotent) {
  start();
  EXPECT_TRUE(subscribe("a").ok());
  EXPECT_TRUE(subscribe("a").ok());
  EXPECT_EQ(backend_.subscribe_calls(), 2);
  EXPECT_TRUE(backend_.topics().contains("a"));
  EXPECT_TRUE(unsubscribe("a").ok());
  EXPECT_TRUE(unsubscribe("a").ok());
  EXPECT_TRUE(unsubscribe("never-seen").ok());
  EXPECT_FALSE(backend_.topics().contains("a"));
}

TEST_F(ApiServerTest, InvalidArguments) {
  ApiConfig c;
  c.max_message_size = 1000;
  start(c);
  const std::string long_topic(257, 't');
  const std::string max_topic(256, 't');
  auto invalid = grpc::StatusCode::INVALID_ARGUMENT;

  EXPECT_EQ(publish("", "x").error_code(), invalid);
  EXPECT_EQ(publish(long_topic, "x").error_code(), invalid);
  EXPECT_TRUE(publish(max_topic, "x").ok());
  EXPECT_EQ(publish("t", std::string(1001, 'x')).error_code(), invalid);
  EXPECT_TRUE(publish("t", std::string(1000, 'x')).ok());
  EXPECT_TRUE(publish("t", "").ok());  // empty payloads are fine
  EXPECT_EQ(subscribe("").error_code(), invalid);
  EXPECT_EQ(subscribe(long_topic).error_code(), invalid);
  EXPECT_EQ(unsubscribe("").error_code(), invalid);
  EXPECT_EQ(listen_status({}).error_code(), invalid);
  EXPECT_EQ(listen_status({"ok", ""}).error_code(), invalid);
  EXPECT_EQ(listen_status({long_topic}).error_code(), invalid);
  EXPECT_EQ(listen_status({"t"}, 65537).error_code(), invalid);
  auto s = publish("", "x");
  EXPECT_FALSE(s.error_message().empty());
  EXPECT_EQ(server_->listen_streams(), 0u);
}

// Sends raw bytes as the request of `method` ("/p2pmq.v1.Messaging/Publish").
grpc::Status raw_call(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                      const std::string& request, bool streaming = false) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(deadline());
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1);
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, method, &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  call->Write(req, reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  grpc::ByteBuffer resp;
  for (;;) {  // read until the stream ends (a unary call answers at most once)
    call->Read(&resp, reinterpret_cast<void*>(4));
    cq.Next(&tag, &ok);
    if (!ok || !streaming) break;
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

TEST_F(ApiServerTest, NonUtf8TopicsAndUndecodableRequestsAreInvalidArgument) {
  start();
  const std::string bad_topic = std::string("\x0a\x02\xff\xfe", 4);  // field 1: 0xFF 0xFE
  const std::string truncated = std::string("\x0a\x7f\x61", 3);      // 127 bytes promised
  const std::string bad_tag = std::string("\x07\x01", 2);            // wire type 7
  struct Case {
    const char* method;
    bool streaming;
  };
  for (auto [method, streaming] :
       {Case{"/p2pmq.v1.Messaging/Publish", false}, Case{"/p2pmq.v1.Messaging/Listen", true},
        Case{"/p2pmq.v1.Control/Subscribe", false}, Case{"/p2pmq.v1.Control/Unsubscribe", false}}) {
    SCOPED_TRACE(method);
    auto s = raw_call(channel_, method, bad_topic, streaming);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("UTF-8"), std::string::npos) << s.error_message();
    for (const auto& garbage : {truncated, bad_tag}) {
      auto g = raw_call(channel_, method, garbage, streaming);
      EXPECT_EQ(g.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_FALSE(g.error_message().empty());
    }
  }
  // Valid UTF-8 beyond ASCII is a topic like any other.
  EXPECT_TRUE(publish("caf\xc3\xa9/\xe2\x82\xac", "x").ok());
  // Overlong encodings and surrogates are not UTF-8.
  for (const std::string t : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\xe2\x82"}) {
    auto s = raw_call(channel_, "/p2pmq.v1.Control/Subscribe",
                      std::string("\x0a") + static_cast<char>(t.size()) + t);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << t.size();
  }
  EXPECT_TRUE(backend_.topics().count("caf\xc3\xa9/\xe2\x82\xac"));
  EXPECT_EQ(backend_.topics().size(), 1u);
}

TEST_F(ApiServerTest, ListenBuffersAreBoundedPerStreamAndInTotal) {
  ApiConfig c;
  c.max_listen_buffer_bytes = 512 * 1024;
  c.max_listen_total_bytes = 2 << 20;
  c.max_listen_buffer = 65536;
  start(c);
  // 20 streams with room for 65,536 messages each that never read (a client that went to
  // sleep), then 4,000 x 4 KiB each: 320 MB if nothing bounded them (and more than gRPC's
  // flow-control windows and the sockets take in).
  std::vector<std::unique_ptr<Listener>> sleepers;
  for (int i = 0; i < 20; ++i) sleepers.push_back(listen({"t"}, 65536));
  ASSERT_TRUE(eventually([&] { return backend_.listeners("t") == 20; }));
  const std::string payload(4096, 'x');
  size_t peak = 0;
  for (uint64_t i = 1; i <= 4000; ++i) {
    backend_.deliver(message_of("t", i, payload));
    peak = std::max(peak, server_->listen_buffered_bytes());
  }
  // The total, plus what crosses it before a stream trims to its share (one message each).
  EXPECT_LE(peak, c.max_listen_total_bytes + 20 * (payload.size() + 1024));
  EXPECT_GT(peak, 0u);
  // A stream that reads still gets the newest messages, after a Missed count.
  auto& first = *sleepers.front();
  v1::ListenEvent ev;
  uint64_t missed = 0, last = 0;
  while (last < 4000 && first.reader->Read(&ev)) {
    if (ev.has_missed()) missed += ev.missed().count();
    if (ev.has_message()) last = ev.message().seqno();
  }
  EXPECT_EQ(last, 4000u);
  EXPECT_GT(missed, 0u);
  // Memory comes back when the clients leave.
  for (auto& l : sleepers) l->ctx.TryCancel();
  sleepers.clear();
  ASSERT_TRUE(eventually([&] { return server_->listen_streams() == 0; }));
  EXPECT_EQ(server_->listen_buffered_bytes(), 0u);
}

TEST_F(ApiServerTest, PendingPublishesAreBoundedInBytes) {
  ApiConfig c;
  c.max_pending_publish_bytes = 1000;
  start(c);
  backend_.set_hold_publish(true);  // the agent's io thread does not get to them
  const std::string payload(400, 'x');
  auto first = std::async(std::launch::async, [&] { return publish("t", payload); });
  auto second = std::async(std::launch::async, [&] { return publish("t", payload); });
  ASSERT_TRUE(eventually([&] { return backend_.held_publishes() == 2; }));
  auto third = publish("t", payload);
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_FALSE(third.error_message().empty());
  backend_.release_publishes();
  EXPECT_TRUE(first.get().ok());
  EXPECT_TRUE(second.get().ok());
  // Answered publishes free their bytes.
  EXPECT_TRUE(publish("t", payload).ok());
  EXPECT_TRUE(publish("t", std::string(2000, 'y')).ok()) << "one publish always fits";
}

TEST_F(ApiServerTest, InsecureRemoteAddressRefusedUnlessAllowed) {
  ApiConfig remote;
  remote.address = "0.0.0.0:0";
  ApiServer refused(backend_, remote);
  auto r = refused.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_input);
  EXPECT_NE(r.error().message.find("allow_insecure_remote"), std::string::npos)
      << r.error().message;
  remote.allow_insecure_remote = true;
  ApiServer allowed(backend_, remote);
  EXPECT_TRUE(allowed.start());
  for (const char* local : {"127.0.0.1:0", "[::1]:0", "localhost:0"}) {
    ApiConfig c;
    c.address = local;
    ApiServer s(backend_, c);
    auto started = s.start();
    EXPECT_TRUE(started || started.error().code == Errc::io) << local;  // ::1 may be missing
  }
}

TEST_F(ApiServerTest, ListenStreamsAreBounded) {
  ApiConfig c;
  c.max_listen_streams = 2;
  start(c);
  auto a = listen({"t"});
  auto b = listen({"t"});
  auto s = listen_status({"t"});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_FALSE(s.error_message().empty());
  a->ctx.TryCancel();
  a.reset();
  ASSERT_TRUE(eventually([&] { return server_->listen_streams() == 1; }));
  auto c2 = listen({"t"});
  ASSERT_TRUE(publish("t", "hello").ok());
  v1::ListenEvent ev;
  ASSERT_TRUE(c2->reader->Read(&ev));
  EXPECT_EQ(ev.message().data(), "hello");
}

TEST_F(ApiServerTest, StopEndsListenStreamsAndRemovesListeners) {
  start();
  auto l = listen({"t"});
  EXPECT_EQ(backend_.listeners(), 1u);
  server_->stop();
  v1::ListenEvent ev;
  EXPECT_FALSE(l->reader->Read(&ev));
  EXPECT_EQ(l->reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(backend_.listeners(), 0u);
  server_->stop();  // idempotent
}

TEST_F(ApiServerTest, StatusDescribesTheAgent) {
  start();
  ASSERT_TRUE(subscribe("t").ok());
  grpc::ClientContext ctx;
  ctx.set_deadline(deadline());
  v1::StatusResponse resp;
  ASSERT_TRUE(admin_->Status(&ctx, v1::StatusRequest(), &resp).ok());
  EXPECT_EQ(resp.peer_id(), "12D3KooWSelf");
  ASSERT_EQ(resp.listen_addrs_size(), 1);
  ASSERT_EQ(resp.topics_size(), 1);
  EXPECT_EQ(resp.topics(0), "t");
  ASSERT_EQ(resp.peers_size(), 1);
  EXPECT_EQ(resp.peers(0).peer_id(), "12D3KooWOther");
  EXPECT_EQ(resp.peers(0).mesh_topics(0), "t");
  EXPECT_DOUBLE_EQ(resp.peers(0).score(), 1.5);
  EXPECT_EQ(resp.peers(0).agent_version(), "p2pmq/test");
  EXPECT_EQ(resp.connected_peers(), 1u);
  // Fields a backend leaves alone are empty.
  EXPECT_EQ(resp.topic_status_size(), 0);
  EXPECT_EQ(resp.archives_size(), 0);
  EXPECT_EQ(resp.sync().fetches(), 0u);
  EXPECT_FALSE(resp.sync().archive_role());
  EXPECT_EQ(resp.dht_mode(), "");
}

TEST_F(ApiServerTest, StatusCarriesSyncAndDhtState) {
  start();
  backend_.set_status_extender([](AgentStatus& s) {
    TopicStatus t;
    t.topic = "t";
    t.published_seqno = 42;
    t.origins = {{"12D3KooWA", 7}, {"12D3KooWB", 1ull << 40}};
    t.gaps = 3;
    t.synced_messages = 11;
    s.topic_status.push_back(t);
    s.topic_status.push_back(TopicStatus{"empty", 0, {}, 0, 0});
    s.archives.push_back({"12D3KooWArchive", {"/ip4/10.0.0.1/tcp/4001", "/dns4/a/tcp/1"}, "dht"});
    s.archives.push_back({"12D3KooWStatic", {}, "config"});
    s.sync = SyncActivity{1, 2, 3, 4, 5, true, 6};
    s.dht_mode = "server";
    s.dht_table_size = 17;
    s.connected_peers = 9;
    s.resources.push_back({"system", 1000, 1 << 30, 3, 8192, 2, 512, 4});
  });
  grpc::ClientContext ctx;
  ctx.set_deadline(deadline());
  v1::StatusResponse resp;
  ASSERT_TRUE(admin_->Status(&ctx, v1::StatusRequest(), &resp).ok());
  EXPECT_EQ(resp.peer_id(), "12D3KooWSelf");
  ASSERT_EQ(resp.topic_status_size(), 2);
  const auto& t = resp.topic_status(0);
  EXPECT_EQ(t.topic(), "t");
  EXPECT_EQ(t.published_seqno(), 42u);
  ASSERT_EQ(t.origins_size(), 2);
  EXPECT_EQ(t.origins(0).origin(), "12D3KooWA");
  EXPECT_EQ(t.origins(0).delivered_seqno(), 7u);
  EXPECT_EQ(t.origins(1).origin(), "12D3KooWB");
  EXPECT_EQ(t.origins(1).delivered_seqno(), 1ull << 40);
  EXPECT_EQ(t.gaps(), 3u);
  EXPECT_EQ(t.synced_messages(), 11u);
  EXPECT_EQ(resp.topic_status(1).topic(), "empty");
  EXPECT_EQ(resp.topic_status(1).origins_size(), 0);
  ASSERT_EQ(resp.archives_size(), 2);
  EXPECT_EQ(resp.archives(0).peer_id(), "12D3KooWArchive");
  ASSERT_EQ(resp.archives(0).addrs_size(), 2);
  EXPECT_EQ(resp.archives(0).addrs(1), "/dns4/a/tcp/1");
  EXPECT_EQ(resp.archives(0).source(), "dht");
  EXPECT_EQ(resp.archives(1).source(), "config");
  EXPECT_EQ(resp.archives(1).addrs_size(), 0);
  EXPECT_EQ(resp.sync().fetches(), 1u);
  EXPECT_EQ(resp.sync().fetched_messages(), 2u);
  EXPECT_EQ(resp.sync().fetch_failures(), 3u);
  EXPECT_EQ(resp.sync().served_requests(), 4u);
  EXPECT_EQ(resp.sync().served_messages(), 5u);
  EXPECT_TRUE(resp.sync().archive_role());
  EXPECT_EQ(resp.sync().archived_messages(), 6u);
  EXPECT_EQ(resp.dht_mode(), "server");
  EXPECT_EQ(resp.dht_table_size(), 17u);
  EXPECT_EQ(resp.connected_peers(), 9u);
  ASSERT_EQ(resp.resources_size(), 1);
  const auto& r = resp.resources(0);
  EXPECT_EQ(r.name(), "system");
  EXPECT_EQ(r.memory(), 1000u);
  EXPECT_EQ(r.memory_limit(), 1u << 30);
  EXPECT_EQ(r.streams(), 3u);
  EXPECT_EQ(r.streams_limit(), 8192u);
  EXPECT_EQ(r.connections(), 2u);
  EXPECT_EQ(r.connections_limit(), 512u);
  EXPECT_EQ(r.fds(), 4u);
}

TEST_F(ApiServerTest, HealthIsServing) {
  start();
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(deadline());
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(ApiServerTest, ReflectionListsTheServices) {
  start();
  namespace refl = p2pmq::test::reflection;
  // What a generated stub would do, with the wire-compatible subset messages.
  grpc::internal::RpcMethod method("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                   grpc::internal::RpcMethod::BIDI_STREAMING, channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(deadline());
  std::unique_ptr<
      grpc::ClientReaderWriter<refl::ServerReflectionRequest, refl::ServerReflectionResponse>>
      stream(grpc::internal::ClientReaderWriterFactory<
             refl::ServerReflectionRequest, refl::ServerReflectionResponse>::Create(channel_.get(),
                                                                                    method, &ctx));
  refl::ServerReflectionRequest req;
  req.set_list_services("");
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->WritesDone());
  refl::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::set<std::string> names;
  for (const auto& s : resp.list_services_response().service()) names.insert(s.name());
  EXPECT_TRUE(names.contains("p2pmq.v1.Control"));
  EXPECT_TRUE(names.contains("p2pmq.v1.Messaging"));
  EXPECT_TRUE(names.contains("p2pmq.v1.Admin"));
  EXPECT_TRUE(names.contains("grpc.health.v1.Health"));
  EXPECT_FALSE(names.contains("p2pmq.v1.MsgValidation"));  // the parent implements that one
  while (stream->Read(&resp)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ApiServerTest, StartFailsClearly) {
  ApiConfig c;
  c.tls_cert_file = "/nonexistent/cert.pem";
  c.tls_key_file = "/nonexistent/key.pem";
  ApiServer tls(backend_, c);
  auto r = tls.start();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_input);

  ApiConfig half;
  half.tls_cert_file = "/nonexistent/cert.pem";
  EXPECT_FALSE(ApiServer(backend_, half).start());

  ApiConfig bad;
  bad.address = "256.1.1.1:1";
  bad.allow_insecure_remote = true;
  auto rb = ApiServer(backend_, bad).start();
  ASSERT_FALSE(rb);
  EXPECT_EQ(rb.error().code, Errc::io);
}

TEST_F(ApiServerTest, ServesTls) {
  char dir_template[] = "/tmp/p2pmq-api-tls-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      "-nodes -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 "
      "-keyout " +
      dir + "/key.pem -out " + dir + "/cert.pem >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "the openssl command is not available";
  ApiConfig c;
  c.tls_cert_file = dir + "/cert.pem";
  c.tls_key_file = dir + "/key.pem";
  start(c);

  std::ifstream in(c.tls_cert_file);
  std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  grpc::SslCredentialsOptions opts;
  opts.pem_root_certs = pem;
  auto tls = grpc::CreateChannel(server_->bound_address(), grpc::SslCredentials(opts));
  auto stub = v1::Messaging::NewStub(tls);
  grpc::ClientContext ctx;
  ctx.set_deadline(deadline());
  v1::PublishRequest req;
  req.set_topic("t");
  req.set_data("over tls");
  v1::PublishResponse resp;
  auto s = stub->Publish(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.seqno(), 1u);

  // Plaintext clients are refused.
  grpc::ClientContext plain_ctx;
  plain_ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  EXPECT_FALSE(messaging_->Publish(&plain_ctx, req, &resp).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace p2pmq::api::test
