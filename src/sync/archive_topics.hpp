#pragma once
// Which topics an archive keeps (sync.archive_topics): topic names, kept from the start, and
// glob patterns, matched against the topics peers announce (gossipsub SUBSCRIBE). A matching
// topic is adopted (the archive joins and stores it) up to a cap, since any peer can announce
// any number of topics. Sans-IO: the agent feeds announcements and acts on the answers.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace p2pmq::sync {

// Glob match of a whole topic name: '*' matches any run of characters (also none), '?' exactly
// one; every other character matches itself. No escapes: topics with '*' or '?' in their name
// are matched by a pattern that has a wildcard there.
bool glob_match(std::string_view pattern, std::string_view topic);

// A pattern with no wildcard names one topic.
bool is_pattern(std::string_view entry);

class ArchiveTopics {
 public:
  // `entries`: sync.archive_topics; `max_adopted`: sync.max_archive_topics, the number of topics
  // adopted through patterns (named topics are not counted: the operator chose them).
  ArchiveTopics(const std::vector<std::string>& entries, size_t max_adopted);

  // The named topics (entries without wildcards), to join at start.
  const std::vector<std::string>& named() const { return named_; }
  bool has_patterns() const { return !patterns_.empty(); }
  bool keeps_nothing() const { return named_.empty() && patterns_.empty(); }
  bool matches(std::string_view topic) const;

  enum class Offer {
    adopted,       // matches, and under the cap: join and keep it
    already_kept,  // named or adopted before
    not_matching,
    over_cap,  // matches, but max_adopted topics are adopted already
  };
  // A topic a peer announced.
  Offer offer(const std::string& topic);

  size_t adopted() const { return adopted_.size(); }
  uint64_t refused_over_cap() const { return refused_over_cap_; }

 private:
  std::vector<std::string> named_;
  std::vector<std::string> patterns_;
  std::set<std::string, std::less<>> named_set_;
  std::set<std::string, std::less<>> adopted_;
  size_t max_adopted_;
  uint64_t refused_over_cap_ = 0;
};

}  // namespace p2pmq::sync
