// Noise fed arbitrary bytes: a responder Handshake (its first frame is the initiator's
// unauthenticated ephemeral key, so this reaches message 2 and the message 3 checks), a Session
// decrypting junk, and a Session round trip of the input as plaintext in input-chosen chunks.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "crypto/keys.hpp"
#include "net/noise.hpp"

using namespace p2pmq;

namespace {

const crypto::PrivateKey& identity() {
  static const crypto::PrivateKey key = crypto::PrivateKey::from_seed(crypto::PrivateKey::Seed{42});
  return key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const BytesView input(data, size);
  const size_t chunk = size == 0 ? 1 : size_t{data[0]} * 64 + 1;

  noise::Handshake responder(false, identity());
  if (!responder.start()) std::abort();
  for (size_t i = 0; i < size; i += chunk) {
    if (!responder.feed(input.subspan(i, std::min(chunk, size - i)))) break;
  }
  (void)responder.take_output();
  (void)responder.take_remaining();

  const crypto::AeadKey k1{1}, k2{2};
  noise::Session receiver(k1, k2);
  Bytes plaintext;
  for (size_t i = 0; i < size; i += chunk) {
    if (!receiver.decrypt(input.subspan(i, std::min(chunk, size - i)), plaintext)) break;
  }

  // Whatever is encrypted must decrypt to itself, however the wire is cut.
  noise::Session a(k1, k2), b(k2, k1);
  Bytes wire, back;
  a.encrypt(input, wire);
  for (size_t i = 0; i < wire.size(); i += chunk) {
    if (!b.decrypt(BytesView(wire).subspan(i, std::min(chunk, wire.size() - i)), back)) {
      std::abort();
    }
  }
  if (back.size() != size || !std::equal(back.begin(), back.end(), data)) std::abort();
  return 0;
}
