#include "sync/archive_topics.hpp"

#include <gtest/gtest.h>

namespace p2pmq::sync {
namespace {

TEST(GlobMatch, StarMatchesAnyRunIncludingNone) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*", "anything/at.all"));
  EXPECT_TRUE(glob_match("news.*", "news."));
  EXPECT_TRUE(glob_match("news.*", "news.sport.eu"));
  EXPECT_FALSE(glob_match("news.*", "news"));
  EXPECT_FALSE(glob_match("news.*", "old.news.x"));
  EXPECT_TRUE(glob_match("*.eu", "prices.eu"));
  EXPECT_TRUE(glob_match("a*b*c", "aXXbYYbZZc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXXbYYbZZ"));
  EXPECT_TRUE(glob_match("**x", "x"));
}

TEST(GlobMatch, QuestionMarkMatchesExactlyOne) {
  EXPECT_TRUE(glob_match("shard-?", "shard-7"));
  EXPECT_FALSE(glob_match("shard-?", "shard-"));
  EXPECT_FALSE(glob_match("shard-?", "shard-12"));
}

TEST(GlobMatch, WithoutWildcardsIsEquality) {
  EXPECT_TRUE(glob_match("orders", "orders"));
  EXPECT_FALSE(glob_match("orders", "orders2"));
  EXPECT_FALSE(glob_match("orders", "Orders"));
}

TEST(GlobMatch, LongHostileTopicIsAnsweredWithoutBlowingUp) {
  std::string topic(100000, 'a');
  EXPECT_FALSE(glob_match("*a*a*a*a*b", topic));
  EXPECT_TRUE(glob_match("*a*a*a*a*", topic));
}

TEST(ArchiveTopics, NamedTopicsAreKeptFromTheStartAndNotCounted) {
  ArchiveTopics kept({"orders", "news.*", "orders"}, 1);
  EXPECT_EQ(kept.named(), std::vector<std::string>{"orders"});
  EXPECT_TRUE(kept.has_patterns());
  EXPECT_EQ(kept.offer("orders"), ArchiveTopics::Offer::already_kept);
  EXPECT_EQ(kept.offer("news.eu"), ArchiveTopics::Offer::adopted);
  EXPECT_EQ(kept.adopted(), 1u);
}

TEST(ArchiveTopics, AnnouncedTopicMatchingAPatternIsAdoptedOnce) {
  ArchiveTopics kept({"news.*"}, 10);
  EXPECT_EQ(kept.offer("news.eu"), ArchiveTopics::Offer::adopted);
  EXPECT_EQ(kept.offer("news.eu"), ArchiveTopics::Offer::already_kept);
  EXPECT_EQ(kept.offer("prices"), ArchiveTopics::Offer::not_matching);
  EXPECT_EQ(kept.adopted(), 1u);
}

TEST(ArchiveTopics, AdoptionStopsAtTheCapAndCountsRefusals) {
  ArchiveTopics kept({"*"}, 3);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(kept.offer("t" + std::to_string(i)), ArchiveTopics::Offer::adopted);
  // A peer announcing thousands of topics gets none of them kept beyond the cap.
  for (int i = 3; i < 5000; ++i)
    EXPECT_EQ(kept.offer("t" + std::to_string(i)), ArchiveTopics::Offer::over_cap);
  EXPECT_EQ(kept.adopted(), 3u);
  EXPECT_EQ(kept.refused_over_cap(), 4997u);
  // What was adopted stays kept.
  EXPECT_EQ(kept.offer("t1"), ArchiveTopics::Offer::already_kept);
}

TEST(ArchiveTopics, NoEntryKeepsNothing) {
  ArchiveTopics kept({}, 100);
  EXPECT_TRUE(kept.keeps_nothing());
  EXPECT_FALSE(kept.has_patterns());
  EXPECT_EQ(kept.offer("news"), ArchiveTopics::Offer::not_matching);
  EXPECT_FALSE(ArchiveTopics({"news"}, 100).keeps_nothing());
}

}  // namespace
}  // namespace p2pmq::sync
