#pragma once
// multistream-select 1.0 (multiformats/multistream-select, libp2p/specs connections/README.md),
// sans-IO: bytes in, bytes out.
//
// Every message is uvarint(len) || text || '\n', where len counts the newline. Both sides first
// exchange the header "/multistream/1.0.0"; the dialer then proposes protocols one at a time and
// the listener either echoes the proposal (accepted) or answers "na".
//
// Not implemented: the simultaneous-open extension (/libp2p/simultaneous-connect), and a real
// "ls" answer (the listener only has a predicate, so it answers "na").
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace p2pmq::multistream {

inline constexpr std::string_view kProtocolId = "/multistream/1.0.0";
inline constexpr std::string_view kNa = "na";
inline constexpr std::string_view kLs = "ls";
// Longest message accepted, newline included (go-multistream's bound).
inline constexpr size_t kMaxMessage = 1024;
// Proposals a listener refuses before it gives up on the dialer.
inline constexpr size_t kMaxAttempts = 16;

// uvarint(text.size() + 1) || text || '\n'.
Bytes encode_message(std::string_view text);

// Splits a byte stream into messages.
class Reader {
 public:
  void feed(BytesView data);
  // The next complete message without its '\n'; nullopt when more bytes are needed; an error
  // when the message is malformed, longer than kMaxMessage or lacks the newline.
  Result<std::optional<std::string>> next();
  // Bytes fed but not yet consumed as messages (after negotiation: the protocol's own data).
  Bytes take_remaining();

 private:
  Bytes buf_;
  size_t pos_ = 0;  // start of the unconsumed bytes in buf_
};

// The side that opens the stream: proposes protocols in preference order.
class Dialer {
 public:
  explicit Dialer(std::vector<std::string> protocols);

  // Header and first proposal, sent together (pipelined, as go and js do). Once only.
  Bytes start();
  Result<void> feed(BytesView data);
  Bytes take_output();
  bool done() const { return done_; }
  // The accepted protocol; empty until done().
  const std::string& selected() const { return selected_; }
  // Bytes that followed the final acknowledgement: already the selected protocol's data.
  Bytes take_remaining() { return reader_.take_remaining(); }

 private:
  std::vector<std::string> protocols_;
  size_t current_ = 0;  // index of the outstanding proposal
  bool header_seen_ = false;
  bool done_ = false;
  std::optional<Error> error_;  // sticky: a failed negotiation stays failed
  std::string selected_;
  Reader reader_;
  Bytes out_;
};

// The side that accepts the stream: answers proposals with `supports`.
class Listener {
 public:
  explicit Listener(std::function<bool(std::string_view)> supports);

  Result<void> feed(BytesView data);
  // The header is queued at construction (sent without waiting, as go does).
  Bytes take_output();
  bool done() const { return done_; }
  const std::string& selected() const { return selected_; }
  // Bytes after the accepted proposal: the dialer's pipelined protocol data.
  Bytes take_remaining() { return reader_.take_remaining(); }

 private:
  std::function<bool(std::string_view)> supports_;
  bool header_seen_ = false;
  bool done_ = false;
  size_t refused_ = 0;
  std::optional<Error> error_;
  std::string selected_;
  Reader reader_;
  Bytes out_;
};

}  // namespace p2pmq::multistream
