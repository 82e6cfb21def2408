// The router's trace events (go-libp2p-pubsub's tracer events) and their NDJSON form.
#include "pubsub/trace.hpp"

#include <gtest/gtest.h>

#include "pubsub/router.hpp"

namespace p2pmq::pubsub {
namespace {

const TopicId kTopic = "t";

struct Identity {
  crypto::PrivateKey key;
  PeerId id;
};

Identity identity(int i) {
  crypto::PrivateKey::Seed seed{};
  seed[0] = static_cast<uint8_t>(i);
  seed[2] = 0x77;
  auto key = crypto::PrivateKey::from_seed(seed);
  return {key, PeerId::from_public_key(key.public_key())};
}

class TraceTest : public ::testing::Test {
 protected:
  TraceTest() {
    GossipsubConfig config;
    config.seed = 7;
    router = std::make_unique<Router>(self.id, self.key, config, PeerScoreParams{},
                                      PeerScoreThresholds{}, now);
    router->set_trace_sink([this](TraceEvent e) { events.push_back(std::move(e)); });
  }
  void drain() {
    while (router->poll_action()) {
    }
  }
  size_t count(TraceType type) const {
    return static_cast<size_t>(std::count_if(events.begin(), events.end(),
                                             [&](const TraceEvent& e) { return e.type == type; }));
  }

  Time now = Time{} + std::chrono::hours(1);
  Identity self = identity(1);
  std::unique_ptr<Router> router;
  std::vector<TraceEvent> events;
};

TEST_F(TraceTest, JoinGraftPublishDeliverDuplicateRejectPruneLeaveAreTraced) {
  Identity peer = identity(2);
  router->add_peer(peer.id, PeerKind::gossipsub_v1_2, true, "", now);
  router->handle_rpc(peer.id, Rpc{{SubOpts{true, kTopic}}, {}, {}}, now);
  router->join(kTopic, now);
  EXPECT_EQ(count(TraceType::join), 1u);
  EXPECT_EQ(count(TraceType::graft), 1u);  // the subscribed peer goes into the mesh

  ASSERT_TRUE(router->publish(kTopic, Bytes{1, 2, 3}, 1, now));
  EXPECT_EQ(count(TraceType::publish), 1u);
  EXPECT_EQ(count(TraceType::deliver), 1u);  // our own message, delivered locally

  Identity origin = identity(3);
  Message m = make_message(origin.key, kTopic, Bytes{9}, 1, SignaturePolicy::strict_sign);
  router->handle_rpc(peer.id, Rpc{{}, {m}, {}}, now);
  drain();
  router->report_validation(message_id(m, router->id_fn(kTopic)), Verdict::accept, now);
  EXPECT_EQ(count(TraceType::deliver), 2u);
  router->handle_rpc(peer.id, Rpc{{}, {m}, {}}, now);
  EXPECT_EQ(count(TraceType::duplicate), 1u);

  Message forged = make_message(origin.key, kTopic, Bytes{8}, 2, SignaturePolicy::strict_sign);
  forged.data = Bytes{7};  // the signature no longer matches
  router->handle_rpc(peer.id, Rpc{{}, {forged}, {}}, now);
  ASSERT_EQ(count(TraceType::reject), 1u);
  const auto& reject = events.back();
  EXPECT_EQ(reject.reason, RejectReason::invalid_signature);
  EXPECT_EQ(reject.peer, peer.id);

  router->leave(kTopic, now);
  EXPECT_EQ(count(TraceType::leave), 1u);
  EXPECT_EQ(count(TraceType::prune), 1u);
  EXPECT_EQ(events.back().peer, peer.id);
}

TEST_F(TraceTest, NoSinkNoEvents) {
  router->set_trace_sink(nullptr);
  router->join(kTopic, now);
  ASSERT_TRUE(router->publish(kTopic, Bytes{1}, 1, now));
  EXPECT_TRUE(events.empty());
}

TEST(TraceJson, ShapeOfGosJsonTracerWithEscapedTopic) {
  Identity self = identity(1), from = identity(2);
  TraceEvent e{TraceType::reject, "a\"b\n\xff", Bytes{0xab, 0x01}, from.id,
               RejectReason::validation_failed};
  std::string line = trace_json(e, self.id, 1700000000000000000);
  EXPECT_EQ(line, "{\"type\":\"REJECT_MESSAGE\",\"peerID\":\"" + self.id.to_string() +
                      "\",\"timestamp\":1700000000000000000,\"rejectMessage\":{\"messageID\":"
                      "\"ab01\",\"topic\":\"a\\\"b\\u000a\\u00ff\",\"receivedFrom\":\"" +
                      from.id.to_string() + "\",\"reason\":\"validation failed\"}}");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  TraceEvent g{TraceType::graft, "t", {}, from.id, {}};
  EXPECT_EQ(trace_json(g, self.id, 5), "{\"type\":\"GRAFT\",\"peerID\":\"" + self.id.to_string() +
                                           "\",\"timestamp\":5,\"graft\":{\"topic\":\"t\","
                                           "\"peerID\":\"" +
                                           from.id.to_string() + "\"}}");
}

}  // namespace
}  // namespace p2pmq::pubsub
