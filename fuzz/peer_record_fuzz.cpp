// open_signed_peer_record on arbitrary bytes (an envelope from a PX entry or an identify
// message). Whatever opens must name a peer whose key signed it, within the address bound.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "crypto/peer_record.hpp"

using namespace p2pmq;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto rec = crypto::open_signed_peer_record(BytesView(data, size));
  if (rec && rec->addrs.size() > crypto::kMaxPeerRecordAddrs) std::abort();
  return 0;
}
