#pragma once
// Signed peer records (libp2p/specs RFC 0002 signed envelopes, RFC 0003 peer records): a peer's
// addresses signed by its own key, so that a third party can pass them on (gossipsub PX) and
// the receiver can trust them without asking. Sans-IO.
#include <cstdint>
#include <vector>

#include "core/bytes.hpp"
#include "core/multiaddr.hpp"
#include "core/result.hpp"
#include "crypto/keys.hpp"
#include "crypto/peer_id.hpp"

namespace p2pmq::crypto {

struct PeerRecord {
  PeerId peer;
  uint64_t seq = 0;  // newer records have larger ones (go uses the time in nanoseconds)
  std::vector<Multiaddr> addrs;
};

// Bounds on what we open: an envelope from a peer is hostile input.
inline constexpr size_t kMaxSignedPeerRecordSize = 8 * 1024;
inline constexpr size_t kMaxPeerRecordAddrs = 32;

// Opens an envelope: the payload type must be a peer record, the signature must verify under
// the envelope's key for the "libp2p-peer-record" domain (go-libp2p's and js-libp2p's), and the
// record's peer id must be that key's. Addresses that do not decode are skipped; more than
// kMaxPeerRecordAddrs are cut.
Result<PeerRecord> open_signed_peer_record(BytesView envelope);

// Our own record, sealed with our key.
Bytes seal_peer_record(const PrivateKey& key, const PeerRecord& record);

}  // namespace p2pmq::crypto
