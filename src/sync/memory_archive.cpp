#include "sync/memory_archive.hpp"

#include <algorithm>
#include <unordered_map>

namespace p2pmq::sync {

bool origin_less(BytesView a, BytesView b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return as_string(a) < as_string(b);
}

namespace {

// Adds m unless the answer already holds something and m would pass max_bytes.
bool take(QueryResult& out, size_t& bytes, const StoredMessage& m, size_t max_bytes) {
  if (!out.messages.empty() && bytes + m.message.size() > max_bytes) {
    out.complete = false;
    return false;
  }
  bytes += m.message.size();
  out.messages.push_back(m);
  return true;
}

}  // namespace

bool MemoryArchive::KeyLess::operator()(const std::pair<Bytes, uint64_t>& a,
                                        const std::pair<Bytes, uint64_t>& b) const {
  if (a.first != b.first) return origin_less(a.first, b.first);
  return a.second < b.second;
}

Result<bool> MemoryArchive::put(const TopicId& topic, BytesView origin, uint64_t seqno,
                                BytesView message, WallTime received) {
  auto& t = topics_[topic];
  std::pair<Bytes, uint64_t> key{Bytes(origin.begin(), origin.end()), seqno};
  if (t.by_origin.contains(key)) return false;
  // Per-origin quota: an origin at its quota replaces its own lowest seqno (a scan of the
  // arrivals: this archive is a reference, not built for speed).
  if (t.per_origin[key.first] >= std::max<uint64_t>(retention_.max_messages_per_origin, 1)) {
    auto lowest = t.by_origin.lower_bound({key.first, 0});
    std::erase_if(t.by_arrival, [&](const auto& a) { return a.second == lowest->first; });
    --t.per_origin[key.first];
    t.by_origin.erase(lowest);
  }
  ++t.per_origin[key.first];
  t.by_origin.emplace(
      key, StoredMessage{key.first, seqno, Bytes(message.begin(), message.end()), received});
  t.by_arrival.emplace(t.next_arrival++, key);
  auto cutoff = received - retention_.max_age;
  while (!t.by_arrival.empty()) {
    auto oldest = t.by_arrival.begin();
    bool too_many = t.by_arrival.size() > std::max<uint64_t>(retention_.max_messages, 1);
    bool too_old =
        retention_.max_age.count() > 0 && t.by_origin.at(oldest->second).received < cutoff;
    if (!too_many && !too_old) break;
    auto k = oldest->second;
    t.by_arrival.erase(oldest);
    if (--t.per_origin[k.first] == 0) t.per_origin.erase(k.first);
    t.by_origin.erase(k);
  }
  return true;
}

bool MemoryArchive::has_topic(const TopicId& topic) {
  return topics_.contains(topic);
}

size_t MemoryArchive::size(const TopicId& topic) const {
  auto it = topics_.find(topic);
  return it == topics_.end() ? 0 : it->second.by_origin.size();
}

Result<QueryResult> MemoryArchive::latest(const TopicId& topic, uint64_t n, size_t max_bytes) {
  QueryResult out;
  auto it = topics_.find(topic);
  if (it == topics_.end()) return out;
  size_t bytes = 0;
  const auto& t = it->second;
  for (auto a = t.by_arrival.rbegin(); a != t.by_arrival.rend() && out.messages.size() < n; ++a)
    if (!take(out, bytes, t.by_origin.at(a->second), max_bytes)) break;
  std::reverse(out.messages.begin(), out.messages.end());
  return out;
}

Result<QueryResult> MemoryArchive::range(const TopicId& topic, BytesView origin, uint64_t from,
                                         uint64_t to, size_t max_bytes) {
  QueryResult out;
  auto it = topics_.find(topic);
  if (it == topics_.end() || from > to) return out;
  const auto& t = it->second;
  Bytes o(origin.begin(), origin.end());
  size_t bytes = 0;
  for (auto m = t.by_origin.lower_bound({o, from});
       m != t.by_origin.end() && m->first.first == o && m->first.second <= to; ++m)
    if (!take(out, bytes, m->second, max_bytes)) break;
  return out;
}

Result<QueryResult> MemoryArchive::since(const TopicId& topic,
                                         const std::vector<Watermark>& watermarks,
                                         const std::optional<Position>& after, size_t max_bytes) {
  QueryResult out;
  auto it = topics_.find(topic);
  if (it == topics_.end()) return out;
  std::unordered_map<std::string, uint64_t> marks;
  for (const auto& w : watermarks) {
    auto& mark = marks[std::string(as_string(w.origin))];
    mark = std::max(mark, w.seqno);
  }
  const auto& t = it->second;
  auto m = after ? t.by_origin.upper_bound({after->origin, after->seqno}) : t.by_origin.begin();
  size_t bytes = 0;
  for (; m != t.by_origin.end(); ++m) {
    auto mark = marks.find(std::string(as_string(m->first.first)));
    if (mark != marks.end() && m->first.second <= mark->second) continue;
    if (!take(out, bytes, m->second, max_bytes)) break;
  }
  return out;
}

}  // namespace p2pmq::sync
