#pragma once
// Identify (/ipfs/id/1.0.0) and identify push (/ipfs/id/push/1.0.0), libp2p/specs identify.
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "host/host.hpp"

namespace p2pmq::protocols {

inline constexpr std::string_view kIdentifyProtocol = "/ipfs/id/1.0.0";
inline constexpr std::string_view kIdentifyPushProtocol = "/ipfs/id/push/1.0.0";
inline constexpr std::string_view kLibp2pProtocolVersion = "ipfs/0.1.0";
inline constexpr size_t kMaxIdentifyMessage = 64 * 1024;
inline constexpr size_t kMaxIdentifyEntries = 128;  // addrs, protocols
// The whole identify exchange after negotiation (the host bounds negotiation itself).
inline constexpr std::chrono::seconds kIdentifyTimeout{15};

struct IdentifyInfo {
  crypto::PeerId peer;
  std::string protocol_version;
  std::string agent_version;
  std::vector<std::string> protocols;
  std::vector<Multiaddr> listen_addrs;
  std::optional<Multiaddr> observed_addr;
  std::optional<Bytes> signed_peer_record;  // as received; Host::add_signed_peer_record checks it
  // What the message carried: a push replaces only those fields ("missing fields should be
  // ignored", identify spec); repeated fields count as missing when empty.
  bool has_protocol_version = false;
  bool has_agent_version = false;
  bool has_protocols = false;
  bool has_listen_addrs = false;
};

// Folds what a message carried into what we know of the peer; the rest stays.
void merge_identify(host::PeerInfo& entry, const IdentifyInfo& info);

// Decodes and checks an Identify message received from `peer` (key must match when present).
Result<IdentifyInfo> decode_identify(BytesView message, const crypto::PeerId& peer);

class Identify {
 public:
  using Listener = std::function<void(const IdentifyInfo&)>;

  // Registers both protocols and identifies every new connection.
  Identify(host::Host& host, std::string agent_version);
  ~Identify() { *alive_ = false; }

  // Asks the peer of `conn`; an exchange already under way or done on this connection is reused,
  // since peers allow one identify stream at a time (js-libp2p resets a second one).
  host::Task<Result<IdentifyInfo>> identify(std::shared_ptr<host::Connection> conn);
  // Tells every connected peer our current protocols and addresses. Called by itself when the
  // host's protocols change after start (services registering late, DHT mode changes).
  void push_all();
  void on_identified(Listener l) { listeners_.push_back(std::move(l)); }
  const std::string& agent_version() const { return agent_version_; }

 private:
  Bytes build_message(const host::Connection& conn);
  // Our own signed peer record, resealed (with a larger seq) when our addresses change.
  const Bytes& own_peer_record(const std::vector<Multiaddr>& addrs);
  // One push to every peer once the protocols have settled (several changes, one push).
  void schedule_push();
  void record(const IdentifyInfo& info);
  host::Task<void> push(std::shared_ptr<host::Connection> conn);

  host::Task<Result<IdentifyInfo>> request(std::shared_ptr<host::Connection> conn);
  struct Exchange;

  host::Host& host_;
  std::string agent_version_;
  std::map<uint64_t, std::shared_ptr<Exchange>> exchanges_;  // by connection id
  std::vector<Listener> listeners_;
  std::vector<Multiaddr> sealed_addrs_;
  Bytes sealed_record_;
  uint64_t sealed_seq_ = 0;
  bool push_scheduled_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace p2pmq::protocols
