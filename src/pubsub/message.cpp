#include "pubsub/message.hpp"

#include <utility>

#include "core/varint.hpp"
#include "crypto/hash.hpp"
#include "crypto/peer_id.hpp"
#include "pubsub/rpc.hpp"

namespace p2pmq::pubsub {
namespace {

tl::unexpected<Rejection> reject(RejectReason reason, std::string detail) {
  return tl::unexpected(Rejection{reason, std::move(detail)});
}

Bytes digest_bytes(const crypto::Digest32& d) {
  return Bytes(d.begin(), d.end());
}

}  // namespace

Bytes seqno_bytes(uint64_t seqno) {
  Bytes out(8);
  for (int i = 7; i >= 0; --i, seqno >>= 8) out[i] = static_cast<uint8_t>(seqno);
  return out;
}

std::optional<uint64_t> seqno_value(const Message& message) {
  if (!message.seqno || message.seqno->size() != 8) return std::nullopt;
  uint64_t v = 0;
  for (uint8_t b : *message.seqno) v = (v << 8) | b;
  return v;
}

Bytes signing_bytes(const Message& message) {
  return encode_signed_part(kSignaturePrefix, message);
}

Message make_message(const crypto::PrivateKey& key, const TopicId& topic, Bytes data,
                     uint64_t seqno, SignaturePolicy policy) {
  Message m;
  m.topic = topic;
  m.data = std::move(data);
  if (policy == SignaturePolicy::strict_no_sign) return m;
  auto pub = key.public_key();
  auto peer = crypto::PeerId::from_public_key(pub);
  m.from = peer.bytes();
  m.seqno = seqno_bytes(seqno);
  m.signature = key.sign(signing_bytes(m));
  if (!peer.extract_public_key()) m.key = pub.encode();
  return m;
}

CheckResult check_message(const Message& m, SignaturePolicy policy) {
  if (policy == SignaturePolicy::strict_no_sign) {
    if (m.signature || m.key)
      return reject(RejectReason::unexpected_signature, "signature or key under StrictNoSign");
    if (m.from || m.seqno)
      return reject(RejectReason::unexpected_author, "from or seqno under StrictNoSign");
    return {};
  }
  if (!m.signature) return reject(RejectReason::missing_signature, "no signature");
  if (!m.from) return reject(RejectReason::invalid_signature, "no from");
  auto peer = crypto::PeerId::from_bytes(*m.from);
  if (!peer) return reject(RejectReason::invalid_signature, "from: " + peer.error().message);
  if (!m.seqno || m.seqno->size() != 8)
    return reject(RejectReason::invalid_signature, "seqno is not 8 bytes");

  std::optional<crypto::PublicKey> pub;
  if (m.key) {
    auto decoded = crypto::PublicKey::decode(*m.key);
    if (!decoded) return reject(RejectReason::invalid_signature, "key: " + decoded.error().message);
    if (!peer->matches(*decoded))
      return reject(RejectReason::invalid_signature, "key does not match from");
    pub = std::move(*decoded);
  } else {
    pub = peer->extract_public_key();
    if (!pub)
      return reject(RejectReason::invalid_signature, "no key, and from does not inline one");
  }
  if (!pub->verify(signing_bytes(m), *m.signature))
    return reject(RejectReason::invalid_signature, "signature does not verify");
  return {};
}

MessageId message_id(const Message& m, MessageIdFn fn) {
  switch (fn) {
    case MessageIdFn::stock: {
      Bytes id = m.from.value_or(Bytes{});
      if (m.seqno) append(id, *m.seqno);
      return id;
    }
    case MessageIdFn::p2pmq:
      if (m.from && m.seqno) {
        crypto::Sha256 h;
        h.update(varint_bytes(m.topic.size()));
        h.update(as_bytes(m.topic));
        h.update(*m.from);
        h.update(*m.seqno);
        return digest_bytes(h.finish());
      }
      [[fallthrough]];
    case MessageIdFn::content:
      return digest_bytes(crypto::sha256(m.data));
    case MessageIdFn::rust: {
      auto seqno = seqno_value(m);
      if (!seqno || !m.from) return digest_bytes(crypto::sha256(m.data));
      auto peer = crypto::PeerId::from_bytes(*m.from);
      if (!peer) return digest_bytes(crypto::sha256(m.data));
      return rust_message_id(peer->to_string(), *seqno);
    }
  }
  return {};
}

MessageId rust_message_id(std::string_view origin_text, uint64_t seqno) {
  const std::string number = std::to_string(seqno);
  MessageId id;
  id.reserve(origin_text.size() + number.size());
  id.insert(id.end(), origin_text.begin(), origin_text.end());
  id.insert(id.end(), number.begin(), number.end());
  return id;
}

Result<uint64_t> stock_seqno(uint32_t topic_number, uint64_t count) {
  if (count >= (uint64_t{1} << kStockCountBits))
    return fail(Errc::limit_exceeded, "seqnos of the topic exhausted under stock message ids");
  if (topic_number > kMaxStockTopicNumber)
    return fail(Errc::limit_exceeded, "too many topics published to under stock message ids");
  return (uint64_t{topic_number} << kStockCountBits) | count;
}

}  // namespace p2pmq::pubsub
