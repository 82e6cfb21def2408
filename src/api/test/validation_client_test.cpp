// ValidationClient against in-test MsgValidation servers, and against examples/validator.py.
#include "api/validation_client.hpp"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "api/test/fake_backend.hpp"
#include "api/test/subprocess.hpp"
#include "p2pmq/v1/p2pmq.grpc.pb.h"

namespace p2pmq::api::test {
namespace {

using namespace std::chrono_literals;

constexpr auto kWait = 60s;  // generous: two busy cores

// Answers by the message's data: "accept", "reject", "ignore", "unset" (VERDICT_UNSPECIFIED);
// data starting with "silent" gets no answer.
class TestValidator final : public v1::MsgValidation::Service {
 public:
  grpc::Status ValidationChannel(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::ValidatedMessage, v1::Message>* stream) override {
    v1::Message m;
    while (stream->Read(&m)) {
      ++seen;
      v1::ValidatedMessage r;
      r.set_id(m.id());
      if (m.data().rfind("silent", 0) == 0) continue;
      if (m.data() == "accept") r.set_verdict(v1::VERDICT_ACCEPT);
      if (m.data() == "reject") r.set_verdict(v1::VERDICT_REJECT);
      if (m.data() == "ignore") r.set_verdict(v1::VERDICT_IGNORE);
      if (!stream->Write(r)) break;
    }
    return grpc::Status::OK;
  }
  std::atomic<int> seen{0};
};

// A validator server on 127.0.0.1 (port 0 picks one).
struct ValidatorServer {
  explicit ValidatorServer(int want_port = 0) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:" + std::to_string(want_port), grpc::InsecureServerCredentials(),
                       &port);
    b.RegisterService(&service);
    server = b.BuildAndStart();
  }
  ~ValidatorServer() { kill(); }
  void kill() {
    if (server) server->Shutdown(std::chrono::system_clock::now());
    server.reset();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }

  TestValidator service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

AgentMessage message(const std::string& data, const std::string& id) {
  AgentMessage m;
  m.id = to_bytes(id);
  m.topic = "t";
  m.data = to_bytes(data);
  m.origin = "12D3KooWOther";
  m.seqno = 1;
  m.received = std::chrono::system_clock::now();
  return m;
}

// validate() and wait for its one answer.
std::optional<Verdict> verdict_of(ValidationClient& c, const AgentMessage& m,
                                  std::chrono::milliseconds limit = kWait) {
  auto p = std::make_shared<std::promise<Verdict>>();
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto f = p->get_future();
  c.validate(m, [p, calls](Verdict v) {
    if (calls->fetch_add(1) == 0) p->set_value(v);
  });
  if (f.wait_for(limit) != std::future_status::ready) return std::nullopt;
  return f.get();
}

TEST(ValidationClient, MapsVerdicts) {
  ValidatorServer v;
  ValidationClient c({v.address()});
  ASSERT_TRUE(eventually([&] { return c.connected(); }));
  EXPECT_EQ(verdict_of(c, message("accept", "1")), Verdict::accept);
  EXPECT_EQ(verdict_of(c, message("reject", "2")), Verdict::reject);
  EXPECT_EQ(verdict_of(c, message("ignore", "3")), Verdict::ignore);
  EXPECT_EQ(verdict_of(c, message("unset", "4")), Verdict::ignore);  // unset → IGNORE
  auto n = c.counters();
  EXPECT_EQ(n.sent, 4u);
  EXPECT_EQ(n.accepted, 1u);
  EXPECT_EQ(n.rejected, 1u);
  EXPECT_EQ(n.ignored, 2u);
  EXPECT_EQ(n.unset, 1u);
  EXPECT_EQ(n.timeouts + n.no_validator, 0u);
}

TEST(ValidationClient, CorrelatesConcurrentRepliesById) {
  ValidatorServer v;
  ValidationClient c({v.address()});
  ASSERT_TRUE(eventually([&] { return c.connected(); }));
  constexpr int kCount = 200;
  std::vector<std::future<Verdict>> answers;
  for (int i = 0; i < kCount; ++i) {
    auto p = std::make_shared<std::promise<Verdict>>();
    answers.push_back(p->get_future());
    c.validate(message(i % 2 ? "accept" : "reject", "id-" + std::to_string(i)),
               [p](Verdict v) { p->set_value(v); });
  }
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ(answers[i].wait_for(kWait), std::future_status::ready);
    EXPECT_EQ(answers[i].get(), i % 2 ? Verdict::accept : Verdict::reject) << i;
  }
}

TEST(ValidationClient, TimeoutAppliesThePolicy) {
  ValidatorServer v;
  ValidationConfig cfg;
  cfg.timeout = 300ms;
  cfg.no_validator_policy = ValidationConfig::Policy::accept;
  ValidationClient c({v.address()}, cfg);
  ASSERT_TRUE(eventually([&] { return c.connected(); }));
  EXPECT_EQ(verdict_of(c, message("silent", "s")), Verdict::accept);
  EXPECT_EQ(c.counters().timeouts, 1u);
  // The channel still works afterwards.
  EXPECT_EQ(verdict_of(c, message("reject", "r")), Verdict::reject);
}

TEST(ValidationClient, NoValidatorAppliesThePolicyAtOnce) {
  // A port with nothing behind it: bind one, then free it.
  int port = 0;
  { port = ValidatorServer().port; }
  ValidationConfig cfg;
  cfg.no_validator_policy = ValidationConfig::Policy::ignore;
  ValidationClient c({"127.0.0.1:" + std::to_string(port)}, cfg);
  EXPECT_FALSE(c.connected());
  EXPECT_EQ(verdict_of(c, message("accept", "1"), 5s), Verdict::ignore);
  EXPECT_EQ(c.counters().no_validator, 1u);

  ValidationConfig acc;
  acc.no_validator_policy = ValidationConfig::Policy::accept;
  ValidationClient none({}, acc);
  EXPECT_EQ(verdict_of(none, message("reject", "2"), 5s), Verdict::accept);
}

TEST(ValidationClient, KilledValidatorThenReconnects) {
  auto v = std::make_unique<ValidatorServer>();
  int port = v->port;
  ValidationClient c({v->address()});
  ASSERT_TRUE(eventually([&] { return c.connected(); }));
  EXPECT_EQ(verdict_of(c, message("reject", "1")), Verdict::reject);

  v.reset();  // killed
  ASSERT_TRUE(eventually([&] { return !c.connected(); }));
  EXPECT_EQ(verdict_of(c, message("reject", "2"), 5s), Verdict::ignore);  // the policy
  EXPECT_EQ(c.counters().no_validator, 1u);

  v = std::make_unique<ValidatorServer>(port);  // back on the same port
  ASSERT_EQ(v->port, port);
  ASSERT_TRUE(eventually([&] { return c.connected(); }));
  EXPECT_EQ(verdict_of(c, message("reject", "3")), Verdict::reject);
  EXPECT_GE(c.counters().reconnects, 1u);
}

TEST(ValidationClient, ValidatorsShareTheLoad) {
  ValidatorServer a, b;
  ValidationClient c({a.address(), b.address()});
  ASSERT_TRUE(eventually([&] { return c.connected_count() == 2; }));
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(verdict_of(c, message("accept", std::to_string(i))), Verdict::accept);
  }
  EXPECT_EQ(a.service.seen.load(), 10);  // round robin
  EXPECT_EQ(b.service.seen.load(), 10);

  // One goes away: the other takes everything.
  a.kill();
  ASSERT_TRUE(eventually([&] { return c.connected_count() == 1; }));
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(verdict_of(c, message("reject", "b" + std::to_string(i))), Verdict::reject);
  }
  EXPECT_EQ(b.service.seen.load(), 20);
}

TEST(ValidationClient, DestructionAnswersWhatIsPending) {
  ValidatorServer v;
  auto p = std::make_shared<std::promise<Verdict>>();
  auto f = p->get_future();
  {
    ValidationConfig cfg;
    cfg.no_validator_policy = ValidationConfig::Policy::accept;
    ValidationClient c({v.address()}, cfg);
    ASSERT_TRUE(eventually([&] { return c.connected(); }));
    c.validate(message("silent", "x"), [p](Verdict v) { p->set_value(v); });
    ASSERT_TRUE(eventually([&] { return v.service.seen.load() == 1; }));
  }
  ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(f.get(), Verdict::accept);
}

TEST(ValidationClient, ExamplePythonValidator) {
  const std::string python = "/usr/bin/python3";
  if (!python_has_grpc(python)) {
    GTEST_SKIP() << python
                 << " lacks grpc / grpc_tools (apt install python3-grpcio "
                    "python3-grpc-tools)";
  }
  Subprocess proc({python, P2PMQ_SOURCE_DIR "/examples/validator.py", "--listen", "127.0.0.1:0",
                   "--reject-regex", "^bad"});
  ASSERT_TRUE(proc.started());
  auto line = proc.read_line(kWait);
  ASSERT_TRUE(line) << "no 'listening' line from validator.py";
  ASSERT_EQ(line->rfind("listening 127.0.0.1:", 0), 0u) << *line;
  std::string address = line->substr(std::string("listening ").size());

  ValidationClient c({address});
  ASSERT_TRUE(eventually([&] { return c.connected(); }));
  EXPECT_EQ(verdict_of(c, message("good data", "1")), Verdict::accept);
  EXPECT_EQ(verdict_of(c, message("bad data", "2")), Verdict::reject);
  EXPECT_EQ(verdict_of(c, message("not bad", "3")), Verdict::accept);
}

}  // namespace
}  // namespace p2pmq::api::test

namespace p2pmq::api::test {
namespace {

// validate() from `source`; the verdict if it came at once (inline), else nullopt.
std::optional<Verdict> immediate_verdict(ValidationClient& c, const AgentMessage& m,
                                         const std::string& source = {}) {
  std::optional<Verdict> got;
  auto answered = std::make_shared<std::atomic<bool>>(false);
  c.validate(
      m,
      [&got, answered](Verdict v) {
        if (!answered->exchange(true)) got = v;
      },
      source);
  bool now = answered->exchange(true);  // later answers (destruction, timeout) are dropped
  return now ? got : std::nullopt;
}

TEST(ValidationClient, OverloadIsIgnoreEvenWithTheAcceptPolicy) {
  ValidatorServer v;
  ValidationConfig cfg;
  cfg.no_validator_policy = ValidationConfig::Policy::accept;
  cfg.timeout = std::chrono::hours(1);
  cfg.max_pending = 2;
  ValidationClient c({v.address()}, cfg);
  ASSERT_TRUE(eventually([&] { return c.connected(); }));
  EXPECT_EQ(immediate_verdict(c, message("silent", "1")), std::nullopt);
  EXPECT_EQ(immediate_verdict(c, message("silent", "2")), std::nullopt);
  // The flood beyond max_pending is not forwarded unvalidated.
  EXPECT_EQ(immediate_verdict(c, message("accept", "3")), Verdict::ignore);
  EXPECT_EQ(c.counters().overloaded, 1u);
}

TEST(ValidationClient, PendingBytesAreBounded) {
  ValidatorServer v;
  ValidationConfig cfg;
  cfg.no_validator_policy = ValidationConfig::Policy::accept;
  cfg.timeout = std::chrono::hours(1);
  cfg.max_pending_bytes = 64 * 1024;
  ValidationClient c({v.address()}, cfg);
  ASSERT_TRUE(eventually([&] { return c.connected(); }));
  auto big = message("silent", "big");
  big.data = to_bytes("silent" + std::string(40 * 1024, 'a'));
  EXPECT_EQ(immediate_verdict(c, big), std::nullopt);
  big.id = to_bytes("big2");
  EXPECT_EQ(immediate_verdict(c, big), Verdict::ignore);
  EXPECT_EQ(c.counters().overloaded, 1u);
  EXPECT_EQ(immediate_verdict(c, message("silent", "small")), std::nullopt) << "room left";
}

TEST(ValidationClient, OnePeerGetsAFairShareOfPendingValidations) {
  ValidatorServer v;
  ValidationConfig cfg;
  cfg.no_validator_policy = ValidationConfig::Policy::accept;
  cfg.timeout = std::chrono::hours(1);
  cfg.max_pending_per_peer = 2;
  ValidationClient c({v.address()}, cfg);
  ASSERT_TRUE(eventually([&] { return c.connected(); }));
  EXPECT_EQ(immediate_verdict(c, message("silent", "a1"), "flooder"), std::nullopt);
  EXPECT_EQ(immediate_verdict(c, message("silent", "a2"), "flooder"), std::nullopt);
  EXPECT_EQ(immediate_verdict(c, message("accept", "a3"), "flooder"), Verdict::ignore);
  EXPECT_EQ(c.counters().over_peer_share, 1u);
  // Another peer's messages still reach the validator.
  EXPECT_EQ(verdict_of(c, message("reject", "b1")), Verdict::reject);
  auto p = std::make_shared<std::promise<Verdict>>();
  c.validate(
      message("accept", "b2"), [p](Verdict v) { p->set_value(v); }, "honest");
  auto f = p->get_future();
  ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(f.get(), Verdict::accept);
}

}  // namespace
}  // namespace p2pmq::api::test
