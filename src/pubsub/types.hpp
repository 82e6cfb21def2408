#pragma once
// Gossipsub vocabulary shared by the codec, the router, scoring and the IO adapter
// (libp2p/specs pubsub/README.md, gossipsub v1.0–v1.2). Plain structs: the wire codec
// (rpc.hpp) converts them to and from the protobuf RPC.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "crypto/peer_id.hpp"

namespace p2pmq::pubsub {

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;
using Duration = Clock::duration;
using TopicId = std::string;
using MessageId = Bytes;
using crypto::PeerId;

// What a peer speaks, from the protocol negotiated on its stream.
enum class PeerKind { floodsub, gossipsub_v1_0, gossipsub_v1_1, gossipsub_v1_2 };

inline constexpr std::string_view kFloodsubProtocol = "/floodsub/1.0.0";
inline constexpr std::string_view kMeshsubV10 = "/meshsub/1.0.0";
inline constexpr std::string_view kMeshsubV11 = "/meshsub/1.1.0";
inline constexpr std::string_view kMeshsubV12 = "/meshsub/1.2.0";

// A pubsub message as on the wire (all fields optional there).
struct Message {
  std::optional<Bytes> from;  // origin peer id bytes
  Bytes data;
  std::optional<Bytes> seqno;  // 8 bytes big-endian when set
  TopicId topic;
  std::optional<Bytes> signature;
  std::optional<Bytes> key;  // origin public key protobuf, when not inlined in the id
  // False only for a received message whose `data` field was absent (go publishes nil data
  // that way): the signature covers the encoding without the field, so we keep it absent.
  bool data_present = true;
  bool operator==(const Message&) const = default;
};

struct SubOpts {
  bool subscribe = false;
  TopicId topic;
  bool operator==(const SubOpts&) const = default;
};

struct ControlIHave {
  TopicId topic;
  std::vector<MessageId> message_ids;
  bool operator==(const ControlIHave&) const = default;
};
struct ControlIWant {
  std::vector<MessageId> message_ids;
  bool operator==(const ControlIWant&) const = default;
};
struct ControlGraft {
  TopicId topic;
  bool operator==(const ControlGraft&) const = default;
};
struct PeerRecord {  // PX entry
  Bytes peer_id;
  std::optional<Bytes> signed_peer_record;
  bool operator==(const PeerRecord&) const = default;
};
struct ControlPrune {
  TopicId topic;
  std::vector<PeerRecord> peers;
  std::optional<uint64_t> backoff_seconds;
  bool operator==(const ControlPrune&) const = default;
};
struct ControlIDontWant {  // v1.2
  std::vector<MessageId> message_ids;
  bool operator==(const ControlIDontWant&) const = default;
};

struct ControlMessage {
  std::vector<ControlIHave> ihave;
  std::vector<ControlIWant> iwant;
  std::vector<ControlGraft> graft;
  std::vector<ControlPrune> prune;
  std::vector<ControlIDontWant> idontwant;
  bool empty() const {
    return ihave.empty() && iwant.empty() && graft.empty() && prune.empty() && idontwant.empty();
  }
  bool operator==(const ControlMessage&) const = default;
};

struct Rpc {
  std::vector<SubOpts> subscriptions;
  std::vector<Message> publish;
  ControlMessage control;
  bool empty() const { return subscriptions.empty() && publish.empty() && control.empty(); }
  bool operator==(const Rpc&) const = default;
};

// The outcome of validating a message (local checks, then the external validator).
enum class Verdict { accept, ignore, reject };

// Why a message was rejected; the router and scoring treat them differently.
enum class RejectReason {
  missing_signature,
  invalid_signature,
  unexpected_signature,  // StrictNoSign network, but signed
  unexpected_author,     // StrictNoSign network, but from/seqno set
  self_origin,
  validation_failed,     // the validator said REJECT
  validation_ignored,    // the validator said IGNORE (no penalty)
  validation_throttled,  // queue full (no penalty to the sender's P4)
  too_large,
  blacklisted,
  duplicate,
};

}  // namespace p2pmq::pubsub
