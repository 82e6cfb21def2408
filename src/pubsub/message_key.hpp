#pragma once
// A fixed-size stand-in for a message id, for caches that keep ids for minutes (the seen cache,
// the score's delivery records). Ids of up to 32 bytes (p2pmq's and content ids are SHA-256)
// are kept as they are; longer ones (go's and js's from || seqno) by their SHA-256, told apart
// by the length byte. Fixed size lets those caches be flat arrays: small per-id allocations
// scattered between the short-lived buffers of the messages would pin every heap page they
// share, so freed payloads could not go back to the OS until the ids expire.
#include <array>
#include <cstddef>
#include <cstdint>

#include "pubsub/types.hpp"

namespace p2pmq::pubsub {

struct MessageKey {
  static constexpr uint8_t kHashed = 0xff;

  uint8_t length = 0;  // the id's length, or kHashed
  std::array<uint8_t, 32> bytes{};
  bool operator==(const MessageKey&) const = default;

  static MessageKey of(const MessageId& id);
};

struct MessageKeyHash {
  size_t operator()(const MessageKey& k) const;
};

}  // namespace p2pmq::pubsub
