// The peer store keeps one signed peer record per peer, the newest (go's certified address book).
#include <gtest/gtest.h>

#include "host/host.hpp"

namespace p2pmq::host {
namespace {

crypto::PrivateKey key(uint8_t fill) {
  crypto::PrivateKey::Seed seed;
  seed.fill(fill);
  return crypto::PrivateKey::from_seed(seed);
}

Bytes sealed(const crypto::PrivateKey& k, uint64_t seq, const std::string& addr) {
  return crypto::seal_peer_record(
      k, crypto::PeerRecord{
             crypto::PeerId::from_public_key(k.public_key()), seq, {*Multiaddr::parse(addr)}});
}

TEST(PeerStoreRecords, NewestSeqWinsAndItsAddressesAreAdded) {
  asio::io_context io;
  Host host(io, key(1), HostConfig{});
  auto k = key(2);
  auto peer = crypto::PeerId::from_public_key(k.public_key());
  Bytes v2 = sealed(k, 2, "/ip4/10.0.0.2/tcp/4001");
  ASSERT_TRUE(host.add_signed_peer_record(peer, v2));
  ASSERT_TRUE(host.peer_store().contains(peer));
  EXPECT_EQ(host.peer_store()[peer].signed_peer_record, v2);
  EXPECT_EQ(host.peer_store()[peer].addrs,
            std::vector<Multiaddr>{*Multiaddr::parse("/ip4/10.0.0.2/tcp/4001")});

  // An older record changes nothing; a newer one replaces it.
  ASSERT_TRUE(host.add_signed_peer_record(peer, sealed(k, 1, "/ip4/10.0.0.1/tcp/4001")));
  EXPECT_EQ(host.peer_store()[peer].signed_peer_record, v2);
  EXPECT_EQ(host.peer_store()[peer].addrs.size(), 1u);
  Bytes v3 = sealed(k, 3, "/ip4/10.0.0.3/tcp/4001");
  ASSERT_TRUE(host.add_signed_peer_record(peer, v3));
  EXPECT_EQ(host.peer_store()[peer].signed_peer_record, v3);
  EXPECT_EQ(host.peer_store()[peer].peer_record_seq, 3u);
}

TEST(PeerStoreRecords, AnotherPeersOrABrokenRecordIsRefusedAndKeepsNothing) {
  asio::io_context io;
  Host host(io, key(1), HostConfig{});
  auto peer = crypto::PeerId::from_public_key(key(2).public_key());
  EXPECT_FALSE(host.add_signed_peer_record(peer, sealed(key(3), 1, "/ip4/10.0.0.3/tcp/4001")));
  Bytes broken = sealed(key(2), 1, "/ip4/10.0.0.2/tcp/4001");
  broken.back() ^= 0x01;
  EXPECT_FALSE(host.add_signed_peer_record(peer, broken));
  EXPECT_FALSE(host.add_signed_peer_record(peer, Bytes(100, 0xff)));
  EXPECT_FALSE(host.peer_store().contains(peer));
}

}  // namespace
}  // namespace p2pmq::host
