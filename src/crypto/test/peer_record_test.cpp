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

// Sealed by go-libp2p v0.52 (record.Seal of a peer.PeerRecord; key seed 01 02 .. 20, seq
// 1700000000000000000, /ip4/127.0.0.1/tcp/4001): go's domain and payload type, which we must
// open and produce byte for byte (ed25519 signatures are deterministic).
constexpr std::string_view kGoSealedRecord =
    "0a240801122079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664120203011a3e0a26"
    "00240801122079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664108080a8b1e39fe7"
    "cb171a0a0a08047f000001060fa12a402a1169aacab137e45885c9f364d5a80867782a0b83429daa9161ddbf9e33"
    "c65348ecb01e0146b36f9d249c4ad457d33f9337962fc8516b5861acac7bf199ab07";

PrivateKey go_vector_key() {
  PrivateKey::Seed seed;
  for (size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<uint8_t>(i + 1);
  return PrivateKey::from_seed(seed);
}

TEST(PeerRecord, OpensARecordSealedByGoLibp2p) {
  Bytes sealed;
  ASSERT_TRUE(from_hex(kGoSealedRecord, sealed));
  auto opened = open_signed_peer_record(sealed);
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(opened->peer.to_string(), "12D3KooWJ1TsijH7H5F74hfAD5XishQz3sxrmAtVY37GtNd9CqYf");
  EXPECT_EQ(opened->seq, 1700000000000000000ull);
  ASSERT_EQ(opened->addrs.size(), 1u);
  EXPECT_EQ(opened->addrs[0].to_string(), "/ip4/127.0.0.1/tcp/4001");
}

TEST(PeerRecord, SealsByteForByteAsGoLibp2pDoes) {
  PrivateKey k = go_vector_key();
  PeerRecord rec{PeerId::from_public_key(k.public_key()),
                 1700000000000000000ull,
                 {*Multiaddr::parse("/ip4/127.0.0.1/tcp/4001")}};
  EXPECT_EQ(to_hex(seal_peer_record(k, rec)), kGoSealedRecord);
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
