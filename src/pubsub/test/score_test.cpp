#include "pubsub/score.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace p2pmq::pubsub {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

PeerId peer(uint8_t n) {
  Bytes mh = {0x12, 0x20};  // sha2-256 multihash
  mh.resize(34, n);
  return *PeerId::from_bytes(mh);
}
MessageId msg(int n) {
  return to_bytes("m" + std::to_string(n));
}

const TopicId kTopic = "t";

// Every component off, so each test switches on only the one it checks.
TopicScoreParams quiet_topic() {
  TopicScoreParams t;
  t.topic_weight = 1;
  t.time_in_mesh_weight = 0;
  t.first_message_deliveries_weight = 0;
  t.mesh_message_deliveries_weight = 0;
  t.mesh_failure_penalty_weight = 0;
  t.invalid_message_deliveries_weight = 0;
  t.first_message_deliveries_decay = 0.5;
  t.mesh_message_deliveries_decay = 0.5;
  t.mesh_failure_penalty_decay = 0.5;
  t.invalid_message_deliveries_decay = 0.5;
  return t;
}
PeerScoreParams quiet() {
  PeerScoreParams p;
  p.topics[kTopic] = quiet_topic();
  p.app_specific_weight = 0;
  p.ip_colocation_factor_weight = 0;
  p.ip_colocation_factor_whitelist.clear();
  p.behaviour_penalty_weight = 0;
  p.behaviour_penalty_decay = 0.5;
  p.decay_to_zero = 0.1;
  return p;
}

const Time t0 = Time{} + std::chrono::hours(1);
const PeerId A = peer(1), B = peer(2), C = peer(3);

TEST(PeerScore, UnknownPeerScoresZero) {
  PeerScore s(quiet(), t0);
  EXPECT_EQ(s.score(A, t0), 0);
  EXPECT_FALSE(s.topic_stats(A, kTopic));
  EXPECT_EQ(s.behaviour_penalty(A), 0);
}

TEST(PeerScore, P1TimeInMeshInWholeQuantaCapped) {
  auto p = quiet();
  p.topics[kTopic].time_in_mesh_weight = 0.5;
  p.topics[kTopic].time_in_mesh_quantum = seconds(1);
  p.topics[kTopic].time_in_mesh_cap = 10;
  PeerScore s(p, t0);
  s.add_peer(A, t0);
  s.graft(A, kTopic, t0);
  EXPECT_DOUBLE_EQ(s.score(A, t0 + milliseconds(3500)), 1.5);  // 3 whole quanta
  EXPECT_DOUBLE_EQ(s.score(A, t0 + seconds(100)), 5.0);        // capped at 10 quanta
  s.refresh(t0 + seconds(4));
  ASSERT_TRUE(s.topic_stats(A, kTopic));
  EXPECT_TRUE(s.topic_stats(A, kTopic)->in_mesh);
  EXPECT_EQ(s.topic_stats(A, kTopic)->mesh_time, seconds(4));
  s.prune(A, kTopic, t0 + seconds(5));
  EXPECT_EQ(s.score(A, t0 + seconds(6)), 0);
  EXPECT_FALSE(s.topic_stats(A, kTopic)->in_mesh);
}

TEST(PeerScore, P2FirstDeliveriesOnlyForFirstSenderAndCapped) {
  auto p = quiet();
  p.topics[kTopic].first_message_deliveries_weight = 2;
  p.topics[kTopic].first_message_deliveries_cap = 3;
  PeerScore s(p, t0);
  s.add_peer(A, t0);
  s.add_peer(B, t0);
  s.validate_message(A, msg(1), kTopic, t0);
  s.deliver_message(A, msg(1), kTopic, t0);
  s.duplicate_message(B, msg(1), kTopic, t0);
  EXPECT_DOUBLE_EQ(s.score(A, t0), 2);
  EXPECT_EQ(s.score(B, t0), 0);
  for (int i = 2; i <= 5; ++i) s.deliver_message(A, msg(i), kTopic, t0);
  EXPECT_DOUBLE_EQ(s.topic_stats(A, kTopic)->first_message_deliveries, 3);
  EXPECT_DOUBLE_EQ(s.score(A, t0), 6);
}

TEST(PeerScore, UnscoredTopicIsIgnored) {
  auto p = quiet();
  p.topics[kTopic].first_message_deliveries_weight = 1;
  p.topics[kTopic].first_message_deliveries_cap = 10;
  PeerScore s(p, t0);
  s.add_peer(A, t0);
  s.deliver_message(A, msg(1), "other", t0);
  s.graft(A, "other", t0);
  EXPECT_EQ(s.score(A, t0), 0);
  EXPECT_FALSE(s.topic_stats(A, "other"));
}

PeerScoreParams p3_params() {
  auto p = quiet();
  auto& t = p.topics[kTopic];
  t.mesh_message_deliveries_weight = -1;
  t.mesh_message_deliveries_threshold = 4;
  t.mesh_message_deliveries_cap = 10;
  t.mesh_message_deliveries_window = milliseconds(10);
  t.mesh_message_deliveries_activation = seconds(5);
  return p;
}

TEST(PeerScore, P3DeficitOnlyAfterActivation) {
  PeerScore s(p3_params(), t0);
  s.add_peer(A, t0);
  s.graft(A, kTopic, t0);
  EXPECT_EQ(s.score(A, t0 + seconds(5)), 0);           // not yet active (strictly after)
  EXPECT_DOUBLE_EQ(s.score(A, t0 + seconds(6)), -16);  // deficit 4, squared
  s.deliver_message(A, msg(1), kTopic, t0 + seconds(6));
  EXPECT_DOUBLE_EQ(s.score(A, t0 + seconds(6)), -9);
  for (int i = 2; i <= 4; ++i) s.deliver_message(A, msg(i), kTopic, t0 + seconds(6));
  EXPECT_EQ(s.score(A, t0 + seconds(6)), 0);  // at threshold: no penalty
  for (int i = 5; i <= 20; ++i) s.deliver_message(A, msg(i), kTopic, t0 + seconds(6));
  EXPECT_DOUBLE_EQ(s.topic_stats(A, kTopic)->mesh_message_deliveries, 10);  // cap
}

TEST(PeerScore, P3OnlyCountsWhileInMesh) {
  PeerScore s(p3_params(), t0);
  s.add_peer(A, t0);
  s.deliver_message(A, msg(1), kTopic, t0);
  EXPECT_EQ(s.topic_stats(A, kTopic)->mesh_message_deliveries, 0);
}

TEST(PeerScore, P3DuplicatesWithinWindowAndDuringValidation) {
  PeerScore s(p3_params(), t0);
  for (const auto& x : {A, B, C}) {
    s.add_peer(x, t0);
    s.graft(x, kTopic, t0);
  }
  Time t = t0 + seconds(10);
  // B's copy arrives while the message is being validated: credited at delivery.
  s.validate_message(A, msg(1), kTopic, t);
  s.duplicate_message(B, msg(1), kTopic, t + milliseconds(1));
  EXPECT_EQ(s.topic_stats(B, kTopic)->mesh_message_deliveries, 0);
  s.deliver_message(A, msg(1), kTopic, t + milliseconds(50));
  EXPECT_EQ(s.topic_stats(A, kTopic)->mesh_message_deliveries, 1);
  EXPECT_EQ(s.topic_stats(B, kTopic)->mesh_message_deliveries, 1);
  // C: within 10ms of validation counts; a second copy from C does not.
  s.duplicate_message(C, msg(1), kTopic, t + milliseconds(60));
  s.duplicate_message(C, msg(1), kTopic, t + milliseconds(60));
  EXPECT_EQ(s.topic_stats(C, kTopic)->mesh_message_deliveries, 1);
  // After the window: no credit. Nor for the first sender repeating itself.
  s.deliver_message(A, msg(2), kTopic, t);
  s.duplicate_message(B, msg(2), kTopic, t + milliseconds(11));
  s.duplicate_message(A, msg(2), kTopic, t + milliseconds(1));
  EXPECT_EQ(s.topic_stats(B, kTopic)->mesh_message_deliveries, 1);
  EXPECT_EQ(s.topic_stats(A, kTopic)->mesh_message_deliveries, 2);
}

TEST(PeerScore, P3bAppliedOnPruneAfterActivation) {
  auto p = p3_params();
  p.topics[kTopic].mesh_failure_penalty_weight = -2;
  PeerScore s(p, t0);
  s.add_peer(A, t0);
  s.add_peer(B, t0);
  s.graft(A, kTopic, t0);
  s.graft(B, kTopic, t0);
  s.deliver_message(A, msg(1), kTopic, t0 + seconds(1));
  // B is pruned before activation: no sticky penalty.
  s.prune(B, kTopic, t0 + seconds(3));
  EXPECT_EQ(s.score(B, t0 + seconds(3)), 0);
  EXPECT_EQ(s.topic_stats(B, kTopic)->mesh_failure_penalty, 0);
  // A is pruned after activation with 1 of 4: penalty (4-1)^2 = 9, weight -2; P3 itself stops.
  s.prune(A, kTopic, t0 + seconds(10));
  EXPECT_DOUBLE_EQ(s.topic_stats(A, kTopic)->mesh_failure_penalty, 9);
  EXPECT_DOUBLE_EQ(s.score(A, t0 + seconds(10)), -18);
  // Sticky: only decay removes it.
  s.refresh(t0 + seconds(11));
  EXPECT_DOUBLE_EQ(s.score(A, t0 + seconds(11)), -9);
}

TEST(PeerScore, P4SenderAndPendingCopiesPenalised) {
  auto p = quiet();
  p.topics[kTopic].invalid_message_deliveries_weight = -3;
  PeerScore s(p, t0);
  for (const auto& x : {A, B, C}) s.add_peer(x, t0);
  s.validate_message(A, msg(1), kTopic, t0);
  s.duplicate_message(B, msg(1), kTopic, t0);
  s.reject_message(A, msg(1), kTopic, RejectReason::validation_failed, t0);
  EXPECT_DOUBLE_EQ(s.score(A, t0), -3);
  EXPECT_DOUBLE_EQ(s.score(B, t0), -3);
  // A copy after the verdict is penalised too.
  s.duplicate_message(C, msg(1), kTopic, t0);
  EXPECT_DOUBLE_EQ(s.score(C, t0), -3);
  // Squared counter: a second invalid message from A makes it 2^2 * -3.
  s.reject_message(A, msg(2), kTopic, RejectReason::invalid_signature, t0);
  EXPECT_DOUBLE_EQ(s.topic_stats(A, kTopic)->invalid_message_deliveries, 2);
  EXPECT_DOUBLE_EQ(s.score(A, t0), -12);
}

TEST(PeerScore, P4NotCountedForIgnoredOrThrottled) {
  auto p = quiet();
  p.topics[kTopic].invalid_message_deliveries_weight = -3;
  PeerScore s(p, t0);
  for (const auto& x : {A, B, C}) s.add_peer(x, t0);
  for (auto [n, reason] : {std::pair{1, RejectReason::validation_ignored},
                           std::pair{2, RejectReason::validation_throttled}}) {
    s.validate_message(A, msg(n), kTopic, t0);
    s.duplicate_message(B, msg(n), kTopic, t0);
    s.reject_message(A, msg(n), kTopic, reason, t0);
    s.duplicate_message(C, msg(n), kTopic, t0);
  }
  s.reject_message(A, msg(3), kTopic, RejectReason::blacklisted, t0);
  s.reject_message(A, msg(4), kTopic, RejectReason::duplicate, t0);
  for (const auto& x : {A, B, C}) EXPECT_EQ(s.score(x, t0), 0);
}

TEST(PeerScore, P5AppSpecific) {
  auto p = quiet();
  p.app_specific_weight = 2;
  PeerScore s(p, t0);
  s.add_peer(A, t0);
  s.add_peer(B, t0);
  EXPECT_EQ(s.score(A, t0), 0);  // no hook yet
  s.set_app_specific_score([](const PeerId& id) { return id == A ? 3.0 : -1.0; });
  EXPECT_DOUBLE_EQ(s.score(A, t0), 6);
  EXPECT_DOUBLE_EQ(s.score(B, t0), -2);
  EXPECT_EQ(s.score(C, t0), 0);  // unknown peer
}

PeerScoreParams p6_params(std::vector<std::string> whitelist) {
  auto p = quiet();
  p.ip_colocation_factor_weight = -1;
  p.ip_colocation_factor_threshold = 1;
  p.ip_colocation_factor_whitelist = std::move(whitelist);
  return p;
}

TEST(PeerScore, P6ColocationSurplusSquared) {
  PeerScore s(p6_params({}), t0);
  for (const auto& x : {A, B, C}) {
    s.add_peer(x, t0);
    s.add_ip(x, "1.2.3.4");
  }
  s.add_ip(A, "1.2.3.4");                // repeated: still one
  EXPECT_DOUBLE_EQ(s.score(A, t0), -4);  // (3 - 1)^2
  EXPECT_DOUBLE_EQ(s.score(C, t0), -4);
  s.remove_ip(C, "1.2.3.4");
  EXPECT_DOUBLE_EQ(s.score(A, t0), -1);
  EXPECT_EQ(s.score(C, t0), 0);
  s.add_ip(C, "5.6.7.8");
  EXPECT_EQ(s.score(C, t0), 0);
}

TEST(PeerScore, P6LoopbackWithoutWhitelistIsPenalised) {
  PeerScore s(p6_params({}), t0);
  for (const auto& x : {A, B, C}) {
    s.add_peer(x, t0);
    s.add_ip(x, "127.0.0.1");
  }
  EXPECT_DOUBLE_EQ(s.score(A, t0), -4);
}

TEST(PeerScore, P6WhitelistExempts) {
  PeerScore s(p6_params({"127.0.0.0/8", "::1/128"}), t0);
  for (const auto& x : {A, B, C}) {
    s.add_peer(x, t0);
    s.add_ip(x, "127.0.0.1");
    s.add_ip(x, "::1");
    s.add_ip(x, "10.0.0.1");
  }
  EXPECT_DOUBLE_EQ(s.score(A, t0), -4);  // only 10.0.0.1 counts
  for (const auto& x : {A, B, C}) s.remove_ip(x, "10.0.0.1");
  EXPECT_EQ(s.score(A, t0), 0);
  // An IPv4-mapped IPv6 loopback address is the IPv4 one.
  s.add_ip(A, "::ffff:127.0.0.2");
  s.add_ip(B, "::ffff:127.0.0.2");
  EXPECT_EQ(s.score(A, t0), 0);
}

TEST(PeerScore, P7BehaviourPenaltyOverThreshold) {
  auto p = quiet();
  p.behaviour_penalty_weight = -1;
  p.behaviour_penalty_threshold = 2;
  PeerScore s(p, t0);
  s.add_peer(A, t0);
  s.add_penalty(A, 2);
  EXPECT_EQ(s.score(A, t0), 0);  // at the threshold
  s.add_penalty(A, 3);
  EXPECT_EQ(s.behaviour_penalty(A), 5);
  EXPECT_DOUBLE_EQ(s.score(A, t0), -9);  // (5 - 2)^2
  s.add_penalty(B, 3);                   // unknown: ignored
  EXPECT_EQ(s.behaviour_penalty(B), 0);
}

TEST(PeerScore, TopicWeightAndTopicScoreCap) {
  auto p = quiet();
  p.topics[kTopic].first_message_deliveries_weight = 1;
  p.topics[kTopic].first_message_deliveries_cap = 100;
  p.topics[kTopic].topic_weight = 0.5;
  p.topics["u"] = p.topics[kTopic];
  p.topics["u"].topic_weight = 2;
  p.topics["u"].invalid_message_deliveries_weight = -1;
  {
    PeerScore s(p, t0);
    s.add_peer(A, t0);
    for (int i = 0; i < 4; ++i) s.deliver_message(A, msg(i), kTopic, t0);
    s.deliver_message(A, msg(10), "u", t0);
    EXPECT_DOUBLE_EQ(s.score(A, t0), 4 * 0.5 + 1 * 2);
  }
  p.topic_score_cap = 3;
  p.app_specific_weight = 1;
  PeerScore s(p, t0);
  s.set_app_specific_score([](const PeerId&) { return 1.0; });
  s.add_peer(A, t0);
  s.add_peer(B, t0);
  for (int i = 0; i < 10; ++i) s.deliver_message(A, msg(i), kTopic, t0);
  EXPECT_DOUBLE_EQ(s.score(A, t0), 3 + 1);  // topics capped, P5 added after the cap
  // The cap does not limit negative topic scores.
  for (int i = 20; i < 23; ++i)
    s.reject_message(B, msg(i), "u", RejectReason::validation_failed, t0);
  EXPECT_DOUBLE_EQ(s.score(B, t0), 9 * -1 * 2 + 1);
}

TEST(PeerScore, DecayAndDecayToZero) {
  auto p = quiet();
  p.topics[kTopic].first_message_deliveries_weight = 1;
  p.topics[kTopic].first_message_deliveries_cap = 100;
  p.behaviour_penalty_weight = -1;
  p.behaviour_penalty_threshold = 0;
  p.decay_interval = seconds(2);
  PeerScore s(p, t0);
  EXPECT_EQ(s.next_refresh(), t0 + seconds(2));
  s.add_peer(A, t0);
  s.deliver_message(A, msg(1), kTopic, t0);
  s.add_penalty(A, 1);
  const double expected[] = {0.5, 0.25, 0.125, 0};  // 0.0625 < decay_to_zero (0.1)
  Time t = t0;
  for (double e : expected) {
    t = s.next_refresh();
    s.refresh(t);
    EXPECT_DOUBLE_EQ(s.topic_stats(A, kTopic)->first_message_deliveries, e);
    EXPECT_DOUBLE_EQ(s.behaviour_penalty(A), e);
  }
  EXPECT_EQ(s.next_refresh(), t0 + seconds(10));
  EXPECT_EQ(s.score(A, t), 0);
}

TEST(PeerScore, ScoreParameterDecay) {
  double f = score_parameter_decay(seconds(10), seconds(1));
  EXPECT_DOUBLE_EQ(f, std::pow(0.01, 0.1));
  double v = 1;
  for (int i = 0; i < 10; ++i) v *= f;
  EXPECT_NEAR(v, 0.01, 1e-12);
  EXPECT_DOUBLE_EQ(score_parameter_decay(std::chrono::hours(1), seconds(2), 0.1),
                   std::pow(0.1, 1.0 / 1800));
  EXPECT_DOUBLE_EQ(score_parameter_decay(milliseconds(500), seconds(1)), 0.01);
}

TEST(PeerScore, RetainScoreAfterRemovePeer) {
  auto p = quiet();
  p.topics[kTopic].invalid_message_deliveries_weight = -1;
  p.topics[kTopic].first_message_deliveries_weight = 1;
  p.topics[kTopic].first_message_deliveries_cap = 100;
  p.retain_score = seconds(30);
  PeerScore s(p, t0);
  s.add_peer(A, t0);
  s.add_peer(B, t0);
  // A: one first delivery, two invalid: 1 - 4 = -3. B: positive.
  s.deliver_message(A, msg(1), kTopic, t0);
  s.reject_message(A, msg(2), kTopic, RejectReason::validation_failed, t0);
  s.reject_message(A, msg(3), kTopic, RejectReason::validation_failed, t0);
  s.deliver_message(B, msg(4), kTopic, t0);
  EXPECT_DOUBLE_EQ(s.score(A, t0), -3);
  s.remove_peer(A, t0);
  s.remove_peer(B, t0);
  EXPECT_EQ(s.score(B, t0), 0);  // positive scores are not kept
  // Retained: first deliveries cleared, no decay while away.
  EXPECT_DOUBLE_EQ(s.score(A, t0), -4);
  s.refresh(t0 + seconds(10));
  EXPECT_DOUBLE_EQ(s.score(A, t0 + seconds(10)), -4);
  EXPECT_EQ(s.peer_count(), 1u);
  // Reconnecting within retain_score gets the old score back.
  s.add_peer(A, t0 + seconds(20));
  EXPECT_DOUBLE_EQ(s.score(A, t0 + seconds(20)), -4);
  // Gone for longer than retain_score: forgotten at the next refresh.
  s.remove_peer(A, t0 + seconds(20));
  s.refresh(t0 + seconds(50));
  EXPECT_DOUBLE_EQ(s.score(A, t0 + seconds(50)), -4);  // exactly at expiry: still kept
  s.refresh(t0 + seconds(51));
  EXPECT_EQ(s.score(A, t0 + seconds(51)), 0);
  EXPECT_EQ(s.peer_count(), 0u);
}

TEST(PeerScore, RemovePeerAppliesMeshFailurePenalty) {
  auto p = p3_params();
  p.topics[kTopic].mesh_failure_penalty_weight = -1;
  PeerScore s(p, t0);
  s.add_peer(A, t0);
  s.graft(A, kTopic, t0);
  s.remove_peer(A, t0 + seconds(10));
  EXPECT_DOUBLE_EQ(s.topic_stats(A, kTopic)->mesh_failure_penalty, 16);
  EXPECT_FALSE(s.topic_stats(A, kTopic)->in_mesh);
  EXPECT_DOUBLE_EQ(s.score(A, t0 + seconds(10)), -16);
}

TEST(PeerScore, RetainedPeersAreCapped) {
  auto p = quiet();
  p.topics[kTopic].invalid_message_deliveries_weight = -1;
  p.max_retained_peers = 2;
  PeerScore s(p, t0);
  int n = 0;
  for (const auto& x : {A, B, C}) {
    s.add_peer(x, t0);
    s.reject_message(x, msg(n), kTopic, RejectReason::invalid_signature, t0);
    s.remove_peer(x, t0 + seconds(++n));
  }
  EXPECT_EQ(s.peer_count(), 2u);
  EXPECT_EQ(s.score(A, t0 + seconds(5)), 0);  // closest to expiry went first
  EXPECT_DOUBLE_EQ(s.score(C, t0 + seconds(5)), -1);
}

TEST(PeerScore, DeliveryRecordsExpire) {
  auto p = p3_params();
  p.topics[kTopic].mesh_message_deliveries_window = seconds(1000);  // window never the reason
  p.delivery_record_ttl = seconds(120);
  PeerScore s(p, t0);
  s.add_peer(A, t0);
  s.add_peer(B, t0);
  s.graft(B, kTopic, t0);
  s.deliver_message(A, msg(1), kTopic, t0);
  EXPECT_EQ(s.delivery_record_count(), 1u);
  s.refresh(t0 + seconds(120));
  EXPECT_EQ(s.delivery_record_count(), 1u);
  s.refresh(t0 + seconds(121));
  EXPECT_EQ(s.delivery_record_count(), 0u);
  // The record is gone, so a late copy is a new, unvalidated message: no credit.
  s.duplicate_message(B, msg(1), kTopic, t0 + seconds(122));
  EXPECT_EQ(s.topic_stats(B, kTopic)->mesh_message_deliveries, 0);
}

TEST(PeerScore, DeliveryRecordsAreCapped) {
  auto p = p3_params();
  p.max_delivery_records = 2;
  PeerScore s(p, t0);
  s.add_peer(A, t0);
  s.add_peer(B, t0);
  s.graft(B, kTopic, t0);
  for (int i = 1; i <= 3; ++i) s.deliver_message(A, msg(i), kTopic, t0);
  EXPECT_EQ(s.delivery_record_count(), 2u);
  s.duplicate_message(B, msg(1), kTopic, t0);  // evicted: not credited
  EXPECT_EQ(s.topic_stats(B, kTopic)->mesh_message_deliveries, 0);
  s.duplicate_message(B, msg(3), kTopic, t0);
  EXPECT_EQ(s.topic_stats(B, kTopic)->mesh_message_deliveries, 1);
}

// ---- validate() ----

std::string error_of(const Result<void>& r) {
  return r ? "" : r.error().message;
}

TEST(PeerScoreValidate, DefaultsAreValid) {
  PeerScoreParams p;
  p.topics["blocks"] = TopicScoreParams{};
  EXPECT_TRUE(validate(p)) << error_of(validate(p));
  EXPECT_TRUE(validate(PeerScoreThresholds{}));
  EXPECT_TRUE(validate(quiet())) << error_of(validate(quiet()));
}

TEST(PeerScoreValidate, TopicErrorsNameTheKey) {
  auto check = [](auto mutate, const std::string& want) {
    PeerScoreParams p;
    TopicScoreParams t;
    t.mesh_message_deliveries_weight = -1;
    t.mesh_failure_penalty_weight = -1;
    mutate(t);
    p.topics["blocks"] = t;
    auto r = validate(p);
    ASSERT_FALSE(r) << want;
    EXPECT_EQ(r.error().code, Errc::invalid_input);
    EXPECT_EQ(r.error().message, want);
  };
  check([](TopicScoreParams& t) { t.mesh_message_deliveries_decay = 1.5; },
        "score.topics.blocks.mesh_message_deliveries_decay: must be in (0, 1), got 1.5");
  check([](TopicScoreParams& t) { t.topic_weight = -1; },
        "score.topics.blocks.topic_weight: must be >= 0, got -1");
  check([](TopicScoreParams& t) { t.time_in_mesh_weight = -0.5; },
        "score.topics.blocks.time_in_mesh_weight: must be >= 0, got -0.5");
  check([](TopicScoreParams& t) { t.time_in_mesh_quantum = Duration::zero(); },
        "score.topics.blocks.time_in_mesh_quantum: must be > 0, got 0s");
  check([](TopicScoreParams& t) { t.time_in_mesh_cap = 0; },
        "score.topics.blocks.time_in_mesh_cap: must be > 0, got 0");
  check([](TopicScoreParams& t) { t.first_message_deliveries_weight = -1; },
        "score.topics.blocks.first_message_deliveries_weight: must be >= 0, got -1");
  check([](TopicScoreParams& t) { t.first_message_deliveries_decay = 0; },
        "score.topics.blocks.first_message_deliveries_decay: must be in (0, 1), got 0");
  check([](TopicScoreParams& t) { t.first_message_deliveries_cap = -1; },
        "score.topics.blocks.first_message_deliveries_cap: must be > 0, got -1");
  check([](TopicScoreParams& t) { t.mesh_message_deliveries_weight = 1; },
        "score.topics.blocks.mesh_message_deliveries_weight: must be <= 0, got 1");
  check([](TopicScoreParams& t) { t.mesh_message_deliveries_cap = 0; },
        "score.topics.blocks.mesh_message_deliveries_cap: must be > 0, got 0");
  check([](TopicScoreParams& t) { t.mesh_message_deliveries_threshold = 0; },
        "score.topics.blocks.mesh_message_deliveries_threshold: must be > 0, got 0");
  check([](TopicScoreParams& t) { t.mesh_message_deliveries_window = milliseconds(-1); },
        "score.topics.blocks.mesh_message_deliveries_window: must be >= 0, got -0.001s");
  check([](TopicScoreParams& t) { t.mesh_message_deliveries_activation = milliseconds(500); },
        "score.topics.blocks.mesh_message_deliveries_activation: must be at least 1s, got 0.5s");
  check([](TopicScoreParams& t) { t.mesh_failure_penalty_weight = 2; },
        "score.topics.blocks.mesh_failure_penalty_weight: must be <= 0, got 2");
  check([](TopicScoreParams& t) { t.mesh_failure_penalty_decay = 1; },
        "score.topics.blocks.mesh_failure_penalty_decay: must be in (0, 1), got 1");
  check([](TopicScoreParams& t) { t.invalid_message_deliveries_weight = 1; },
        "score.topics.blocks.invalid_message_deliveries_weight: must be <= 0, got 1");
  check([](TopicScoreParams& t) { t.invalid_message_deliveries_decay = NAN; },
        "score.topics.blocks.invalid_message_deliveries_decay: must be in (0, 1), got nan");
}

TEST(PeerScoreValidate, DisabledComponentsSkipTheirChecks) {
  PeerScoreParams p;
  TopicScoreParams t;
  t.mesh_message_deliveries_weight = 0;
  t.mesh_message_deliveries_decay = 7;
  t.mesh_message_deliveries_activation = Duration::zero();
  t.mesh_failure_penalty_weight = 0;
  t.mesh_failure_penalty_decay = 0;
  t.first_message_deliveries_weight = 0;
  t.first_message_deliveries_cap = 0;
  p.topics["x"] = t;
  p.ip_colocation_factor_weight = 0;
  p.ip_colocation_factor_threshold = 0;
  p.behaviour_penalty_weight = 0;
  p.behaviour_penalty_decay = 0;
  EXPECT_TRUE(validate(p)) << error_of(validate(p));
}

TEST(PeerScoreValidate, PeerErrorsNameTheKey) {
  auto check = [](auto mutate, const std::string& want) {
    PeerScoreParams p;
    mutate(p);
    EXPECT_EQ(error_of(validate(p)), want);
  };
  check([](PeerScoreParams& p) { p.topic_score_cap = -1; },
        "score.topic_score_cap: must be >= 0 (0 = no cap), got -1");
  check([](PeerScoreParams& p) { p.app_specific_weight = INFINITY; },
        "score.app_specific_weight: must be a finite number, got inf");
  check([](PeerScoreParams& p) { p.ip_colocation_factor_weight = 1; },
        "score.ip_colocation_factor_weight: must be <= 0, got 1");
  check([](PeerScoreParams& p) { p.ip_colocation_factor_threshold = 0.5; },
        "score.ip_colocation_factor_threshold: must be >= 1, got 0.5");
  check(
      [](PeerScoreParams& p) {
        p.ip_colocation_factor_whitelist = {"10.0.0.0/8", "10.0.0.1"};
      },
      "score.ip_colocation_factor_whitelist[1]: must be a CIDR like 10.0.0.0/8 or fd00::/8, "
      "got \"10.0.0.1\"");
  check([](PeerScoreParams& p) { p.ip_colocation_factor_whitelist = {"10.0.0.0/33"}; },
        "score.ip_colocation_factor_whitelist[0]: must be a CIDR like 10.0.0.0/8 or fd00::/8, "
        "got \"10.0.0.0/33\"");
  check([](PeerScoreParams& p) { p.behaviour_penalty_weight = 1; },
        "score.behaviour_penalty_weight: must be <= 0, got 1");
  check([](PeerScoreParams& p) { p.behaviour_penalty_decay = 1.5; },
        "score.behaviour_penalty_decay: must be in (0, 1), got 1.5");
  check([](PeerScoreParams& p) { p.behaviour_penalty_threshold = -1; },
        "score.behaviour_penalty_threshold: must be >= 0, got -1");
  check([](PeerScoreParams& p) { p.decay_interval = milliseconds(500); },
        "score.decay_interval: must be at least 1s, got 0.5s");
  check([](PeerScoreParams& p) { p.decay_to_zero = 0; },
        "score.decay_to_zero: must be in (0, 1), got 0");
  check([](PeerScoreParams& p) { p.retain_score = seconds(-1); },
        "score.retain_score: must be >= 0, got -1s");
  check([](PeerScoreParams& p) { p.delivery_record_ttl = Duration::zero(); },
        "score.delivery_record_ttl: must be > 0, got 0s");
  check([](PeerScoreParams& p) { p.max_delivery_records = 0; },
        "score.max_delivery_records: must be >= 1, got 0");
}

TEST(PeerScoreValidate, ThresholdErrorsNameTheKey) {
  auto check = [](auto mutate, const std::string& want) {
    PeerScoreThresholds t;
    mutate(t);
    EXPECT_EQ(error_of(validate(t)), want);
  };
  check([](PeerScoreThresholds& t) { t.gossip_threshold = 1; },
        "thresholds.gossip_threshold: must be <= 0, got 1");
  check([](PeerScoreThresholds& t) { t.publish_threshold = -5; },
        "thresholds.publish_threshold: must be <= gossip_threshold, got -5");
  check([](PeerScoreThresholds& t) { t.publish_threshold = 1; },
        "thresholds.publish_threshold: must be <= 0, got 1");
  check([](PeerScoreThresholds& t) { t.graylist_threshold = -20; },
        "thresholds.graylist_threshold: must be <= publish_threshold, got -20");
  check([](PeerScoreThresholds& t) { t.accept_px_threshold = -1; },
        "thresholds.accept_px_threshold: must be >= 0, got -1");
  check([](PeerScoreThresholds& t) { t.opportunistic_graft_threshold = -1; },
        "thresholds.opportunistic_graft_threshold: must be >= 0, got -1");
  PeerScoreThresholds zero{0, 0, 0, 0, 0};
  EXPECT_TRUE(validate(zero));
}

}  // namespace
}  // namespace p2pmq::pubsub
