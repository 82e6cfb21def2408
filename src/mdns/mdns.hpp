#pragma once
// libp2p mDNS peer discovery (libp2p/specs discovery/mdns.md) as a sans-IO state machine.
//
// We ask `_p2p._udp.local PTR` (at start, then at a growing interval up to query_interval) and
// answer every such question, our own included (the spec: that lets others discover us
// passively), with
//   answer:     _p2p._udp.local PTR <peer-name>._p2p._udp.local
//   additional: <peer-name>._p2p._udp.local TXT "dnsaddr=<multiaddr>/p2p/<id>" ...
// where peer-name is a random lower-case alphanumeric label of 32 to 63 characters (not the
// peer id, which may outgrow a DNS label). Responses honour RFC 6762: a 20-120 ms delay, at most
// one multicast per second, known-answer suppression, an announcement at start and whenever our
// addresses change, TTL 0 "goodbye" records on shutdown.
//
// From responses we take TXT records of `<label>._p2p._udp.local` (named by a PTR answer or not),
// their `dnsaddr=` attributes that parse as multiaddrs ending in /p2p/<id>, grouped by peer id.
// Anything malformed is dropped quietly and counted.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/multiaddr.hpp"
#include "crypto/peer_id.hpp"
#include "mdns/dns.hpp"

namespace p2pmq::mdns {

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;
using Duration = Clock::duration;
using crypto::PeerId;
using namespace std::chrono_literals;

inline constexpr std::string_view kServiceName = "_p2p._udp.local";
inline constexpr std::string_view kDnsaddrPrefix = "dnsaddr=";
inline constexpr uint16_t kMdnsPort = 5353;
inline constexpr std::string_view kMdnsGroupV4 = "224.0.0.251";

struct Config {
  std::string service_name{kServiceName};  // `_p2p-<fingerprint>._udp.local` for a private net
  Duration query_interval = 10s;           // steady state
  Duration initial_query_interval = 1s;    // the second query; doubles up to query_interval
  Duration ttl = 120s;                     // of our records (RFC 6762 §10: host-naming records)
  Duration min_response_interval = 1s;     // RFC 6762 §6: a record multicast at most once a second
  Duration response_delay_min = 20ms;      // RFC 6762 §6: shared records wait 20-120 ms
  Duration response_delay_max = 120ms;
  size_t max_packet_size = 1400;  // our datagrams fit one Ethernet frame; longer lists are split
  size_t max_advertised_addrs = 32;
  size_t max_peers = 1024;         // the table of peers seen (bounds peers())
  size_t max_addrs_per_peer = 32;  // per peer, per datagram and in the table
  Duration max_record_ttl = 1h;    // cap on a TTL a peer claims
  DnsLimits limits;
};

struct Stats {
  uint64_t datagrams = 0;
  uint64_t malformed = 0;           // not a DNS message, or over a limit
  uint64_t ignored = 0;             // non-zero opcode or rcode (RFC 6762 §18.3, §18.11)
  uint64_t queries_received = 0;    // asked for our service
  uint64_t queries_suppressed = 0;  // known-answer suppression
  uint64_t responses_received = 0;  // responses naming at least one other peer
  uint64_t bad_txt = 0;             // dnsaddr attributes that are not a multiaddr with /p2p/
  uint64_t self = 0;                // our own announcements, looped back
  uint64_t goodbyes = 0;            // peers that withdrew (TTL 0)
  uint64_t queries_sent = 0;
  uint64_t responses_sent = 0;  // datagrams
  uint64_t addrs_skipped = 0;   // ours that do not fit a TXT string
};

struct DiscoveredPeer {
  PeerId peer;
  std::vector<Multiaddr> addrs;  // without /p2p/, as listed in this datagram
  bool is_new = false;           // not in the table before (first sight, or expired)
};

class Mdns {
 public:
  // `addrs`: our addresses (with or without /p2p/; ours is appended). `seed` picks the peer-name
  // and the response delays: take it from a random device outside tests.
  Mdns(PeerId self, std::vector<Multiaddr> addrs, Config config, uint64_t seed);

  // Replaces the addresses we announce; a change is announced at once (RFC 6762 §8.4).
  void set_addrs(std::vector<Multiaddr> addrs);
  const std::vector<Multiaddr>& addrs() const { return addrs_; }

  // Datagrams due by `now`, to send to the mDNS group: queries and responses.
  std::vector<Bytes> poll_send(Time now);
  // A datagram received on the mDNS port. Returns the other peers it names.
  std::vector<DiscoveredPeer> on_datagram(BytesView datagram, Time now);
  // When poll_send next has something to send.
  Time next_deadline() const;
  // Records withdrawing us (TTL 0), to send once when shutting down.
  std::vector<Bytes> goodbye();

  const std::string& peer_name() const { return peer_name_; }
  const DnsName& instance_name() const { return instance_; }
  const Stats& stats() const { return stats_; }
  const Config& config() const { return config_; }

  struct Entry {
    std::vector<Multiaddr> addrs;
    Time expires;
  };
  // Peers seen whose records have not expired (as of the last call that was given `now`).
  const std::map<PeerId, Entry>& peers() const { return peers_; }

 private:
  Bytes query_packet() const;
  std::vector<Bytes> response_packets(uint32_t ttl);
  void schedule_response(Time now);
  void handle_query(const Message& m, Time now);
  std::vector<DiscoveredPeer> handle_response(const Message& m, Time now);
  void expire(Time now);

  PeerId self_;
  Config config_;
  std::mt19937_64 rng_;
  std::string peer_name_;
  DnsName service_;
  DnsName instance_;
  std::vector<Multiaddr> addrs_;
  std::vector<Bytes> responses_;  // cached response_packets(ttl)
  bool responses_valid_ = false;
  Time next_query_ = Time::min();  // the first poll queries
  Duration query_interval_;
  std::optional<Time> response_due_;
  std::optional<Time> last_response_;
  std::map<PeerId, Entry> peers_;
  Stats stats_;
};

}  // namespace p2pmq::mdns
