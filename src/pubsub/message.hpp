#pragma once
// Pubsub messages: origin stamping and signing (libp2p/specs pubsub/README.md, "Message
// Signing"), the StrictSign / StrictNoSign checks, and message ids (DESIGN.md §5).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "crypto/keys.hpp"
#include "pubsub/types.hpp"

namespace p2pmq::pubsub {

enum class SignaturePolicy {
  strict_sign,     // from, seqno and signature required and verified (default)
  strict_no_sign,  // from, seqno, signature and key must all be absent
};

// Signatures cover this prefix followed by encode_message() of the message with signature and
// key unset.
inline constexpr std::string_view kSignaturePrefix = "libp2p-pubsub:";

Bytes seqno_bytes(uint64_t seqno);  // 8 bytes, big-endian
// nullopt when seqno is absent or not 8 bytes long.
std::optional<uint64_t> seqno_value(const Message& message);

// The bytes a signature covers.
Bytes signing_bytes(const Message& message);

// strict_sign: from = our peer id, seqno, signature; key only when the peer id does not inline
// the public key (never for our Ed25519 identity). strict_no_sign: topic and data only.
Message make_message(const crypto::PrivateKey& key, const TopicId& topic, Bytes data,
                     uint64_t seqno, SignaturePolicy policy);

// Why check_message refused a message: the router scores by `reason` and logs `detail`.
struct Rejection {
  RejectReason reason;
  std::string detail;
};
using CheckResult = tl::expected<void, Rejection>;

// strict_sign: no signature -> missing_signature; a bad from (not a peer id), a seqno that is
// not 8 bytes, a key that does not decode or match from, a hashed peer id without key, or a
// signature that does not verify -> invalid_signature.
// strict_no_sign: signature or key present -> unexpected_signature; from or seqno present ->
// unexpected_author.
CheckResult check_message(const Message& message, SignaturePolicy policy);

// How message ids are computed; every peer of a topic must use the same function.
enum class MessageIdFn {
  // Default. With from and seqno set:
  //   sha256( uvarint(byte length of topic) || topic (UTF-8) || from (peer id multihash bytes)
  //           || seqno (the 8 wire bytes, big-endian) )
  // (from is a self-delimiting multihash, so the input is unambiguous). Seqnos count per
  // topic (DESIGN.md §5), hence the topic. Without from or seqno: sha256(data), as `content`.
  p2pmq,
  // from || seqno, concatenated: go-libp2p-pubsub's and js gossipsub's default.
  stock,
  // sha256(data): content addressing, for StrictNoSign networks.
  content,
  // rust-libp2p gossipsub's default: the text base58(from) followed by the seqno in decimal
  // (as a big-endian u64).
  rust,
};

MessageId message_id(const Message& message, MessageIdFn fn);
// rust's id of the message numbered `seqno` by the origin whose peer id reads `origin_text`.
MessageId rust_message_id(std::string_view origin_text, uint64_t seqno);

// Under `stock` ids (from || seqno) a seqno must be unique per origin across all its topics
// (the pubsub spec), while p2pmq counts per topic, contiguously, so that receivers keep order
// and see gaps. Both hold when a per-origin topic number fills the top bits: the wire seqno is
// topic_number << kStockCountBits | count, contiguous within the topic (after its first).
inline constexpr unsigned kStockCountBits = 40;
inline constexpr uint32_t kMaxStockTopicNumber = (uint32_t{1} << (64 - kStockCountBits)) - 1;
// Fails when count or topic_number does not fit its bits.
Result<uint64_t> stock_seqno(uint32_t topic_number, uint64_t count);

}  // namespace p2pmq::pubsub
