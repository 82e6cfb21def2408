#include "net/noise.hpp"

#include <gtest/gtest.h>

#include <random>
#include <stdexcept>

#include "libp2p/noise.pb.h"

namespace p2pmq::noise {
namespace {

using crypto::PeerId;
using crypto::PrivateKey;

struct Pair {
  PrivateKey init_id = PrivateKey::generate();
  PrivateKey resp_id = PrivateKey::generate();
  std::optional<Handshake> init;
  std::optional<Handshake> resp;
};

// Runs a handshake, delivering at most `chunk` bytes per feed. Returns the first error.
Result<void> run(Handshake& init, Handshake& resp, size_t chunk = SIZE_MAX) {
  if (auto r = init.start(); !r) return r;
  if (auto r = resp.start(); !r) return r;
  for (int round = 0; round < 4; ++round) {
    Bytes a = init.take_output();
    for (size_t i = 0; i < a.size(); i += chunk) {
      if (auto r = resp.feed(BytesView(a).subspan(i, std::min(chunk, a.size() - i))); !r) return r;
    }
    Bytes b = resp.take_output();
    for (size_t i = 0; i < b.size(); i += chunk) {
      if (auto r = init.feed(BytesView(b).subspan(i, std::min(chunk, b.size() - i))); !r) return r;
    }
  }
  return {};
}

Bytes random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

Bytes frame(BytesView message) {
  Bytes out{static_cast<uint8_t>(message.size() >> 8), static_cast<uint8_t>(message.size())};
  append(out, message);
  return out;
}

TEST(NoiseTest, HandshakeAuthenticatesBothSides) {
  Pair p;
  p.init.emplace(true, p.init_id, PeerId::from_public_key(p.resp_id.public_key()));
  p.resp.emplace(false, p.resp_id);
  p.init->set_stream_muxers({"/yamux/1.0.0"});
  ASSERT_TRUE(run(*p.init, *p.resp));
  ASSERT_TRUE(p.init->complete());
  ASSERT_TRUE(p.resp->complete());
  EXPECT_EQ(p.init->remote_peer(), PeerId::from_public_key(p.resp_id.public_key()));
  EXPECT_EQ(p.resp->remote_peer(), PeerId::from_public_key(p.init_id.public_key()));
  EXPECT_EQ(p.resp->remote_key(), p.init_id.public_key());
  EXPECT_EQ(p.resp->remote_stream_muxers(), std::vector<std::string>{"/yamux/1.0.0"});
  EXPECT_TRUE(p.init->remote_stream_muxers().empty());
}

TEST(NoiseTest, HandshakeWireShape) {
  Pair p;
  Handshake init(true, p.init_id);
  ASSERT_TRUE(init.start());
  Bytes msg1 = init.take_output();
  ASSERT_EQ(msg1.size(), 2u + 32u);  // frame length 32: the ephemeral key, empty payload
  EXPECT_EQ(msg1[0], 0);
  EXPECT_EQ(msg1[1], 32);
}

TEST(NoiseTest, HandshakeByteByByte) {
  Pair p;
  p.init.emplace(true, p.init_id);
  p.resp.emplace(false, p.resp_id);
  ASSERT_TRUE(run(*p.init, *p.resp, 1));
  EXPECT_TRUE(p.init->complete());
  EXPECT_TRUE(p.resp->complete());
}

TEST(NoiseTest, TransportBothWaysWithPipelinedData) {
  Pair p;
  Handshake init(true, p.init_id), resp(false, p.resp_id);
  ASSERT_TRUE(init.start());
  ASSERT_TRUE(resp.feed(init.take_output()));
  ASSERT_TRUE(init.feed(resp.take_output()));
  ASSERT_TRUE(init.complete());
  Session a = init.into_session();

  // The initiator's first data rides in the same write as message 3.
  Bytes wire = init.take_output();
  const Bytes hello = to_bytes("hello responder");
  a.encrypt(hello, wire);
  ASSERT_TRUE(resp.feed(wire));
  ASSERT_TRUE(resp.complete());
  Session b = resp.into_session();
  Bytes got;
  ASSERT_TRUE(b.decrypt(resp.take_remaining(), got));
  EXPECT_EQ(got, hello);

  // Larger than one frame, both directions.
  const Bytes big = random_bytes(3 * kMaxPlaintext + 123, 7);
  Bytes to_a;
  b.encrypt(big, to_a);
  EXPECT_EQ(to_a.size(), big.size() + 4 * (2 + crypto::kAeadTag));
  Bytes at_a;
  ASSERT_TRUE(a.decrypt(to_a, at_a));
  EXPECT_EQ(at_a, big);

  Bytes to_b, at_b;
  a.encrypt(big, to_b);
  ASSERT_TRUE(b.decrypt(to_b, at_b));
  EXPECT_EQ(at_b, big);
}

struct SessionPair {
  Session a;
  Session b;
};

SessionPair sessions() {
  crypto::AeadKey k1{1}, k2{2};
  return {Session(k1, k2), Session(k2, k1)};
}

TEST(NoiseTest, SessionFramesSplitAtMaxPlaintext) {
  auto [a, b] = sessions();
  Bytes wire;
  a.encrypt(Bytes(kMaxPlaintext + 1, 0xab), wire);
  ASSERT_EQ(wire.size(), kMaxPlaintext + 1 + 2 * (2 + crypto::kAeadTag));
  EXPECT_EQ(wire[0], 0xff);  // first frame is exactly 65535 bytes
  EXPECT_EQ(wire[1], 0xff);
  const size_t second = 2 + kMaxFrame;
  EXPECT_EQ(wire[second], 0);
  EXPECT_EQ(wire[second + 1], 1 + crypto::kAeadTag);

  Bytes empty;
  a.encrypt({}, empty);
  EXPECT_TRUE(empty.empty());
}

TEST(NoiseTest, SessionBuffersTruncatedFrames) {
  auto [a, b] = sessions();
  Bytes wire;
  const Bytes m1 = random_bytes(1000, 1), m2 = random_bytes(70000, 2), m3 = to_bytes("x");
  a.encrypt(m1, wire);
  a.encrypt(m2, wire);
  a.encrypt(m3, wire);
  Bytes expected = m1;
  append(expected, m2);
  append(expected, m3);

  for (size_t chunk : {size_t{1}, size_t{2}, size_t{3}, size_t{17}, size_t{4096}, size_t{65537}}) {
    auto [a2, b2] = sessions();
    Bytes w;
    a2.encrypt(m1, w);
    a2.encrypt(m2, w);
    a2.encrypt(m3, w);
    Bytes got;
    for (size_t i = 0; i < w.size(); i += chunk) {
      ASSERT_TRUE(b2.decrypt(BytesView(w).subspan(i, std::min(chunk, w.size() - i)), got));
    }
    EXPECT_EQ(got, expected) << "chunk " << chunk;
  }
}

TEST(NoiseTest, SessionRejectsTamperedFrameAndStaysFailed) {
  auto [a, b] = sessions();
  Bytes wire;
  a.encrypt(to_bytes("secret"), wire);
  wire[5] ^= 1;
  Bytes got;
  auto r = b.decrypt(wire, got);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::crypto_failure);
  EXPECT_TRUE(got.empty());
  Bytes good;
  auto [a2, b2] = sessions();
  a2.encrypt(to_bytes("secret"), good);
  EXPECT_FALSE(b.decrypt(good, got));  // sticky
}

TEST(NoiseTest, SessionRejectsReplayAndReorder) {
  auto [a, b] = sessions();
  Bytes f1, f2, got;
  a.encrypt(to_bytes("one"), f1);
  a.encrypt(to_bytes("two"), f2);
  ASSERT_FALSE(b.decrypt(f2, got));  // nonce 1 frame at nonce 0
}

TEST(NoiseTest, SessionRejectsShortAndOversizedFrames) {
  auto [a, b] = sessions();
  Bytes got;
  auto r = b.decrypt(Bytes{0x00, 0x0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, got);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_input);

  // The largest length a 2-byte prefix can say, filled with junk: refused by the MAC.
  auto [a2, b2] = sessions();
  Bytes junk{0xff, 0xff};
  append(junk, random_bytes(kMaxFrame, 3));
  r = b2.decrypt(junk, got);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::crypto_failure);
}

TEST(NoiseTest, EmptyFrameIsValid) {
  // A frame holding only a tag (empty plaintext) is legal Noise; other implementations may send it.
  auto [a, b] = sessions();
  Bytes wire(2 + crypto::kAeadTag);
  wire[1] = crypto::kAeadTag;
  a.send_cipher_for_test().seal({}, {}, wire.data() + 2);
  Bytes got;
  ASSERT_TRUE(b.decrypt(wire, got));
  EXPECT_TRUE(got.empty());
}

TEST(NoiseTest, NonceExhaustion) {
  auto [a, b] = sessions();
  a.send_cipher_for_test().set_nonce(detail::kMaxNonce);
  Bytes wire;
  EXPECT_THROW(a.encrypt(to_bytes("x"), wire), std::overflow_error);

  auto [a2, b2] = sessions();
  a2.send_cipher_for_test().set_nonce(detail::kMaxNonce - 1);
  b2.recv_cipher_for_test().set_nonce(detail::kMaxNonce - 1);
  Bytes w, got;
  a2.encrypt(to_bytes("last"), w);
  ASSERT_TRUE(b2.decrypt(w, got));
  EXPECT_EQ(as_string(got), "last");
  auto r = b2.decrypt(w, got);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::limit_exceeded);
}

TEST(NoiseTest, WrongExpectedPeerIsRefused) {
  Pair p;
  const PeerId other = PeerId::from_public_key(PrivateKey::generate().public_key());
  const PeerId actual = PeerId::from_public_key(p.resp_id.public_key());
  Handshake init(true, p.init_id, other), resp(false, p.resp_id);
  ASSERT_TRUE(init.start());
  ASSERT_TRUE(resp.feed(init.take_output()));
  auto r = init.feed(resp.take_output());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::peer_id_mismatch);
  EXPECT_NE(r.error().message.find(other.to_string()), std::string::npos);
  EXPECT_NE(r.error().message.find(actual.to_string()), std::string::npos);
  EXPECT_TRUE(init.take_output().empty());  // message 3 (our identity) is not sent
  EXPECT_FALSE(init.complete());
  EXPECT_FALSE(init.feed({}));  // sticky
}

TEST(NoiseTest, ResponderChecksExpectedPeerToo) {
  Pair p;
  const PeerId other = PeerId::from_public_key(PrivateKey::generate().public_key());
  Handshake init(true, p.init_id), resp(false, p.resp_id, other);
  auto r = run(init, resp);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::peer_id_mismatch);
}

TEST(NoiseTest, TamperedHandshakeFrameIsRefused) {
  Pair p;
  Handshake init(true, p.init_id), resp(false, p.resp_id);
  ASSERT_TRUE(init.start());
  ASSERT_TRUE(resp.feed(init.take_output()));
  Bytes msg2 = resp.take_output();
  msg2[2 + 32 + 5] ^= 0x40;  // inside the encrypted static key
  auto r = init.feed(msg2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::crypto_failure);
}

TEST(NoiseTest, ShortHandshakeFrameIsRefused) {
  Pair p;
  Handshake resp(false, p.resp_id);
  auto r = resp.feed(frame(Bytes(31, 1)));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_input);
}

TEST(NoiseTest, FeedBeforeStartIsRefused) {
  Pair p;
  Handshake init(true, p.init_id);
  EXPECT_FALSE(init.feed(Bytes{0, 1, 2}));
}

// A hand-driven responder, so the payload of message 2 can be anything.
Result<void> respond_with(Handshake& init,
                          const std::function<Bytes(const crypto::X25519Key&)>& payload) {
  if (auto r = init.start(); !r) return r;
  Bytes msg1 = init.take_output();
  detail::XXState xx(false, crypto::X25519Keypair::generate(), crypto::X25519Keypair::generate(),
                     {});
  Bytes ignored;
  if (auto r = xx.read_message(BytesView(msg1).subspan(2), ignored); !r) return r;
  Bytes msg2;
  if (auto r = xx.write_message(payload(xx.local_static()), msg2); !r) return r;
  return init.feed(frame(msg2));
}

Bytes payload_for(const PrivateKey& id, BytesView signed_data, std::string_view extra = {}) {
  libp2p::noise::NoiseHandshakePayload msg;
  msg.set_identity_key(std::string(as_string(id.public_key().encode())));
  msg.set_identity_sig(std::string(as_string(id.sign(signed_data))));
  Bytes out = to_bytes(msg.SerializeAsString());
  append(out, as_bytes(extra));
  return out;
}

Bytes static_key_message(const crypto::X25519Key& s) {
  Bytes m = to_bytes(kSignaturePrefix);
  append(m, s);
  return m;
}

TEST(NoiseTest, UnknownPayloadFieldsAreIgnored) {
  Pair p;
  Handshake init(true, p.init_id, PeerId::from_public_key(p.resp_id.public_key()));
  // Field 15, varint 1 (0x78 0x01), and field 4's unknown sub-field 9 (early-data experiments).
  const std::string extra("\x78\x01\x22\x02\x48\x01", 6);
  auto r = respond_with(init, [&](const crypto::X25519Key& s) {
    return payload_for(p.resp_id, static_key_message(s), extra);
  });
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(init.complete());
}

TEST(NoiseTest, SignatureOverWrongKeyIsRefused) {
  Pair p;
  Handshake init(true, p.init_id);
  auto r = respond_with(init, [&](const crypto::X25519Key&) {
    return payload_for(p.resp_id, static_key_message(crypto::X25519Key{7}));
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::crypto_failure);
}

TEST(NoiseTest, MissingOrGarbledIdentityIsRefused) {
  for (const Bytes& bad : {Bytes{}, Bytes{0xff, 0xff, 0xff}, Bytes{0x0a, 0x03, 'a', 'b', 'c'}}) {
    Pair p;
    Handshake init(true, p.init_id);
    auto r = respond_with(init, [&](const crypto::X25519Key&) { return bad; });
    EXPECT_FALSE(r);
    EXPECT_FALSE(init.complete());
  }
}

TEST(NoiseTest, RemainingBytesAfterHandshakeAreKept) {
  Pair p;
  Handshake init(true, p.init_id), resp(false, p.resp_id);
  ASSERT_TRUE(init.start());
  ASSERT_TRUE(resp.feed(init.take_output()));
  Bytes msg2 = resp.take_output();
  append(msg2, Bytes{1, 2, 3});  // the responder cannot legally send this, but nothing is lost
  ASSERT_TRUE(init.feed(msg2));
  ASSERT_TRUE(init.complete());
  EXPECT_EQ(init.take_remaining(), (Bytes{1, 2, 3}));
  ASSERT_TRUE(init.feed(Bytes{4}));
  EXPECT_EQ(init.take_remaining(), (Bytes{4}));
}

}  // namespace
}  // namespace p2pmq::noise
