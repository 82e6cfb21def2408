#pragma once
// Message ids of other implementations, for gossip with peers whose id function differs from
// ours (go and js default to from || seqno, rust to base58(from) + decimal seqno). Each node
// deduplicates by its own function, so delivery is unaffected; gossip is not: such a peer's
// IHAVE names messages we hold by ids we do not know, and our IHAVE names them by ids it does
// not know, so each side IWANTs what it has and the other's promise tracking sees the answer
// as a broken promise (P7). The router records the foreign ids of the messages in its cache,
// resolves a peer's ids through them, learns which function the peer uses, and names messages
// the peer's way in what it sends it. Sans-IO; bounded like the message cache it follows.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pubsub/message.hpp"
#include "pubsub/types.hpp"

namespace p2pmq::pubsub {

class IdAliases {
 public:
  // `max_entries`: messages tracked at once (the message cache's bound).
  explicit IdAliases(size_t max_entries) : max_entries_(max_entries) {}

  // Records the foreign ids of a message we hold under `id` (our function `own`), in the
  // current window. Nothing for messages without from and seqno.
  void add(const MessageId& id, const Message& message, MessageIdFn own);

  // The id of `message` under every function a peer of another implementation may use by
  // default (stock, rust) and p2pmq's, except `own`: what gossip from such a peer names it by.
  // Empty without from or seqno (those ids are then content ids everywhere). The text form of
  // each origin's peer id is kept (bounded), so rust's ids cost no base58 encoding per message.
  std::vector<std::pair<MessageIdFn, MessageId>> foreign_ids(const Message& message,
                                                             MessageIdFn own);
  // The foreign ids add() recorded for our `id`; null when none are recorded.
  const std::vector<std::pair<MessageIdFn, MessageId>>* recorded(const MessageId& id) const;

  struct Match {
    MessageId id;      // ours
    MessageIdFn form;  // the function the foreign id came from
  };
  // Our id for a foreign one; nullopt when unknown (or it is one of ours).
  std::optional<Match> resolve(const MessageId& foreign) const;
  // Our `id` the way `form` names it; `id` itself when unknown.
  MessageId as_form(const MessageId& id, MessageIdFn form) const;

  // Starts a new window; ids recorded `windows` shifts ago are forgotten (call with the message
  // cache's shift, with its history length).
  void shift(size_t windows);
  size_t size() const { return by_id_.size(); }

 private:
  using Key = std::string;
  std::unordered_map<Key, std::vector<std::pair<MessageIdFn, MessageId>>> by_id_;
  std::unordered_map<Key, std::pair<Key, MessageIdFn>> by_foreign_;
  std::deque<std::vector<Key>> windows_{1};  // front = newest
  size_t max_entries_;
  // The text form of the origins' peer ids, by their bytes: cleared when it reaches
  // kMaxOriginTexts (a network has far fewer publishers; a flood of origins only costs encodes).
  static constexpr size_t kMaxOriginTexts = 4096;
  std::unordered_map<std::string, std::string> origin_texts_;
  const std::string* origin_text(const Bytes& from);
};

}  // namespace p2pmq::pubsub
