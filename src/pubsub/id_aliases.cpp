#include "pubsub/id_aliases.hpp"

#include "crypto/peer_id.hpp"

namespace p2pmq::pubsub {
namespace {

std::string key_of(const MessageId& id) {
  return std::string(as_string(id));
}

}  // namespace

void IdAliases::add(const MessageId& id, const Message& message, MessageIdFn own) {
  if (by_id_.size() >= max_entries_) return;
  Key key = key_of(id);
  if (by_id_.contains(key)) return;
  auto forms = foreign_ids(message, own);
  if (forms.empty()) return;
  for (const auto& [fn, foreign] : forms) by_foreign_.try_emplace(key_of(foreign), key, fn);
  by_id_.emplace(key, std::move(forms));
  windows_.front().push_back(std::move(key));
}

std::vector<std::pair<MessageIdFn, MessageId>> IdAliases::foreign_ids(const Message& m,
                                                                      MessageIdFn own) {
  std::vector<std::pair<MessageIdFn, MessageId>> out;
  if (!m.from || !m.seqno) return out;
  for (MessageIdFn fn : {MessageIdFn::stock, MessageIdFn::rust, MessageIdFn::p2pmq}) {
    if (fn == own) continue;
    if (fn == MessageIdFn::rust) {
      auto seqno = seqno_value(m);
      const std::string* text = seqno ? origin_text(*m.from) : nullptr;
      if (text) {
        out.emplace_back(fn, rust_message_id(*text, *seqno));
        continue;
      }
    }
    out.emplace_back(fn, message_id(m, fn));
  }
  return out;
}

const std::vector<std::pair<MessageIdFn, MessageId>>* IdAliases::recorded(
    const MessageId& id) const {
  auto it = by_id_.find(key_of(id));
  return it == by_id_.end() ? nullptr : &it->second;
}

const std::string* IdAliases::origin_text(const Bytes& from) {
  std::string key(as_string(from));
  if (auto it = origin_texts_.find(key); it != origin_texts_.end()) return &it->second;
  auto peer = crypto::PeerId::from_bytes(from);
  if (!peer) return nullptr;
  if (origin_texts_.size() >= kMaxOriginTexts) origin_texts_.clear();
  return &origin_texts_.emplace(std::move(key), peer->to_string()).first->second;
}

std::optional<IdAliases::Match> IdAliases::resolve(const MessageId& foreign) const {
  auto it = by_foreign_.find(key_of(foreign));
  if (it == by_foreign_.end()) return std::nullopt;
  const Key& ours = it->second.first;
  return Match{MessageId(ours.begin(), ours.end()), it->second.second};
}

MessageId IdAliases::as_form(const MessageId& id, MessageIdFn form) const {
  auto it = by_id_.find(key_of(id));
  if (it == by_id_.end()) return id;
  for (const auto& [fn, foreign] : it->second)
    if (fn == form) return foreign;
  return id;
}

void IdAliases::shift(size_t windows) {
  windows_.emplace_front();
  while (windows_.size() > std::max<size_t>(windows, 1)) {
    for (const auto& key : windows_.back()) {
      auto it = by_id_.find(key);
      if (it == by_id_.end()) continue;
      for (const auto& [fn, foreign] : it->second) {
        auto f = by_foreign_.find(key_of(foreign));
        if (f != by_foreign_.end() && f->second.first == key) by_foreign_.erase(f);
      }
      by_id_.erase(it);
    }
    windows_.pop_back();
  }
}

}  // namespace p2pmq::pubsub
