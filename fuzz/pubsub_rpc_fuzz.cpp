// The pubsub codec fed arbitrary bytes: decode_rpc on the whole input and RpcReader on it as a
// stream in input-chosen chunks. Every decoded RPC must re-encode to something that decodes
// equal, split within its limit, and its messages go through check_message and message_id.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "pubsub/id_aliases.hpp"
#include "pubsub/message.hpp"
#include "pubsub/rpc.hpp"

using namespace p2pmq;
using namespace p2pmq::pubsub;

namespace {

void exercise(const Rpc& rpc, const RpcLimits& limits) {
  for (const auto& m : rpc.publish) {
    (void)check_message(m, SignaturePolicy::strict_sign);
    (void)check_message(m, SignaturePolicy::strict_no_sign);
    for (auto fn :
         {MessageIdFn::p2pmq, MessageIdFn::stock, MessageIdFn::content, MessageIdFn::rust})
      (void)message_id(m, fn);
    IdAliases aliases(4);  // its cached origin texts give the ids message_id() gives
    for (const auto& [fn, id] : aliases.foreign_ids(m, MessageIdFn::p2pmq))
      if (id != message_id(m, fn)) std::abort();
    for (const auto& [fn, id] : aliases.foreign_ids(m, MessageIdFn::p2pmq))
      if (id != message_id(m, fn)) std::abort();
    Rpc one;
    one.publish = {m};
    if (encoded_size(m) != encode_rpc(one).size()) std::abort();
  }
  Bytes wire = encode_rpc(rpc);
  auto again = decode_rpc(wire, limits);
  if (!again || *again != rpc) std::abort();

  const size_t max = 512;
  auto parts = split_rpc(rpc, max);
  for (const auto& part : parts) {
    // Only a message larger than the limit may exceed it, alone in its part.
    bool lone_message =
        part.publish.size() == 1 && part.subscriptions.empty() && part.control.empty();
    if (encode_rpc(part).size() > max && !lone_message) std::abort();
    if (parts.size() > 1 && part.empty()) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const BytesView input(data, size);
  RpcLimits limits;
  limits.max_rpc_size = 64 * 1024;  // the fuzzer's inputs are smaller anyway

  if (auto rpc = decode_rpc(input, limits)) exercise(*rpc, limits);

  const size_t chunk = size == 0 ? 1 : size_t{data[0]} % 64 + 1;
  RpcReader reader(limits);
  for (size_t i = 0; i < size; i += chunk) {
    reader.feed(input.subspan(i, std::min(chunk, size - i)));
    for (;;) {
      auto next = reader.next();
      if (!next) return 0;
      if (!*next) break;
      exercise(**next, limits);
    }
  }
  return 0;
}
