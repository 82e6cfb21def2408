// Identify message rules (libp2p/specs identify): decoding, and what a push changes.
#include "protocols/identify.hpp"

#include <gtest/gtest.h>

#include "libp2p/identify.pb.h"

namespace p2pmq::protocols {
namespace {

crypto::PrivateKey key(uint8_t fill) {
  crypto::PrivateKey::Seed seed;
  seed.fill(fill);
  return crypto::PrivateKey::from_seed(seed);
}

Bytes encode(const libp2p::identify::Identify& msg) {
  return to_bytes(msg.SerializeAsString());
}

// Spec: "missing fields should be ignored" by the receiver of a push. A push that carries only
// its protocols keeps the agent and protocol versions we learnt before.
TEST(IdentifyPush, ReplacesOnlyTheFieldsItCarries) {
  auto peer = crypto::PeerId::from_public_key(key(1).public_key());
  host::PeerInfo known;
  known.agent_version = "go-libp2p/0.52.0";
  known.protocol_version = "ipfs/0.1.0";
  known.protocols = {"/ipfs/id/1.0.0", "/ipfs/kad/1.0.0"};

  libp2p::identify::Identify push;
  push.add_protocols("/ipfs/id/1.0.0");
  push.add_protocols("/meshsub/1.1.0");
  auto info = decode_identify(encode(push), peer);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_FALSE(info->has_agent_version);
  EXPECT_FALSE(info->has_listen_addrs);
  merge_identify(known, *info);
  EXPECT_EQ(known.protocols, (std::vector<std::string>{"/ipfs/id/1.0.0", "/meshsub/1.1.0"}));
  EXPECT_EQ(known.agent_version, "go-libp2p/0.52.0");
  EXPECT_EQ(known.protocol_version, "ipfs/0.1.0");

  // A push with only an agent version leaves the protocols alone.
  libp2p::identify::Identify agent_only;
  agent_only.set_agentversion("go-libp2p/0.53.0");
  info = decode_identify(encode(agent_only), peer);
  ASSERT_TRUE(info);
  merge_identify(known, *info);
  EXPECT_EQ(known.agent_version, "go-libp2p/0.53.0");
  EXPECT_EQ(known.protocols, (std::vector<std::string>{"/ipfs/id/1.0.0", "/meshsub/1.1.0"}));
}

TEST(Identify, SignedPeerRecordFieldIsDecoded) {
  auto k = key(2);
  auto peer = crypto::PeerId::from_public_key(k.public_key());
  Bytes record = crypto::seal_peer_record(
      k, crypto::PeerRecord{peer, 5, {*Multiaddr::parse("/ip4/10.0.0.2/tcp/4001")}});
  libp2p::identify::Identify msg;
  msg.set_signedpeerrecord(std::string(as_string(record)));
  auto info = decode_identify(encode(msg), peer);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->signed_peer_record, record);
}

}  // namespace
}  // namespace p2pmq::protocols
