#include "sync/delivery.hpp"

#include <algorithm>
#include <limits>

#include "pubsub/message.hpp"

namespace p2pmq::sync {

// ---- IntervalSet ----

void IntervalSet::insert(uint64_t from, uint64_t to) {
  if (from > to) return;
  auto it = ranges_.upper_bound(from);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= from - 1 || from == 0) {  // overlaps or touches: absorb it
      from = prev->first;
      to = std::max(to, prev->second);
      it = ranges_.erase(prev);
    }
  }
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  while (it != ranges_.end() && (to == kMax || it->first <= to + 1)) {
    to = std::max(to, it->second);
    it = ranges_.erase(it);
  }
  ranges_.emplace(from, to);
}

bool IntervalSet::contains(uint64_t x) const {
  auto it = ranges_.upper_bound(x);
  if (it == ranges_.begin()) return false;
  return std::prev(it)->second >= x;
}

std::optional<uint64_t> IntervalSet::take_starting_at(uint64_t x) {
  auto it = ranges_.find(x);
  if (it == ranges_.end()) return std::nullopt;
  uint64_t end = it->second;
  ranges_.erase(it);
  return end;
}

void IntervalSet::erase_highest() {
  if (!ranges_.empty()) ranges_.erase(std::prev(ranges_.end()));
}

// ---- FetchSlots ----

bool FetchSlots::try_acquire(const TopicId& topic) {
  size_t& used = per_topic_[topic];
  if (total_ >= config_.total || used >= config_.per_topic) {
    if (used == 0) per_topic_.erase(topic);
    return false;
  }
  ++used;
  ++total_;
  return true;
}

void FetchSlots::release(const TopicId& topic) {
  auto it = per_topic_.find(topic);
  if (it == per_topic_.end()) return;
  if (--it->second == 0) per_topic_.erase(it);
  --total_;
}

size_t FetchSlots::in_flight(const TopicId& topic) const {
  auto it = per_topic_.find(topic);
  return it == per_topic_.end() ? 0 : it->second;
}

// ---- DeliveryTracker ----

DeliveryTracker::DeliveryTracker(DeliveryConfig config) : config_(config) {}

bool DeliveryTracker::ordered(const TopicId& topic) const {
  auto it = ordered_.find(topic);
  return it == ordered_.end() ? config_.ordered : it->second;
}

size_t DeliveryTracker::buffered(const TopicId& topic, BytesView origin) const {
  auto it = streams_.find({topic, Bytes(origin.begin(), origin.end())});
  return it == streams_.end() ? 0 : it->second.buffer.size();
}

void DeliveryTracker::emit(Deliver d, DeliveryOutput& out) {
  ++stats_.delivered;
  out.events.emplace_back(std::move(d));
}

DeliveryOutput DeliveryTracker::set_ordered(const TopicId& topic, bool ordered) {
  DeliveryOutput out;
  ordered_[topic] = ordered;
  if (ordered) return out;
  for (auto it = streams_.lower_bound({topic, Bytes{}});
       it != streams_.end() && it->first.first == topic; ++it) {
    Stream& s = it->second;
    // Out-of-order delivery from now on: release the buffer and report held-back gaps.
    for (auto& [seqno, d] : s.buffer) {
      s.done.insert(seqno, seqno);
      emit(std::move(d), out);
    }
    s.buffer.clear();
    for (auto [from, to] : s.abandoned.ranges()) {
      out.events.emplace_back(GapEvent{topic, it->first.second, from, to});
      s.done.insert(from, to);
    }
    s.abandoned = {};
    advance(it->first, s, out);
  }
  return out;
}

DeliveryTracker::Stream* DeliveryTracker::create(const Key& key, uint64_t delivered, Time now) {
  if (streams_.size() >= config_.max_streams) {
    // Evict the least recently active stream with nothing pending; its watermark is retired,
    // so its next message resumes from it.
    auto victim = streams_.end();
    for (auto s = streams_.begin(); s != streams_.end(); ++s) {
      const Stream& st = s->second;
      bool idle = st.buffer.empty() && st.gaps.empty() && st.done.empty() && st.abandoned.empty() &&
                  st.acked == st.delivered;
      if (idle && (victim == streams_.end() || st.last_active < victim->second.last_active))
        victim = s;
    }
    if (victim == streams_.end()) return nullptr;
    retire(victim->first, victim->second.delivered);
    streams_.erase(victim);
    ++stats_.streams_evicted;
  }
  Stream s;
  s.delivered = s.max_seen = s.acked = delivered;
  s.last_active = now;
  return &streams_.insert_or_assign(key, std::move(s)).first->second;
}

void DeliveryTracker::retire(const Key& key, uint64_t delivered) {
  uint64_t generation = next_generation_++;
  retired_[key] = Retired{delivered, generation};
  retired_order_.emplace_back(generation, key);
  while (retired_.size() > config_.max_retired && !retired_order_.empty()) {
    auto [gen, oldest] = std::move(retired_order_.front());
    retired_order_.pop_front();
    auto it = retired_.find(oldest);
    if (it == retired_.end() || it->second.generation != gen) continue;  // restored since
    retired_.erase(it);
    forgotten_.insert(oldest.first);
    ++stats_.retired_forgotten;
  }
  // Entries of restored streams linger in the order queue; drop them when it doubles.
  if (retired_order_.size() > 2 * retired_.size() + 64)
    std::erase_if(retired_order_, [&](const auto& e) {
      auto it = retired_.find(e.second);
      return it == retired_.end() || it->second.generation != e.first;
    });
}

bool DeliveryTracker::allow_new_origin(const TopicId& topic, Time now) {
  auto [it, fresh] = new_origins_.try_emplace(topic, Bucket{config_.new_origin_burst, now});
  Bucket& b = it->second;
  if (!fresh) {
    double elapsed = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(config_.new_origin_burst,
                        b.tokens + std::max(0.0, elapsed) * config_.new_origins_per_second);
    b.last = std::max(b.last, now);
  }
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

void DeliveryTracker::add_gap(Stream& s, uint64_t from, uint64_t to, Time now) {
  Gap gap{to, now, std::nullopt};
  // Merge with touching gaps so their number stays below the buffered entries + 1.
  auto next = s.gaps.find(to + 1);
  if (to + 1 != 0 && next != s.gaps.end()) {
    gap.to = next->second.to;
    gap.first_seen = std::min(gap.first_seen, next->second.first_seen);
    s.gaps.erase(next);
  }
  auto prev = s.gaps.lower_bound(from);
  if (prev != s.gaps.begin()) {
    --prev;
    if (prev->second.to + 1 == from) {
      from = prev->first;
      gap.first_seen = std::min(gap.first_seen, prev->second.first_seen);
      s.gaps.erase(prev);
    }
  }
  s.gaps[from] = gap;
}

void DeliveryTracker::remove_from_gap(Stream& s, uint64_t seqno) {
  auto it = s.gaps.upper_bound(seqno);
  if (it == s.gaps.begin()) return;
  --it;
  if (it->second.to < seqno) return;
  uint64_t from = it->first;
  Gap gap = it->second;
  s.gaps.erase(it);
  // The pieces keep their age and fetch state.
  if (from < seqno) s.gaps[from] = Gap{seqno - 1, gap.first_seen, gap.last_fetch};
  if (seqno < gap.to) s.gaps[seqno + 1] = gap;
}

void DeliveryTracker::advance(const Key& key, Stream& s, DeliveryOutput& out) {
  for (;;) {
    uint64_t next = s.delivered + 1;
    if (auto it = s.buffer.find(next); it != s.buffer.end()) {
      emit(std::move(it->second), out);
      s.buffer.erase(it);
      s.delivered = next;
    } else if (auto end = s.done.take_starting_at(next)) {
      s.delivered = *end;
    } else if (auto end = s.abandoned.take_starting_at(next)) {
      out.events.emplace_back(GapEvent{key.first, key.second, next, *end});
      s.delivered = *end;
    } else {
      return;
    }
  }
}

void DeliveryTracker::give_up(const Key& key, Stream& s, std::map<uint64_t, Gap>::iterator gap,
                              bool ordered, DeliveryOutput& out) {
  uint64_t from = gap->first, to = gap->second.to;
  s.gaps.erase(gap);
  ++stats_.gaps_given_up;
  if (ordered) {
    s.abandoned.insert(from, to);  // reported in order, when delivery reaches it
  } else {
    out.events.emplace_back(GapEvent{key.first, key.second, from, to});
    s.done.insert(from, to);
  }
  advance(key, s, out);
}

DeliveryOutput DeliveryTracker::offer(pubsub::Message message, Source source, Time now) {
  DeliveryOutput out;
  auto seqno = pubsub::seqno_value(message);
  if (!message.from || !seqno || *seqno == 0) {
    ++stats_.untracked;
    emit(Deliver{std::move(message), source, 0}, out);
    return out;
  }
  const uint64_t n = *seqno;
  Key key{message.topic, *message.from};
  // A live message nobody can track is delivered anyway (the seen cache drops its copies);
  // a synced one could be a re-delivery, so it is dropped.
  auto untrackable = [&] {
    if (source == Source::synced) {
      ++stats_.unknown_synced_dropped;
      return out;
    }
    ++stats_.untracked;
    emit(Deliver{std::move(message), source, 0}, out);
    return out;
  };
  bool is_new = false;
  Stream* sp = nullptr;
  if (auto it = streams_.find(key); it != streams_.end()) {
    sp = &it->second;
  } else if (auto r = retired_.find(key); r != retired_.end()) {
    // Evicted before: resume where it was (what follows is a gap, what precedes a duplicate).
    uint64_t delivered = r->second.delivered;
    retired_.erase(r);
    ++stats_.streams_restored;
    sp = create(key, delivered, now);
    if (!sp) return untrackable();
  } else {
    // Its watermark may have been forgotten: its history could be a re-delivery.
    bool wary = forgotten_.contains(key.first);
    if (wary && source == Source::synced) return untrackable();
    if (!allow_new_origin(key.first, now)) {
      ++stats_.new_origins_limited;
      return untrackable();
    }
    // History before the first seqno seen is not a gap: catching up on it is an explicit Since.
    sp = create(key, n - 1, now);
    if (!sp) return untrackable();
    is_new = !wary;
  }
  Stream& s = *sp;
  s.last_active = now;
  if (!is_new && !s.unnumbered && far_outside(s, n)) stop_tracking(s, out);
  if (s.unnumbered) {
    ++stats_.untracked;
    emit(Deliver{std::move(message), source, 0}, out);
    return out;
  }
  if (is_new && n > 1 && config_.fetch_history) {
    // An origin first met mid-stream: its earlier seqnos are history, fetched once and
    // delivered as they come (out of order, never reported as a gap).
    // Only the newest max_gap_fetch of them: the rest is history nobody will be handed.
    s.history_end = n - 1;
    ++stats_.history_fetches;
    uint64_t window = std::max<uint64_t>(config_.max_gap_fetch, 1);
    uint64_t first = n - 1 >= window ? n - window : 1;
    out.fetches.push_back(FetchRange{key.first, key.second, first, n - 1});
  }
  if (n <= s.history_end) {
    if (s.history_done.contains(n)) {
      ++stats_.duplicates;
      return out;
    }
    s.history_done.insert(n, n);
    emit(Deliver{std::move(message), source, n}, out);
    return out;
  }
  if (n <= s.delivered || s.buffer.contains(n) || s.done.contains(n)) {
    ++stats_.duplicates;
    return out;
  }
  if (s.abandoned.contains(n)) {
    ++stats_.late;
    return out;
  }
  if (n > s.max_seen) {
    if (n > s.max_seen + 1) {
      uint64_t from = s.max_seen + 1;
      uint64_t window = std::max<uint64_t>(config_.max_gap_fetch, 1);
      s.max_seen = n;
      if (n - from > window) {
        // Too large to fetch: everything below the window is given up now (reported in
        // order when ordered), and only the window just under n is left to gossip and fetches.
        ++stats_.oversized_gaps;
        uint64_t lower_end = n - 1 - window;
        auto lower = s.gaps.insert_or_assign(from, Gap{lower_end, now, std::nullopt}).first;
        give_up(key, s, lower, ordered(key.first), out);
        from = lower_end + 1;
      }
      add_gap(s, from, n - 1, now);
      ++stats_.gaps_opened;
    }
    s.max_seen = n;
  } else {
    remove_from_gap(s, n);
  }

  Deliver d{std::move(message), source, n};
  if (ordered(key.first)) {
    if (n == s.delivered + 1) {
      emit(std::move(d), out);
      s.delivered = n;
      advance(key, s, out);
      return out;
    }
    if (s.buffer.size() >= config_.max_buffered) {
      // Keep the lowest seqnos, which delivery needs first; the dropped one becomes a gap.
      ++stats_.buffer_overflow;
      uint64_t highest = s.buffer.rbegin()->first;
      if (n > highest) {
        add_gap(s, n, n, now);
        return out;
      }
      s.buffer.erase(highest);
      add_gap(s, highest, highest, now);
    }
    s.buffer.emplace(n, std::move(d));
    return out;
  }

  emit(std::move(d), out);
  if (n == s.delivered + 1) {
    s.delivered = n;
    advance(key, s, out);
    return out;
  }
  s.done.insert(n, n);
  // Out-of-order ranges are separated by gaps: too many of them, give up the oldest gaps.
  while (s.done.intervals() > config_.max_buffered && !s.gaps.empty()) {
    ++stats_.forced_give_ups;
    give_up(key, s, s.gaps.begin(), false, out);
  }
  return out;
}

bool DeliveryTracker::far_outside(const Stream& s, uint64_t n) const {
  const uint64_t jump = config_.max_seqno_jump;
  return (n < s.delivered && s.delivered - n > jump) || (n > s.max_seen && n - s.max_seen > jump);
}

void DeliveryTracker::stop_tracking(Stream& s, DeliveryOutput& out) {
  s.unnumbered = true;
  ++stats_.unnumbered_origins;
  for (auto& [seqno, d] : s.buffer) {
    d.seqno = 0;
    emit(std::move(d), out);
  }
  s.buffer.clear();
  s.gaps.clear();
  s.abandoned = {};
  s.done = {};
  s.max_seen = s.delivered;
}

std::optional<Time> DeliveryTracker::next_deadline() const {
  // TODO(perf): a deadline index instead of a scan, if many origins have gaps at once.
  std::optional<Time> best;
  for (const auto& [key, s] : streams_) {
    for (const auto& [from, g] : s.gaps) {
      Time fetch =
          g.last_fetch ? *g.last_fetch + config_.fetch_retry : g.first_seen + config_.gap_wait;
      Time t = std::min(fetch, g.first_seen + config_.gap_give_up);
      if (!best || t < *best) best = t;
    }
  }
  return best;
}

DeliveryOutput DeliveryTracker::on_timer(Time now) {
  DeliveryOutput out;
  for (auto& [key, s] : streams_) {
    bool ord = ordered(key.first);
    for (auto it = s.gaps.begin(); it != s.gaps.end();) {
      Gap& g = it->second;
      if (now >= g.first_seen + config_.gap_give_up) {
        uint64_t from = it->first;
        give_up(key, s, it, ord, out);
        it = s.gaps.upper_bound(from);
        continue;
      }
      Time fetch =
          g.last_fetch ? *g.last_fetch + config_.fetch_retry : g.first_seen + config_.gap_wait;
      if (now >= fetch) {
        out.fetches.push_back(FetchRange{key.first, key.second, it->first, g.to});
        g.last_fetch = now;
        ++stats_.fetches;
      }
      ++it;
    }
  }
  return out;
}

void DeliveryTracker::mark_delivered(const TopicId& topic, BytesView origin, uint64_t from,
                                     uint64_t to) {
  auto it = streams_.find({topic, Bytes(origin.begin(), origin.end())});
  if (it == streams_.end() || from > to) return;
  Stream& s = it->second;
  if (to <= s.acked) return;
  s.acked_above.insert(std::max(from, s.acked + 1), to);
  while (auto end = s.acked_above.take_starting_at(s.acked + 1)) s.acked = *end;
  // Forgetting a mark only lowers the persisted watermark: a restart re-delivers, never loses.
  while (s.acked_above.intervals() > config_.max_buffered) s.acked_above.erase_highest();
}

std::vector<WatermarkEntry> DeliveryTracker::export_watermarks() const {
  std::vector<WatermarkEntry> out;
  for (const auto& [key, s] : streams_)
    if (s.acked > 0) out.push_back({key.first, key.second, s.acked});
  return out;
}

void DeliveryTracker::import_watermarks(const std::vector<WatermarkEntry>& entries, Time now) {
  for (const auto& e : entries) {
    Key key{e.topic, e.origin};
    if (streams_.contains(key)) continue;
    retired_.erase(key);
    create(key, e.seqno, now);
  }
}

}  // namespace p2pmq::sync
