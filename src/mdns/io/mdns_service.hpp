#pragma once
// Binds the sans-IO mDNS core (mdns::Mdns) to a UDP socket on 224.0.0.251:5353 and to the host:
// the socket shares the port (SO_REUSEADDR, so it coexists with avahi and other agents), joins
// the group on every up, multicast-capable IPv4 interface (or the one configured), sends with
// TTL 255 and multicast loopback on, so that agents on one machine find each other. We announce
// the host's listen addresses (0.0.0.0 and :: replaced by the interfaces' addresses, loopback
// last). A peer found is put into the host's peer store and dialed (both optional), and handed
// to the on_peer callbacks when first seen.
//
// TODO(interop): IPv6 (ff02::fb) and legacy unicast queries (source port != 5353) are not served.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "host/host.hpp"
#include "host/local_addresses.hpp"
#include "mdns/mdns.hpp"

namespace p2pmq::mdns {

struct MdnsConfig {
  bool enabled = true;
  // IPv4 address of the one interface to use; empty: every up, multicast-capable IPv4 interface
  // (the system's default multicast interface when there is none).
  std::string interface_address;
  bool add_to_peer_store = true;
  bool dial = true;                                  // connect to peers found
  std::chrono::milliseconds redial_interval{30000};  // per peer, while not connected
  size_t max_concurrent_dials = 8;
  size_t max_dial_memory = 1024;  // peers whose last dial time we remember
  Config core;
};

struct ServiceStats {
  uint64_t received = 0;
  uint64_t too_large = 0;  // datagrams over core.limits.max_message_size
  uint64_t receive_errors = 0;
  uint64_t sent = 0;  // datagrams, per interface
  uint64_t send_errors = 0;
  uint64_t discovered = 0;  // first sightings
  uint64_t dials = 0;
  uint64_t dial_failures = 0;
};

// The host's local addresses and the expansion of unspecified listen addresses (host/).
using host::announce_addrs;
using host::local_addresses;
using host::LocalAddress;

class MdnsService {
 public:
  using PeerHandler = std::function<void(PeerId, std::vector<Multiaddr>)>;

  MdnsService(host::Host& host, MdnsConfig config = {});
  ~MdnsService();
  MdnsService(const MdnsService&) = delete;
  MdnsService& operator=(const MdnsService&) = delete;

  // Opens the socket, joins the group and starts querying and answering. Call after the host
  // started (its listen addresses are announced). Disabled: does nothing. Errc::io when the
  // socket cannot be set up (port, group), Errc::invalid_input for a bad interface_address.
  Result<void> start();
  // Withdraws our records (TTL 0), closes the socket. start() may be called again.
  void stop();
  bool running() const;

  // Called when a peer is first seen (or seen again after its records expired), with every
  // address it announced (without /p2p/). Register before start() to miss nobody.
  void on_peer(PeerHandler handler) { handlers_->push_back(std::move(handler)); }

  // Of the current (or last) run; empty before the first start().
  const ServiceStats& stats() const;
  const Stats& core_stats() const;
  const Mdns* core() const;

  struct State;  // what the coroutines share (defined in the .cpp)

 private:
  host::Host& host_;
  MdnsConfig config_;
  std::shared_ptr<std::vector<PeerHandler>> handlers_ =
      std::make_shared<std::vector<PeerHandler>>();
  std::shared_ptr<State> state_;
};

}  // namespace p2pmq::mdns
