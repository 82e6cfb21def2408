// The /p2pmq/sync/1.0.0 codec and server fed arbitrary bytes: decode_request and
// decode_response on the whole input, FrameReader over it in input-chosen chunks, and every
// decoded request answered by the server from a small in-memory archive. Decoded items must
// re-encode to something that decodes equal, and every answer must respect the limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "pubsub/message.hpp"
#include "sync/codec.hpp"
#include "sync/memory_archive.hpp"
#include "sync/server.hpp"

using namespace p2pmq;
using namespace p2pmq::sync;

namespace {

SyncLimits fuzz_limits() {
  SyncLimits limits;
  limits.max_request_size = 4096;
  limits.max_count = 50;
  limits.max_range_span = 50;
  limits.max_watermarks = 8;
  limits.max_batch_bytes = 64;
  limits.max_batch_messages = 8;
  limits.max_response_size = 4096;
  return limits;
}

// Topics "a" and "b", origins {1} and {2, 2}, seqnos 1..20, messages of varied size.
MemoryArchive& archive() {
  static MemoryArchive* a = [] {
    auto* out = new MemoryArchive(Retention{30, {}});
    for (uint64_t s = 1; s <= 20; ++s) {
      for (const char* topic : {"a", "b"}) {
        (void)out->put(topic, Bytes{1}, s, Bytes(s * 3, uint8_t(s)), WallTime{});
        (void)out->put(topic, Bytes{2, 2}, s * 2, Bytes(s, uint8_t(s)), WallTime{});
      }
    }
    return out;
  }();
  return *a;
}

const crypto::PeerId& fuzz_peer() {
  static const crypto::PeerId peer = [] {
    crypto::PrivateKey::Seed seed;
    seed.fill(1);
    return crypto::PeerId::from_public_key(crypto::PrivateKey::from_seed(seed).public_key());
  }();
  return peer;
}

void serve(const SyncRequest& request) {
  ServerConfig config;
  config.limits = fuzz_limits();
  config.max_response_bytes = 256;
  SyncServer server(archive(), config);
  auto responder = server.handle(fuzz_peer(), request, pubsub::Time{});
  size_t items = 0;
  while (auto item = responder.next()) {
    if (++items > 1000) std::abort();  // an answer must end
    if (item->id != request.id) std::abort();
    auto again = decode_response(encode_response(*item), config.limits);
    if (!again || *again != *item) std::abort();
  }
}

void exercise_request(const SyncRequest& request, const SyncLimits& limits) {
  auto again = decode_request(encode_request(request), limits);
  if (!again || *again != request) std::abort();
  serve(request);
}

void exercise_response(const SyncResponse& response, const SyncLimits& limits) {
  auto again = decode_response(encode_response(response), limits);
  if (!again || *again != response) std::abort();
  if (const auto* batch = std::get_if<Batch>(&response.item))
    for (const auto& m : batch->messages)
      if (auto message = decode_message(m))
        (void)pubsub::check_message(*message, pubsub::SignaturePolicy::strict_sign);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const BytesView input(data, size);
  const SyncLimits limits = fuzz_limits();
  if (auto request = decode_request(input, limits)) exercise_request(*request, limits);
  if (auto response = decode_response(input, limits)) exercise_response(*response, limits);

  const size_t chunk = size == 0 ? 1 : size_t{data[0]} % 64 + 1;
  FrameReader reader(limits.max_request_size);
  for (size_t i = 0; i < size; i += chunk) {
    reader.feed(input.subspan(i, std::min(chunk, size - i)));
    for (;;) {
      auto frame = reader.next();
      if (!frame) return 0;
      if (!*frame) break;
      if (auto request = decode_request(**frame, limits)) exercise_request(*request, limits);
    }
  }
  return 0;
}
