// SyncService on loopback hosts in one io_context on the test thread: serving the three queries
// from an archive, paging, error replies, malformed and flooding clients, fetch_range failing
// over between archives, request timeouts, and store() into the RocksDB archive.
// Everything waits on events with a deadline; nothing sleeps.
#include "sync/io/sync_service.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/varint.hpp"
#include "pubsub/message.hpp"
#include "pubsub/rpc.hpp"
#include "sync/memory_archive.hpp"
#include "sync/store/archive_store.hpp"

namespace p2pmq::sync {
namespace {

namespace asio = host::asio;
using host::Clock;
using host::Task;
using namespace std::chrono_literals;

constexpr auto kEventTimeout = 30s;  // generous: a loaded 2-core box, ASan too

#define CO_ASSERT(cond)                            \
  do {                                             \
    if (!(cond)) {                                 \
      ADD_FAILURE() << "assertion failed: " #cond; \
      co_return;                                   \
    }                                              \
  } while (0)

// Takes a named Result (evaluated twice): never a co_await expression.
#define CO_ASSERT_OK(result)                                                   \
  do {                                                                         \
    if (!(result)) {                                                           \
      ADD_FAILURE() << #result << " failed: " << (result).error().to_string(); \
      co_return;                                                               \
    }                                                                          \
  } while (0)

// A publisher whose signed messages go into archives.
struct Publisher {
  crypto::PrivateKey key = crypto::PrivateKey::generate();
  crypto::PeerId id = crypto::PeerId::from_public_key(key.public_key());

  Bytes message(const TopicId& topic, uint64_t seqno, size_t pad = 0) const {
    std::string data = "m" + std::to_string(seqno) + std::string(pad, '.');
    return pubsub::encode_message(pubsub::make_message(key, topic, to_bytes(data), seqno,
                                                       pubsub::SignaturePolicy::strict_sign));
  }
  void fill(Archive& archive, const TopicId& topic, uint64_t from, uint64_t to,
            size_t pad = 0) const {
    for (uint64_t s = from; s <= to; ++s)
      ASSERT_TRUE(archive.put(topic, id.bytes(), s, message(topic, s, pad), WallClock::now()));
  }
};

// A MemoryArchive whose range() answers `pages` times, then blocks the worker until open()
// (or a generous timeout, so a failed test cannot hang the worker's join).
class GatedArchive : public Archive {
 public:
  explicit GatedArchive(size_t pages) : pages_(pages) {}
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  Result<bool> put(const TopicId& topic, BytesView origin, uint64_t seqno, BytesView message,
                   WallTime received) override {
    return inner.put(topic, origin, seqno, message, received);
  }
  bool has_topic(const TopicId& topic) override { return inner.has_topic(topic); }
  Result<QueryResult> latest(const TopicId& topic, uint64_t n, size_t max_bytes) override {
    return inner.latest(topic, n, max_bytes);
  }
  Result<QueryResult> range(const TopicId& topic, BytesView origin, uint64_t from, uint64_t to,
                            size_t max_bytes) override {
    {
      std::unique_lock lock(mutex_);
      if (pages_ == 0)
        cv_.wait_for(lock, kEventTimeout, [&] { return open_; });
      else
        --pages_;
    }
    return inner.range(topic, origin, from, to, max_bytes);
  }
  Result<QueryResult> since(const TopicId& topic, const std::vector<Watermark>& watermarks,
                            const std::optional<Position>& after, size_t max_bytes) override {
    return inner.since(topic, watermarks, after, max_bytes);
  }

  MemoryArchive inner;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  size_t pages_;
  bool open_ = false;
};

struct Node {
  Node(asio::io_context& io, Archive* archive, SyncServiceConfig config)
      : host(io, crypto::PrivateKey::generate(), loopback()), sync(host, archive, config) {
    sync.on_misbehaviour([this](const crypto::PeerId& peer, const std::string& reason) {
      misbehaviours.emplace_back(peer, reason);
    });
  }
  static host::HostConfig loopback() {
    host::HostConfig config;
    config.listen.push_back(Multiaddr::parse("/ip4/127.0.0.1/tcp/0").value());
    return config;
  }
  Multiaddr addr() const { return host.listen_addrs().at(0).with_p2p(host.peer_id().bytes()); }
  const crypto::PeerId& id() const { return host.peer_id(); }
  size_t misbehaviours_of(const crypto::PeerId& peer) const {
    return std::count_if(misbehaviours.begin(), misbehaviours.end(),
                         [&](const auto& m) { return m.first == peer; });
  }

  host::Host host;
  SyncService sync;  // after the host: goes first
  std::vector<std::pair<crypto::PeerId, std::string>> misbehaviours;
};

// Counts events and lets a coroutine wait for a count.
class Counter {
 public:
  explicit Counter(asio::any_io_executor ex) : signal_(ex) {}
  void bump() {
    ++n_;
    signal_.notify();
  }
  size_t count() const { return n_; }
  Task<bool> wait_for(size_t n) {
    auto deadline = Clock::now() + kEventTimeout;
    for (;;) {
      if (n_ >= n) co_return true;
      bool woken = co_await signal_.wait_until(deadline);
      if (!woken) co_return n_ >= n;
    }
  }

 private:
  size_t n_ = 0;
  host::Signal signal_;
};

// True once pred() holds, checking every few milliseconds; false at the deadline.
Task<bool> eventually(std::function<bool()> pred) {
  auto deadline = Clock::now() + kEventTimeout;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!pred()) {
    if (Clock::now() >= deadline) co_return false;
    timer.expires_after(5ms);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return true;
}

std::string data_of(const FetchedMessage& m) {
  std::string s(as_string(m.message.data));
  return s.substr(0, s.find('.'));
}

struct Collected {
  std::vector<FetchedMessage> messages;
  FetchHandler handler() {
    return [this](FetchedMessage m) { messages.push_back(std::move(m)); };
  }
  std::vector<uint64_t> seqnos() const {
    std::vector<uint64_t> out;
    for (const auto& m : messages) out.push_back(m.seqno);
    return out;
  }
};

std::vector<uint64_t> iota(uint64_t from, uint64_t to) {
  std::vector<uint64_t> out;
  for (uint64_t s = from; s <= to; ++s) out.push_back(s);
  return out;
}

Bytes framed(BytesView protobuf) {
  Bytes out;
  append_framed(out, protobuf);
  return out;
}

class SyncServiceTest : public ::testing::Test {
 protected:
  Node& make_node(Archive* archive = nullptr, SyncServiceConfig config = {}) {
    nodes.push_back(std::make_unique<Node>(io, archive, config));
    auto started = nodes.back()->host.start();
    if (!started) throw std::runtime_error("host start: " + started.error().to_string());
    nodes.back()->sync.start();
    return *nodes.back();
  }

  // Runs the scenario on the io_context; fails the test when it does not finish in `limit`.
  void run(std::function<Task<void>()> scenario, std::chrono::seconds limit = 120s) {
    struct State {
      bool done = false;
      std::exception_ptr error;
    };
    auto state = std::make_shared<State>();
    io.restart();
    asio::steady_timer watchdog(io, limit);
    watchdog.async_wait([this](boost::system::error_code ec) {
      if (!ec) io.stop();
    });
    asio::co_spawn(io, std::move(scenario), [this, state](std::exception_ptr e) {
      state->done = true;
      state->error = e;
      io.stop();
    });
    io.run();
    watchdog.cancel();
    if (!state->done) {
      abandoned_ = true;
      ADD_FAILURE() << "scenario did not finish within " << limit.count() << " s";
      return;
    }
    if (state->error) {
      try {
        std::rethrow_exception(state->error);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "scenario threw: " << e.what();
      }
    }
  }

  void TearDown() override {
    if (abandoned_) return;  // the scenario still references the test body's locals
    run([this]() -> Task<void> {
      for (auto& node : nodes) co_await node->host.shutdown();
    });
  }

  static Task<Result<void>> connect(Node& from, Node& to) {
    auto conn = co_await from.host.connect(to.addr());
    if (!conn) co_return tl::unexpected(conn.error());
    co_return Result<void>{};
  }

  MemoryArchive& memory_archive(Retention retention = {}) {
    archives.push_back(std::make_unique<MemoryArchive>(retention));
    return static_cast<MemoryArchive&>(*archives.back());
  }

  // Order matters: nodes (and their workers) go before the archives they read and the
  // io_context they use.
  asio::io_context io;
  std::vector<std::unique_ptr<Archive>> archives;
  std::vector<std::unique_ptr<Node>> nodes;
  bool abandoned_ = false;
};

// ---------------------------------------------------------------- the three queries

TEST_F(SyncServiceTest, ServesLatestRangeAndSince) {
  auto& archive = memory_archive();
  Publisher a, b;
  a.fill(archive, "t", 1, 10);
  b.fill(archive, "t", 1, 5);
  Node& server = make_node(&archive);
  Node& client = make_node();
  run([&]() -> Task<void> {
    auto client_server = co_await connect(client, server);
    CO_ASSERT_OK(client_server);

    Collected latest;
    auto got = co_await client.sync.fetch_latest(server.id(), "t", 3, latest.handler());
    CO_ASSERT_OK(got);
    EXPECT_EQ(got->messages, 3u);
    EXPECT_FALSE(got->truncated);
    CO_ASSERT(latest.messages.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
      const auto& m = latest.messages[i];
      EXPECT_EQ(m.origin, b.id.bytes());
      EXPECT_EQ(m.seqno, 3 + i);
      EXPECT_EQ(data_of(m), "m" + std::to_string(3 + i));
      EXPECT_EQ(m.message.topic, "t");
      EXPECT_EQ(m.raw, b.message("t", 3 + i));  // the stored bytes, unchanged
      EXPECT_TRUE(pubsub::check_message(m.message, pubsub::SignaturePolicy::strict_sign));
    }

    Collected range;
    auto request = range_request("t", a.id.bytes(), 3, 6);
    got = co_await client.sync.fetch(server.id(), std::move(request), range.handler());
    CO_ASSERT_OK(got);
    EXPECT_EQ(range.seqnos(), iota(3, 6));
    for (const auto& m : range.messages) EXPECT_EQ(m.origin, a.id.bytes());

    Collected since;
    std::vector<Watermark> marks;
    marks.push_back(Watermark{a.id.bytes(), 8});
    got = co_await client.sync.fetch_since(server.id(), "t", std::move(marks), since.handler());
    CO_ASSERT_OK(got);
    std::vector<std::pair<Bytes, uint64_t>> keys, expected;
    for (const auto& m : since.messages) keys.emplace_back(m.origin, m.seqno);
    for (uint64_t s = 9; s <= 10; ++s) expected.emplace_back(a.id.bytes(), s);
    for (uint64_t s = 1; s <= 5; ++s) expected.emplace_back(b.id.bytes(), s);
    std::sort(keys.begin(), keys.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(keys, expected);

    const auto& served = server.sync.stats();
    EXPECT_EQ(served.requests_served, 3u);
    EXPECT_EQ(served.messages_served, 3u + 4u + 7u);
    EXPECT_EQ(served.error_replies, 0u);
    const auto& fetched = client.sync.stats();
    EXPECT_EQ(fetched.fetches, 3u);
    EXPECT_EQ(fetched.fetched_messages, 14u);
    EXPECT_EQ(fetched.fetch_failures, 0u);
    EXPECT_TRUE(server.misbehaviours.empty());
    EXPECT_TRUE(client.misbehaviours.empty());
  });
}

TEST_F(SyncServiceTest, PagesThroughManyBatches) {
  auto& archive = memory_archive();
  Publisher p;
  p.fill(archive, "t", 1, 2000);
  SyncServiceConfig config;
  config.server.limits.max_batch_bytes = 8 * 1024;  // ~50 messages a batch
  Node& server = make_node(&archive, config);
  Node& client = make_node();
  run([&]() -> Task<void> {
    auto client_server = co_await connect(client, server);
    CO_ASSERT_OK(client_server);

    Collected range;
    auto request = range_request("t", p.id.bytes(), 1, 2000);
    auto got = co_await client.sync.fetch(server.id(), std::move(request), range.handler());
    CO_ASSERT_OK(got);
    EXPECT_EQ(range.seqnos(), iota(1, 2000));
    EXPECT_GT(got->batches, 20u);
    EXPECT_FALSE(got->truncated);

    Collected latest;
    got = co_await client.sync.fetch_latest(server.id(), "t", 2000, latest.handler());
    CO_ASSERT_OK(got);
    EXPECT_EQ(latest.seqnos(), iota(1, 2000));
    EXPECT_GT(got->batches, 20u);

    Collected since;
    std::vector<Watermark> none;
    got = co_await client.sync.fetch_since(server.id(), "t", std::move(none), since.handler());
    CO_ASSERT_OK(got);
    EXPECT_EQ(since.seqnos(), iota(1, 2000));

    EXPECT_EQ(server.sync.stats().messages_served, 6000u);
  });
}

TEST_F(SyncServiceTest, TruncatedSinceAnswersAreAskedAgain) {
  auto& archive = memory_archive();
  Publisher p, q;
  p.fill(archive, "t", 1, 300, 100);
  q.fill(archive, "t", 1, 300, 100);
  SyncServiceConfig config;
  config.server.max_response_bytes = 48 * 1024;  // each answer stops after ~190 messages
  Node& server = make_node(&archive, config);
  Node& client = make_node();
  run([&]() -> Task<void> {
    auto client_server = co_await connect(client, server);
    CO_ASSERT_OK(client_server);
    Collected since;
    std::vector<Watermark> none;
    auto got = co_await client.sync.fetch_since(server.id(), "t", std::move(none), since.handler());
    CO_ASSERT_OK(got);
    EXPECT_EQ(got->messages, 600u);
    EXPECT_FALSE(got->truncated);
    EXPECT_EQ(since.messages.size(), 600u);
    EXPECT_GT(client.sync.stats().fetches, 2u);
  });
}

// ---------------------------------------------------------------- error replies

TEST_F(SyncServiceTest, ErrorRepliesEndTheRequest) {
  auto& archive = memory_archive();
  Publisher p;
  p.fill(archive, "t", 1, 10);
  Node& server = make_node(&archive);
  Node& client = make_node();
  run([&]() -> Task<void> {
    auto client_server = co_await connect(client, server);
    CO_ASSERT_OK(client_server);
    Collected none;
    auto got = co_await client.sync.fetch_latest(server.id(), "unknown", 5, none.handler());
    CO_ASSERT(!got);
    EXPECT_EQ(got.error().code, Errc::not_found);
    EXPECT_NE(got.error().message.find("UNKNOWN_TOPIC"), std::string::npos) << got.error().message;

    auto backwards = range_request("t", p.id.bytes(), 9, 3);
    got = co_await client.sync.fetch(server.id(), std::move(backwards), none.handler());
    CO_ASSERT(!got);
    EXPECT_EQ(got.error().code, Errc::invalid_input);
    EXPECT_NE(got.error().message.find("BAD_RANGE"), std::string::npos);

    // Over the codec's max_count: refused by the decoder, answered TOO_LARGE, and counted as
    // misbehaviour.
    got = co_await client.sync.fetch_latest(server.id(), "t", 1'000'000, none.handler());
    CO_ASSERT(!got);
    EXPECT_EQ(got.error().code, Errc::limit_exceeded);
    EXPECT_NE(got.error().message.find("TOO_LARGE"), std::string::npos);
    EXPECT_EQ(server.misbehaviours_of(client.id()), 1u);

    EXPECT_TRUE(none.messages.empty());
    EXPECT_EQ(client.sync.stats().fetch_failures, 3u);
    EXPECT_EQ(server.sync.stats().error_replies, 3u);

    // Still served.
    Collected fine;
    got = co_await client.sync.fetch_latest(server.id(), "t", 10, fine.handler());
    CO_ASSERT_OK(got);
    EXPECT_EQ(fine.seqnos(), iota(1, 10));
  });
}

TEST_F(SyncServiceTest, ClientOnlyServiceDoesNotSpeakTheProtocol) {
  Node& server = make_node();  // no archive
  Node& client = make_node();
  run([&]() -> Task<void> {
    auto client_server = co_await connect(client, server);
    CO_ASSERT_OK(client_server);
    Collected none;
    auto got = co_await client.sync.fetch_latest(server.id(), "t", 5, none.handler());
    EXPECT_FALSE(got);
    Counter done(io.get_executor());
    std::optional<Result<bool>> stored;
    server.sync.store("t", Bytes{1}, 1, Bytes{2}, WallClock::now(), [&](Result<bool> r) {
      stored = std::move(r);
      done.bump();
    });
    bool stored_in_time = co_await done.wait_for(1);
    CO_ASSERT(stored_in_time);
    CO_ASSERT(stored && !*stored);
    EXPECT_EQ(stored->error().code, Errc::unsupported);
  });
}

// ---------------------------------------------------------------- misbehaving clients

TEST_F(SyncServiceTest, MalformedRequestResetsTheStreamAndOthersAreStillServed) {
  auto& archive = memory_archive();
  Publisher p;
  p.fill(archive, "t", 1, 10);
  Node& server = make_node(&archive);
  Node& bad = make_node();
  Node& good = make_node();
  const std::vector<std::string> protocols{std::string(kSyncProtocol)};
  // Reads until the stream fails or ends; true when it was reset (not closed cleanly).
  auto reset_by_remote = [](std::shared_ptr<host::Stream> stream) -> Task<bool> {
    Bytes buf(4096);
    for (;;) {
      auto n = co_await stream->read_some(buf);
      if (!n) co_return true;
      if (*n == 0) co_return false;
    }
  };
  run([&]() -> Task<void> {
    auto bad_server = co_await connect(bad, server);
    CO_ASSERT_OK(bad_server);
    auto good_server = co_await connect(good, server);
    CO_ASSERT_OK(good_server);

    // Not a protobuf.
    auto stream = co_await bad.host.new_stream(server.id(), protocols);
    CO_ASSERT_OK(stream);
    Bytes garbage{0xFF, 0xFF, 0xFF, 0xFF};
    auto written = co_await (*stream)->write(framed(garbage));
    CO_ASSERT_OK(written);
    bool reset1 = co_await reset_by_remote(*stream);
    EXPECT_TRUE(reset1);
    EXPECT_EQ(server.misbehaviours_of(bad.id()), 1u);

    // A bad length prefix.
    stream = co_await bad.host.new_stream(server.id(), protocols);
    CO_ASSERT_OK(stream);
    Bytes bad_prefix(12, 0xFF);
    written = co_await (*stream)->write(bad_prefix);
    CO_ASSERT_OK(written);
    bool reset2 = co_await reset_by_remote(*stream);
    EXPECT_TRUE(reset2);
    EXPECT_EQ(server.misbehaviours_of(bad.id()), 2u);

    // A frame over max_request_size: a TOO_LARGE reply, then the reset.
    stream = co_await bad.host.new_stream(server.id(), protocols);
    CO_ASSERT_OK(stream);
    Bytes huge = varint_bytes(uint64_t{1} << 30);
    written = co_await (*stream)->write(huge);
    CO_ASSERT_OK(written);
    auto reply = co_await host::read_length_prefixed(**stream, 4096);
    CO_ASSERT_OK(reply);
    auto decoded = decode_response(*reply, SyncLimits{});
    CO_ASSERT_OK(decoded);
    CO_ASSERT(std::holds_alternative<ErrorReply>(decoded->item));
    EXPECT_EQ(std::get<ErrorReply>(decoded->item).code, ErrorCode::too_large);
    bool reset3 = co_await reset_by_remote(*stream);
    EXPECT_TRUE(reset3);
    EXPECT_EQ(server.misbehaviours_of(bad.id()), 3u);

    // Over a codec limit in a well-formed request: an error reply with the request's id, and
    // the stream goes on serving the next request.
    stream = co_await bad.host.new_stream(server.id(), protocols);
    CO_ASSERT_OK(stream);
    SyncRequest too_many{77, LatestQuery{"t", 1'000'000}};
    SyncRequest fine{78, LatestQuery{"t", 2}};
    Bytes both = framed(encode_request(too_many));
    append(both, framed(encode_request(fine)));
    written = co_await (*stream)->write(both);
    CO_ASSERT_OK(written);
    reply = co_await host::read_length_prefixed(**stream, SyncLimits{}.max_response_size);
    CO_ASSERT_OK(reply);
    decoded = decode_response(*reply, SyncLimits{});
    CO_ASSERT_OK(decoded);
    EXPECT_EQ(decoded->id, 77u);
    CO_ASSERT(std::holds_alternative<ErrorReply>(decoded->item));
    EXPECT_EQ(std::get<ErrorReply>(decoded->item).code, ErrorCode::too_large);
    reply = co_await host::read_length_prefixed(**stream, SyncLimits{}.max_response_size);
    CO_ASSERT_OK(reply);
    decoded = decode_response(*reply, SyncLimits{});
    CO_ASSERT_OK(decoded);
    EXPECT_EQ(decoded->id, 78u);
    CO_ASSERT(std::holds_alternative<Batch>(decoded->item));
    EXPECT_EQ(std::get<Batch>(decoded->item).messages.size(), 2u);
    (*stream)->close_write();
    bool reset4 = co_await reset_by_remote(*stream);
    EXPECT_FALSE(reset4);  // a clean end after the last answer
    EXPECT_EQ(server.misbehaviours_of(bad.id()), 4u);
    EXPECT_EQ(server.sync.stats().malformed_requests, 4u);

    // The connections are intact and everyone is still served.
    Collected a, b;
    auto got = co_await good.sync.fetch_latest(server.id(), "t", 10, a.handler());
    CO_ASSERT_OK(got);
    EXPECT_EQ(a.seqnos(), iota(1, 10));
    got = co_await bad.sync.fetch_latest(server.id(), "t", 10, b.handler());
    CO_ASSERT_OK(got);
    EXPECT_EQ(b.seqnos(), iota(1, 10));
    EXPECT_EQ(server.misbehaviours_of(good.id()), 0u);
    // Every stream's slot is given back once the server sees it end.
    bool released = co_await eventually([&] { return server.sync.inbound_streams() == 0; });
    EXPECT_TRUE(released);
  });
}

// Finding 6: the archive write queue is bounded in bytes as well as in count.
TEST_F(SyncServiceTest, StoreQueueIsBoundedInBytes) {
  auto& archive = memory_archive();
  SyncServiceConfig config;
  config.max_pending_store_bytes = 100;
  Node& server = make_node(&archive, config);
  run([&]() -> Task<void> {
    Counter done(io.get_executor());
    std::vector<Result<bool>> results;
    auto record = [&](Result<bool> r) {
      results.push_back(std::move(r));
      done.bump();
    };
    // Queued back to back: completions come through the io thread, after this returns.
    server.sync.store("t", Bytes{1}, 1, Bytes(60, 'a'), WallClock::now(), record);
    EXPECT_EQ(server.sync.pending_store_bytes(), 60u);
    server.sync.store("t", Bytes{1}, 2, Bytes(60, 'b'), WallClock::now(), record);
    EXPECT_EQ(server.sync.pending_store_bytes(), 60u);  // refused
    bool both = co_await done.wait_for(2);
    CO_ASSERT(both);
    size_t refused = std::count_if(results.begin(), results.end(), [](const auto& r) {
      return !r && r.error().code == Errc::limit_exceeded;
    });
    EXPECT_EQ(refused, 1u);
    EXPECT_EQ(server.sync.pending_store_bytes(), 0u);
    EXPECT_EQ(archive.size("t"), 1u);
  });
}

// Finding 8: over the rate, an archive is busy; the requester is not penalised for it.
TEST_F(SyncServiceTest, OverRateRequestsAreAnsweredBusyWithoutPenalty) {
  auto& archive = memory_archive();
  Publisher p;
  p.fill(archive, "t", 1, 10);
  SyncServiceConfig config;
  config.server.requests_per_second = 0.001;
  config.server.burst = 3;
  Node& server = make_node(&archive, config);
  Node& flooder = make_node();
  Node& good = make_node();
  const std::vector<std::string> protocols{std::string(kSyncProtocol)};
  run([&]() -> Task<void> {
    auto flooder_server = co_await connect(flooder, server);
    CO_ASSERT_OK(flooder_server);
    auto good_server = co_await connect(good, server);
    CO_ASSERT_OK(good_server);

    // 50 requests written at once on one stream.
    auto stream = co_await flooder.host.new_stream(server.id(), protocols);
    CO_ASSERT_OK(stream);
    Bytes flood;
    for (uint64_t id = 1; id <= 50; ++id) {
      SyncRequest request{id, LatestQuery{"t", 1}};
      append(flood, framed(encode_request(request)));
    }
    auto written = co_await (*stream)->write(flood);
    CO_ASSERT_OK(written);
    size_t batches = 0, limited = 0;
    for (uint64_t id = 1; id <= 50; ++id) {
      auto reply = co_await host::read_length_prefixed(**stream, SyncLimits{}.max_response_size);
      CO_ASSERT_OK(reply);
      auto decoded = decode_response(*reply, SyncLimits{});
      CO_ASSERT_OK(decoded);
      EXPECT_EQ(decoded->id, id);
      if (const auto* e = std::get_if<ErrorReply>(&decoded->item)) {
        EXPECT_EQ(e->code, ErrorCode::rate_limited);
        EXPECT_NE(e->message.find("busy"), std::string::npos) << e->message;
        ++limited;
      } else {
        ++batches;
      }
    }
    EXPECT_EQ(batches, 3u);
    EXPECT_EQ(limited, 47u);
    (*stream)->close_write();

    // And as many concurrent fetches: every one ends, refused or rate limited.
    Counter finished(io.get_executor());
    size_t failed = 0;
    for (int i = 0; i < 20; ++i)
      asio::co_spawn(
          io,
          [&]() -> Task<void> {
            auto got = co_await flooder.sync.fetch_latest(server.id(), "t", 1, nullptr);
            if (!got) ++failed;
            finished.bump();
          },
          asio::detached);
    bool all_finished = co_await finished.wait_for(20);
    CO_ASSERT(all_finished);
    EXPECT_EQ(failed, 20u);
    EXPECT_GE(server.sync.stats().rate_limited, 47u);
    EXPECT_EQ(server.misbehaviours_of(flooder.id()), 0u);

    // Another peer has its own bucket.
    Collected fine;
    auto got = co_await good.sync.fetch_latest(server.id(), "t", 10, fine.handler());
    CO_ASSERT_OK(got);
    EXPECT_EQ(fine.seqnos(), iota(1, 10));
    EXPECT_EQ(server.misbehaviours_of(good.id()), 0u);
  });
}

// ---------------------------------------------------------------- fetch_range

TEST_F(SyncServiceTest, FetchRangeCompletesFromTheSecondArchiveWhenTheFirstDiesMidway) {
  Publisher p;
  auto gated = std::make_unique<GatedArchive>(10);  // ten pages, then the archive stalls
  GatedArchive& first_archive = *gated;
  archives.push_back(std::move(gated));
  auto& second_archive = memory_archive();
  p.fill(first_archive.inner, "t", 1, 2000);
  p.fill(second_archive, "t", 1, 2000, 1);  // padded: tells the archives' copies apart
  SyncServiceConfig config;
  config.server.limits.max_batch_bytes = 2 * 1024;  // about a dozen messages a page
  Node& first = make_node(&first_archive, config);
  Node& second = make_node(&second_archive, config);
  Node& client = make_node();
  run([&]() -> Task<void> {
    auto client_first = co_await connect(client, first);
    CO_ASSERT_OK(client_first);
    auto client_second = co_await connect(client, second);
    CO_ASSERT_OK(client_second);
    std::vector<uint64_t> seqnos;
    size_t from_first = 0;
    bool shut = false;
    // Midway through the answer, the first archive's host shuts down (and its archive stays
    // stalled until it is gone).
    FetchHandler handler = [&](FetchedMessage m) {
      seqnos.push_back(m.seqno);
      if (m.message.data.back() != '.') {
        EXPECT_EQ(from_first, seqnos.size() - 1) << "the first archive's messages come first";
        ++from_first;
      }
      if (!shut && seqnos.size() == 50) {
        shut = true;
        asio::co_spawn(
            io,
            [&]() -> Task<void> {
              co_await first.host.shutdown();
              first_archive.open();
            },
            asio::detached);
      }
    };
    std::vector<crypto::PeerId> archives{first.id(), second.id()};
    auto result = co_await client.sync.fetch_range(archives, "t", p.id.bytes(), 1, 2000, handler);
    first_archive.open();
    EXPECT_TRUE(result.complete());
    EXPECT_EQ(result.fetched, 2000u);
    EXPECT_EQ(seqnos, iota(1, 2000));  // in order, each once
    EXPECT_EQ(result.archives_asked, 2u);
    EXPECT_TRUE(result.last_error.has_value());
    EXPECT_GE(from_first, 50u);
    EXPECT_LT(from_first, 2000u);
    EXPECT_LE(from_first, first.sync.stats().messages_served);
    // The second archive was asked only for what was missing.
    EXPECT_EQ(second.sync.stats().messages_served, 2000u - from_first);
  });
}

TEST_F(SyncServiceTest, FetchRangeAsksTheNextArchiveForWhatTheFirstLacks) {
  auto& empty = memory_archive();
  auto& partial = memory_archive();
  auto& full = memory_archive(Retention{100'000, {}, 100'000});
  Publisher p, other;
  other.fill(empty, "other", 1, 5);  // a different topic: UNKNOWN_TOPIC
  p.fill(partial, "t", 1, 1000);
  p.fill(partial, "t", 1500, 1600);
  p.fill(full, "t", 1, 12'000);
  Node& a = make_node(&empty);
  Node& b = make_node(&partial);
  Node& c = make_node(&full);
  Node& client = make_node();
  SyncServiceConfig one_request;
  one_request.max_range_requests = 1;
  Node& limited = make_node(nullptr, one_request);
  run([&]() -> Task<void> {
    auto client_a = co_await connect(client, a);
    CO_ASSERT_OK(client_a);
    auto client_b = co_await connect(client, b);
    CO_ASSERT_OK(client_b);
    auto client_c = co_await connect(client, c);
    CO_ASSERT_OK(client_c);
    Collected got;
    std::vector<crypto::PeerId> archives{a.id(), b.id(), c.id()};
    auto result =
        co_await client.sync.fetch_range(archives, "t", p.id.bytes(), 1, 2000, got.handler());
    EXPECT_TRUE(result.complete());
    EXPECT_EQ(result.fetched, 2000u);
    EXPECT_EQ(result.archives_asked, 3u);
    auto seqnos = got.seqnos();
    std::sort(seqnos.begin(), seqnos.end());
    EXPECT_EQ(seqnos, iota(1, 2000));
    EXPECT_EQ(b.sync.stats().messages_served, 1101u);
    // Asked from the first seqno missing: 1001..2000, of which 1500..1600 were had already.
    EXPECT_EQ(c.sync.stats().messages_served, 1000u);

    // Spans over max_range_span are split; what nobody has is reported missing.
    Collected wide;
    std::vector<crypto::PeerId> just_c{c.id()};
    result = co_await client.sync.fetch_range(just_c, "t", p.id.bytes(), 1, 15'000, wide.handler());
    EXPECT_EQ(result.fetched, 12'000u);
    EXPECT_EQ(result.requests, 2u);
    EXPECT_EQ(wide.seqnos(), iota(1, 12'000));
    CO_ASSERT(result.missing.size() == 1);
    EXPECT_EQ(result.missing[0], std::make_pair(uint64_t{12'001}, uint64_t{15'000}));

    // At most max_range_requests requests.
    auto limited_c = co_await connect(limited, c);
    CO_ASSERT_OK(limited_c);
    Collected first_span;
    result = co_await limited.sync.fetch_range(just_c, "t", p.id.bytes(), 1, 15'000,
                                               first_span.handler());
    EXPECT_EQ(result.requests, 1u);
    EXPECT_EQ(first_span.seqnos(), iota(1, 10'000));
    CO_ASSERT(result.missing.size() == 1);
    EXPECT_EQ(result.missing[0], std::make_pair(uint64_t{10'001}, uint64_t{15'000}));

    // Through the tracker's FetchRange.
    Collected tracked;
    FetchRange gap{"t", p.id.bytes(), 10, 19};
    result = co_await client.sync.fetch_range(just_c, gap, tracked.handler());
    EXPECT_TRUE(result.complete());
    EXPECT_EQ(tracked.seqnos(), iota(10, 19));
  });
}

// ---------------------------------------------------------------- timeouts

TEST_F(SyncServiceTest, RequestTimesOutWhenTheArchiveNeverAnswers) {
  auto& archive = memory_archive();
  Publisher p;
  p.fill(archive, "t", 1, 50);
  Node& silent = make_node();  // reads requests, never answers
  // Shared with the handler, which may outlive the test body.
  struct Silent {
    explicit Silent(asio::any_io_executor ex) : streams(ex), resets(ex) {}
    Counter streams, resets;
  };
  auto state = std::make_shared<Silent>(io.get_executor());
  silent.host.handle(std::string(kSyncProtocol),
                     [state](std::shared_ptr<host::Stream> stream) -> Task<void> {
                       state->streams.bump();
                       Bytes buf(4096);
                       for (;;) {
                         auto n = co_await stream->read_some(buf);
                         if (!n) {
                           state->resets.bump();
                           co_return;
                         }
                         if (*n == 0) co_return;
                       }
                     });
  Node& server = make_node(&archive);
  SyncServiceConfig config;
  config.request_timeout = 300ms;
  Node& client = make_node(nullptr, config);
  run([&]() -> Task<void> {
    auto client_silent = co_await connect(client, silent);
    CO_ASSERT_OK(client_silent);
    auto client_server = co_await connect(client, server);
    CO_ASSERT_OK(client_server);
    Collected none;
    auto started = Clock::now();
    auto got = co_await client.sync.fetch_latest(silent.id(), "t", 5, none.handler());
    CO_ASSERT(!got);
    EXPECT_EQ(got.error().code, Errc::timeout) << got.error().to_string();
    EXPECT_GE(Clock::now() - started, 300ms);
    EXPECT_EQ(state->streams.count(), 1u);
    EXPECT_EQ(client.sync.stats().fetch_failures, 1u);

    Collected range;
    std::vector<crypto::PeerId> archives{silent.id(), server.id()};
    auto result =
        co_await client.sync.fetch_range(archives, "t", p.id.bytes(), 1, 50, range.handler());
    EXPECT_TRUE(result.complete());
    EXPECT_EQ(range.seqnos(), iota(1, 50));
    CO_ASSERT(result.last_error.has_value());
    EXPECT_EQ(result.last_error->code, Errc::timeout);
    // The timed-out streams were reset, not left open.
    bool reset = co_await state->resets.wait_for(2);
    EXPECT_TRUE(reset);
  });
}

TEST_F(SyncServiceTest, IdleInboundStreamsAreReset) {
  auto& archive = memory_archive();
  SyncServiceConfig config;
  config.inbound_idle_timeout = 200ms;
  config.max_inbound_streams_per_peer = 2;
  Node& server = make_node(&archive, config);
  Node& client = make_node();
  const std::vector<std::string> protocols{std::string(kSyncProtocol)};
  run([&]() -> Task<void> {
    auto client_server = co_await connect(client, server);
    CO_ASSERT_OK(client_server);
    auto s1 = co_await client.host.new_stream(server.id(), protocols);
    CO_ASSERT_OK(s1);
    auto s2 = co_await client.host.new_stream(server.id(), protocols);
    CO_ASSERT_OK(s2);
    auto s3 = co_await client.host.new_stream(server.id(), protocols);
    CO_ASSERT_OK(s3);
    // The third is over the per-peer limit; the first two are reset once idle.
    Bytes buf(64);
    std::vector<std::shared_ptr<host::Stream>> streams{*s1, *s2, *s3};
    for (auto& s : streams) {
      auto n = co_await s->read_some(buf);
      EXPECT_FALSE(n);
    }
    EXPECT_EQ(server.sync.stats().streams_refused, 1u);
    EXPECT_EQ(server.sync.inbound_streams(), 0u);
  });
}

// Hostile-peers finding 10: a request must be read and answered within
// inbound_request_timeout from its first byte. A client that trickles a valid request a byte at a
// time (each byte would have reset an idle timer) loses the stream long before it is done, while
// a request sent at once on the same server is answered.
TEST_F(SyncServiceTest, ARequestTrickledAByteAtATimeLosesTheStreamAtTheRequestDeadline) {
  auto& archive = memory_archive();
  Publisher p;
  p.fill(archive, "t", 1, 3);
  SyncServiceConfig config;
  config.inbound_idle_timeout = 120s;  // never the reason here
  config.inbound_request_timeout = 300ms;
  Node& server = make_node(&archive, config);
  Node& client = make_node();
  const std::vector<std::string> protocols{std::string(kSyncProtocol)};
  run([&]() -> Task<void> {
    auto client_server = co_await connect(client, server);
    CO_ASSERT_OK(client_server);
    Collected honest;
    auto got = co_await client.sync.fetch_latest(server.id(), "t", 3, honest.handler());
    CO_ASSERT_OK(got);
    EXPECT_EQ(honest.seqnos(), iota(1, 3));

    // 200-odd bytes at one per 50 ms: at least 10 s to send, against a 300 ms deadline.
    auto stream = co_await client.host.new_stream(server.id(), protocols);
    CO_ASSERT_OK(stream);
    Bytes frame = framed(encode_request(SyncRequest{9, LatestQuery{std::string(200, 'x'), 3}}));
    asio::steady_timer pace(co_await asio::this_coro::executor);
    size_t sent = 0;
    for (; sent < frame.size(); ++sent) {
      auto written = co_await (*stream)->write(BytesView(frame.data() + sent, 1));
      if (!written) break;
      pace.expires_after(50ms);
      co_await pace.async_wait(asio::use_awaitable);
    }
    EXPECT_LT(sent, frame.size());  // reset before the request was complete
    Bytes buf(64);
    auto n = co_await (*stream)->read_some(buf);
    EXPECT_FALSE(n);  // reset, not answered
    bool counted = co_await eventually([&] { return server.sync.stats().requests_timed_out == 1; });
    EXPECT_TRUE(counted);
    EXPECT_EQ(server.sync.stats().requests_served, 1u);  // the honest one only
  });
}

// ---------------------------------------------------------------- store()

TEST_F(SyncServiceTest, StoreWritesThroughTheWorkerAndIsServed) {
  auto dir = std::filesystem::temp_directory_path() /
             ("p2pmq-sync-io-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
              "-" + std::to_string(Clock::now().time_since_epoch().count()));
  {
    auto opened = ArchiveStore::open(dir.string());
    ASSERT_TRUE(opened) << opened.error().to_string();
    auto store = std::move(*opened);
    Publisher p;
    Node& server = make_node(store.get());
    Node& client = make_node();
    run([&]() -> Task<void> {
      Counter acked(io.get_executor());
      size_t written = 0, duplicates = 0;
      auto on_done = [&](Result<bool> r) {
        if (!r)
          ADD_FAILURE() << r.error().to_string();
        else
          ++(*r ? written : duplicates);
        acked.bump();
      };
      for (uint64_t s = 1; s <= 200; ++s)
        server.sync.store("t", p.id.bytes(), s, p.message("t", s), WallClock::now(), on_done);
      server.sync.store("t", p.id.bytes(), 7, p.message("t", 7), WallClock::now(), on_done);
      EXPECT_GT(server.sync.pending_stores(), 0u);
      bool all_acked = co_await acked.wait_for(201);
      CO_ASSERT(all_acked);
      EXPECT_EQ(written, 200u);
      EXPECT_EQ(duplicates, 1u);
      EXPECT_EQ(server.sync.pending_stores(), 0u);
      EXPECT_EQ(server.sync.stats().stores, 201u);

      auto client_server = co_await connect(client, server);
      CO_ASSERT_OK(client_server);
      Collected range;
      auto request = range_request("t", p.id.bytes(), 1, 200);
      auto got = co_await client.sync.fetch(server.id(), std::move(request), range.handler());
      CO_ASSERT_OK(got);
      EXPECT_EQ(range.seqnos(), iota(1, 200));

      // Other archive work runs on the same worker, in order.
      Counter pruned(io.get_executor());
      uint64_t size = 0;
      server.sync.with_archive(
          [&](Archive&) {
            store->set_retention("t", Retention{50, {}});
            size = store->prune(WallClock::now()).value_or(0);
          },
          [&] { pruned.bump(); });
      bool pruned_in_time = co_await pruned.wait_for(1);
      CO_ASSERT(pruned_in_time);
      EXPECT_EQ(size, 150u);
    });
    TearDown();
    nodes.clear();  // the service (and its worker) before the store
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace p2pmq::sync
