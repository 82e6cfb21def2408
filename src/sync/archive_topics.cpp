#include "sync/archive_topics.hpp"

namespace p2pmq::sync {

bool glob_match(std::string_view pattern, std::string_view topic) {
  // Greedy with one backtrack point (the last '*'): O(|pattern| * |topic|) at worst, no
  // recursion, so a long announced topic cannot blow the stack.
  size_t p = 0, t = 0;
  size_t star = std::string_view::npos, resume = 0;
  while (t < topic.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == topic[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool is_pattern(std::string_view entry) {
  return entry.find_first_of("*?") != std::string_view::npos;
}

ArchiveTopics::ArchiveTopics(const std::vector<std::string>& entries, size_t max_adopted)
    : max_adopted_(max_adopted) {
  for (const auto& e : entries) {
    if (is_pattern(e)) {
      patterns_.push_back(e);
    } else if (named_set_.insert(e).second) {
      named_.push_back(e);
    }
  }
}

bool ArchiveTopics::matches(std::string_view topic) const {
  if (named_set_.contains(topic)) return true;
  for (const auto& p : patterns_)
    if (glob_match(p, topic)) return true;
  return false;
}

ArchiveTopics::Offer ArchiveTopics::offer(const std::string& topic) {
  if (named_set_.contains(topic) || adopted_.contains(topic)) return Offer::already_kept;
  if (!matches(topic)) return Offer::not_matching;
  if (adopted_.size() >= max_adopted_) {
    ++refused_over_cap_;
    return Offer::over_cap;
  }
  adopted_.insert(topic);
  return Offer::adopted;
}

}  // namespace p2pmq::sync
