#include "crypto/peer_record.hpp"

#include <gtest/gtest.h>

#include "libp2p/envelope.pb.h"

namespace p2pmq::crypto {
namespace {

PrivateKey key(uint8_t fill) {
  PrivateKey::Seed seed;
  seed.fill(fill);
  return PrivateKey::from_seed(seed);
}

PeerRecord record_of(const PrivateKey& k) {
  return PeerRecord{
      PeerId::from_public_key(k.public_key()),
      1700000000000000000ull,
      {*Multiaddr::parse("/ip4/10.0.0.1/tcp/4001"), *Multiaddr::parse("/ip6/fd00::1/tcp/4001")}};
}

TEST(PeerRecord, SealedRecordOpens) {
  PrivateKey k = key(1);
  PeerRecord rec = record_of(k);
  auto opened = open_signed_peer_record(seal_peer_record(k, rec));
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(opened->peer, rec.peer);
  EXPECT_EQ(opened->seq, rec.seq);
  EXPECT_EQ(opened->addrs, rec.addrs);
}

// Whoever passes a record on cannot change it, nor sign one for another peer.
TEST(PeerRecord, TamperingOrAnotherPeersRecordIsRefused) {
  PrivateKey k = key(1);
  Bytes sealed = seal_peer_record(k, record_of(k));
  libp2p::record::Envelope env;
  ASSERT_TRUE(env.ParseFromArray(sealed.data(), static_cast<int>(sealed.size())));
  auto reseal = [](const libp2p::record::Envelope& e) {
    std::string s = e.SerializeAsString();
    return Bytes(s.begin(), s.end());
  };
  auto changed = env;
  changed.mutable_payload()->back() ^= 1;
  EXPECT_FALSE(open_signed_peer_record(reseal(changed)));
  changed = env;
  changed.set_payload_type("\x03\x02");
  EXPECT_FALSE(open_signed_peer_record(reseal(changed)));
  // A valid envelope of key 2 around a record naming key 1's peer.
  PrivateKey other = key(2);
  EXPECT_FALSE(open_signed_peer_record(seal_peer_record(other, record_of(k))));
  EXPECT_FALSE(open_signed_peer_record(Bytes(kMaxSignedPeerRecordSize + 1, 0)));
  EXPECT_FALSE(open_signed_peer_record(to_bytes("garbage")));
}

TEST(PeerRecord, AddressesAreBounded) {
  PrivateKey k = key(3);
  PeerRecord rec = record_of(k);
  rec.addrs.assign(kMaxPeerRecordAddrs + 10, *Multiaddr::parse("/ip4/10.0.0.2/tcp/1"));
  auto opened = open_signed_peer_record(seal_peer_record(k, rec));
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->addrs.size(), kMaxPeerRecordAddrs);
}

}  // namespace
}  // namespace p2pmq::crypto
