// The kad-dht codec and request handler fed arbitrary bytes: decode() on the whole input and
// MessageReader on it as a stream in input-chosen chunks. Every decoded message must re-encode
// to something that decodes equal, is answered by a server's handle_request() (or refused)
// without crashing, and is fed to a lookup as a response.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/multihash.hpp"
#include "crypto/hash.hpp"
#include "dht/codec.hpp"
#include "dht/dht.hpp"
#include "dht/query.hpp"

using namespace p2pmq;
using namespace p2pmq::dht;

namespace {

constexpr int kPeers = 200;

PeerId make_peer(int i) {
  auto d = crypto::sha256(as_bytes("peer-" + std::to_string(i)));
  return PeerId::from_bytes(Multihash{multihash::kSha2_256, Bytes(d.begin(), d.end())}.encode())
      .value();
}

// Hashed once: hashing per input was a tenth of the run time.
const PeerId& peer(int i) {
  static const std::vector<PeerId> peers = [] {
    std::vector<PeerId> out;
    for (int j = 0; j <= kPeers; ++j) out.push_back(make_peer(j));
    return out;
  }();
  return peers.at(size_t(i));
}

struct World {
  std::unique_ptr<Dht> dht;
  Time now{};
  World() {
    DhtConfig cfg;
    cfg.rate.burst = 1e9;  // the handler, not the limiter, is under test
    cfg.providers.max_total = 10'000;
    cfg.records.max_records = 1'000;
    dht = std::make_unique<Dht>(peer(0), cfg);
    for (int i = 1; i <= kPeers; ++i) dht->on_peer_alive(peer(i), {}, now);
  }
};

World& world() {
  static World w;
  return w;
}

void exercise(const KadMessage& m, const KadLimits& limits, uint8_t who) {
  Bytes wire = encode(m);
  auto again = decode(wire, limits);
  if (!again || *again != m) std::abort();

  World& w = world();
  w.now += std::chrono::seconds(1);
  const PeerId& from = peer(1 + who % 8);
  if (auto r = w.dht->handle_request(from, m, w.now); r && *r) (void)encode(**r);

  // As the answer to a lookup that asked `from`.
  for (auto kind : {QueryKind::find_node, QueryKind::get_providers, QueryKind::get_value}) {
    std::vector<KadPeer> seeds{KadPeer{from, {}, ConnectionType::not_connected}};
    Query q(kind, m.key.empty() ? Bytes{1} : m.key, peer(0), seeds, QueryConfig{}, w.now,
            [](const KadRecord& r) { return !r.value.empty(); });
    (void)q.poll(w.now);
    KadMessage resp = m;
    resp.type = q.request().type;
    (void)q.on_response(from, resp, w.now);
    (void)q.poll(w.now);
    (void)q.closest();
    q.on_timer(w.now + std::chrono::hours(1));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const BytesView input(data, size);
  KadLimits limits;
  uint8_t who = size == 0 ? 0 : data[size - 1];
  if (auto m = decode(input, limits)) exercise(*m, limits, who);

  const size_t chunk = size == 0 ? 1 : size_t{data[0]} % 64 + 1;
  MessageReader reader(limits);
  for (size_t i = 0; i < size; i += chunk) {
    reader.feed(input.subspan(i, std::min(chunk, size - i)));
    for (;;) {
      auto next = reader.next();
      if (!next) return 0;
      if (!*next) break;
      exercise(**next, limits, who);
    }
  }
  return 0;
}
