#include "api/held_messages.hpp"

#include <gtest/gtest.h>

namespace p2pmq::api {
namespace {

AgentMessage message(const std::string& topic, size_t bytes, uint64_t seqno = 1) {
  AgentMessage m;
  m.topic = topic;
  m.data = Bytes(bytes, 0x61);
  m.seqno = seqno;
  return m;
}

TEST(HeldMessages, HoldsOnlyTopicsAClientSubscribed) {
  HeldMessages held;
  // A --topic or archive topic, or one whose Listen stream went away: nobody asked to hold it.
  EXPECT_FALSE(held.hold("archive", message("archive", 1000)));
  EXPECT_EQ(held.bytes(), 0u);
  held.request("news");
  EXPECT_TRUE(held.hold("news", message("news", 1000)));
  EXPECT_EQ(held.items("news"), 1u);
  auto items = held.take("news");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(held.bytes(), 0u);
  EXPECT_TRUE(held.requested("news"));  // still held for the next listener
  held.release("news");
  EXPECT_FALSE(held.hold("news", message("news", 1000)));
}

TEST(HeldMessages, TotalIsBoundedInBytesDroppingTheOldestOfTheLargestTopic) {
  HoldConfig config;
  config.max_bytes = 1 << 20;
  HeldMessages held(config);
  held.request("big");
  held.request("small");
  for (uint64_t i = 1; i <= 10; ++i) held.hold("small", message("small", 1024, i));
  size_t small_bytes = held.bytes();
  // 1 MiB messages with a 1 MiB budget: never more than the budget, whatever arrives.
  for (uint64_t i = 1; i <= 100; ++i) {
    held.hold("big", message("big", 64 * 1024, i));
    EXPECT_LE(held.bytes(), config.max_bytes);
  }
  EXPECT_EQ(held.items("small"), 10u) << "the small topic keeps its messages";
  EXPECT_GT(held.dropped(), 0u);
  auto big = held.take("big");
  ASSERT_FALSE(big.empty());
  EXPECT_EQ(std::get<AgentMessage>(big.back()).seqno, 100u) << "the newest are kept";
  EXPECT_EQ(held.bytes(), small_bytes);
}

TEST(HeldMessages, EmptyMessagesCountAgainstTheByteBound) {
  HoldConfig config;
  config.max_bytes = 64 * 1024;
  config.max_messages_per_topic = 1'000'000;
  HeldMessages held(config);
  held.request("t");
  for (int i = 0; i < 100'000; ++i) held.hold("t", message("t", 0));
  EXPECT_LE(held.bytes(), config.max_bytes);
  EXPECT_LT(held.items("t"), 100'000u);
}

TEST(HeldMessages, MessagesPerTopicAreBounded) {
  HoldConfig config;
  config.max_messages_per_topic = 5;
  HeldMessages held(config);
  held.request("t");
  for (uint64_t i = 1; i <= 8; ++i) held.hold("t", message("t", 1, i));
  auto items = held.take("t");
  ASSERT_EQ(items.size(), 5u);
  EXPECT_EQ(std::get<AgentMessage>(items.front()).seqno, 4u);
}

}  // namespace
}  // namespace p2pmq::api
