#include "crypto/peer_record.hpp"

#include <algorithm>
#include <string>

#include "core/varint.hpp"
#include "libp2p/envelope.pb.h"

namespace p2pmq::crypto {
namespace {

// The signing domain and payload type go-libp2p and js-libp2p use (core/peer/record.go):
// "libp2p-peer-record" and the multicodec libp2p-peer-record (0x0301) as two raw bytes, not
// RFC 0003's "libp2p-routing-state" / varint; a record sealed otherwise is refused by go.
constexpr std::string_view kDomain = "libp2p-peer-record";
const Bytes& payload_type() {
  static const Bytes type{0x03, 0x01};
  return type;
}

// What the signature covers (RFC 0002): each part prefixed with its uvarint length.
Bytes signed_bytes(BytesView type, BytesView payload) {
  Bytes out;
  for (BytesView part : {as_bytes(kDomain), type, payload}) {
    varint_append(out, part.size());
    append(out, part);
  }
  return out;
}

std::string str(BytesView b) {
  return std::string(as_string(b));
}
BytesView view(const std::string& s) {
  return as_bytes(s);
}

}  // namespace

Result<PeerRecord> open_signed_peer_record(BytesView envelope) {
  if (envelope.size() > kMaxSignedPeerRecordSize)
    return fail(Errc::limit_exceeded, "peer record: envelope over " +
                                          std::to_string(kMaxSignedPeerRecordSize) + " bytes");
  libp2p::record::Envelope env;
  if (!env.ParseFromArray(envelope.data(), static_cast<int>(envelope.size())))
    return fail(Errc::invalid_input, "peer record: malformed envelope");
  if (!std::ranges::equal(view(env.payload_type()), payload_type()))
    return fail(Errc::invalid_input, "peer record: the envelope carries another payload type");
  auto key = PublicKey::decode(view(env.public_key()));
  if (!key) return fail(Errc::invalid_input, "peer record: key: " + key.error().message);
  if (!key->verify(signed_bytes(view(env.payload_type()), view(env.payload())),
                   view(env.signature())))
    return fail(Errc::invalid_input, "peer record: the signature does not verify");

  libp2p::record::PeerRecord rec;
  if (!rec.ParseFromString(env.payload()))
    return fail(Errc::invalid_input, "peer record: malformed record");
  auto peer = PeerId::from_bytes(view(rec.peer_id()));
  if (!peer) return fail(Errc::invalid_input, "peer record: peer id: " + peer.error().message);
  if (!peer->matches(*key))
    return fail(Errc::invalid_input, "peer record: signed by a key that is not the peer's");
  PeerRecord out{std::move(*peer), rec.seq(), {}};
  for (const auto& a : rec.addresses()) {
    if (out.addrs.size() >= kMaxPeerRecordAddrs) break;
    if (auto addr = Multiaddr::decode(view(a.multiaddr()))) out.addrs.push_back(std::move(*addr));
  }
  return out;
}

Bytes seal_peer_record(const PrivateKey& key, const PeerRecord& record) {
  libp2p::record::PeerRecord rec;
  rec.set_peer_id(str(record.peer.bytes()));
  rec.set_seq(record.seq);
  for (const auto& a : record.addrs) rec.add_addresses()->set_multiaddr(str(a.bytes()));
  std::string payload = rec.SerializeAsString();

  libp2p::record::Envelope env;
  env.set_public_key(str(key.public_key().encode()));
  env.set_payload_type(str(payload_type()));
  env.set_signature(str(key.sign(signed_bytes(payload_type(), view(payload)))));
  env.set_payload(std::move(payload));
  std::string out = env.SerializeAsString();
  return Bytes(out.begin(), out.end());
}

}  // namespace p2pmq::crypto
