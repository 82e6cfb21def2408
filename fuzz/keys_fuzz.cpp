// Keys and peer ids from untrusted bytes: PublicKey::decode + verify, PrivateKey::decode,
// PeerId::from_bytes / parse. Nothing here may crash, leak or abort.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/bytes.hpp"
#include "crypto/keys.hpp"
#include "crypto/peer_id.hpp"

using namespace p2pmq;
using namespace p2pmq::crypto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  BytesView in(data, size);

  // The whole input as a key; when it decodes, it must round-trip and agree with its peer id.
  if (auto key = PublicKey::decode(in)) {
    if (key->encode() != Bytes(in.begin(), in.end())) std::abort();
    PeerId id = PeerId::from_public_key(*key);
    if (!id.matches(*key)) std::abort();
    if (auto inlined = id.extract_public_key(); inlined && !(*inlined == *key)) std::abort();
  }

  // First byte splits the rest into a key and a signature, so verify sees decodable keys with
  // arbitrary signatures often.
  if (size > 1) {
    size_t split = 1 + data[0] % (size - 1);
    BytesView key_bytes = in.subspan(1, split - 1);
    BytesView sig = in.subspan(split);
    if (auto key = PublicKey::decode(key_bytes)) (void)key->verify(key_bytes, sig);
    // Raw data for each type, skipping decode's checks.
    for (auto type : {KeyType::rsa, KeyType::ed25519, KeyType::secp256k1, KeyType::ecdsa})
      (void)PublicKey(type, Bytes(key_bytes.begin(), key_bytes.end())).verify(in, sig);
  }

  if (auto priv = PrivateKey::decode(in)) {
    Bytes sig = priv->sign(in);
    if (!priv->public_key().verify(in, sig)) std::abort();
  }

  if (auto id = PeerId::from_bytes(in)) {
    if (id->bytes() != Bytes(in.begin(), in.end())) std::abort();
    auto again = PeerId::parse(id->to_base58());
    auto from_cid = PeerId::parse(id->to_cid_string());
    if (!again || *again != *id || !from_cid || *from_cid != *id) std::abort();
    (void)id->extract_public_key();
  }
  if (auto id = PeerId::parse(as_string(in))) {
    if (!PeerId::from_bytes(id->bytes())) std::abort();
  }
  return 0;
}
