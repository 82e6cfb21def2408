// The mDNS codec and state machine fed arbitrary datagrams. decode() must refuse or succeed
// without crashing; a decoded message must re-encode (with our compression) to something that
// decodes equal; and Mdns::on_datagram must take it, answering or discovering within its bounds.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>

#include "crypto/keys.hpp"
#include "mdns/dns.hpp"
#include "mdns/mdns.hpp"

using namespace p2pmq;
using namespace p2pmq::mdns;

namespace {

crypto::PeerId peer(uint8_t i) {
  crypto::PrivateKey::Seed seed{};
  seed[0] = i;
  return crypto::PeerId::from_public_key(crypto::PrivateKey::from_seed(seed).public_key());
}

// Ours, derived once: an Ed25519 key derivation per discovered peer would dominate the run.
const crypto::PeerId& self() {
  static const crypto::PeerId id = peer(0);
  return id;
}

struct World {
  std::unique_ptr<Mdns> mdns;
  Time now = Time{} + std::chrono::hours(1000);
  World() {
    Config cfg;
    cfg.max_peers = 64;  // eviction and the full-table path get exercised
    mdns = std::make_unique<Mdns>(
        self(),
        std::vector<Multiaddr>{Multiaddr::parse("/ip4/192.168.1.2/tcp/4001").value(),
                               Multiaddr::parse("/ip6/::1/tcp/4001").value()},
        cfg, 7);
  }
};

World& world() {
  static World w;
  return w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const BytesView input(data, size);
  if (auto m = decode(input)) {
    auto wire = encode(*m);
    if (!wire) std::abort();  // everything decode accepts can be written back
    DnsLimits roomy;          // our compression may differ from the input's
    roomy.max_message_size = std::numeric_limits<size_t>::max();
    roomy.max_records = std::numeric_limits<size_t>::max();
    roomy.max_questions = std::numeric_limits<size_t>::max();
    roomy.max_pointer_jumps = 256;  // ours chain a pointer per label at worst
    auto again = decode(*wire, roomy);
    if (!again || *again != *m) std::abort();
  }

  World& w = world();
  w.now += std::chrono::milliseconds(size == 0 ? 1 : 1 + data[0] * 20);
  for (const auto& d : w.mdns->on_datagram(input, w.now)) {
    if (d.addrs.empty() || d.addrs.size() > w.mdns->config().max_addrs_per_peer) std::abort();
    if (d.peer == self()) std::abort();
  }
  if (w.mdns->peers().size() > w.mdns->config().max_peers) std::abort();
  for (const auto& out : w.mdns->poll_send(w.now))
    if (!decode(out)) std::abort();  // what we send is well-formed
  return 0;
}
