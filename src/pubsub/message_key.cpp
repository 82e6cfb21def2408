#include "pubsub/message_key.hpp"

#include <algorithm>

#include <boost/container_hash/hash.hpp>

#include "crypto/hash.hpp"

namespace p2pmq::pubsub {

MessageKey MessageKey::of(const MessageId& id) {
  MessageKey key;
  if (id.size() <= key.bytes.size()) {
    key.length = static_cast<uint8_t>(id.size());
    std::copy(id.begin(), id.end(), key.bytes.begin());
  } else {
    key.length = kHashed;
    key.bytes = crypto::sha256(id);
  }
  return key;
}

size_t MessageKeyHash::operator()(const MessageKey& k) const {
  // Ids are hashes or hold a random-looking peer id and a counter: mix the whole key rather
  // than trusting any 8 of its bytes.
  size_t h = boost::hash_range(k.bytes.begin(), k.bytes.end());
  boost::hash_combine(h, k.length);
  return h;
}

}  // namespace p2pmq::pubsub
