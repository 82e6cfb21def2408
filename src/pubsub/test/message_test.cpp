#include "pubsub/message.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

#include "core/varint.hpp"
#include "crypto/hash.hpp"
#include "pubsub/rpc.hpp"

namespace p2pmq::pubsub {
namespace {

Bytes hex(std::string_view h) {
  Bytes out;
  if (!from_hex(h, out)) throw std::invalid_argument("bad hex in test");
  return out;
}

crypto::PrivateKey test_key(uint8_t fill = 7) {
  crypto::PrivateKey::Seed seed;
  seed.fill(fill);
  return crypto::PrivateKey::from_seed(seed);
}

// Reads one Message protobuf by wrapping it in an RPC's publish field.
Message decode_message(BytesView protobuf) {
  Bytes rpc{0x12};
  varint_append(rpc, protobuf.size());
  append(rpc, protobuf);
  auto decoded = decode_rpc(rpc, RpcLimits{});
  if (!decoded || decoded->publish.size() != 1) throw std::invalid_argument("bad message");
  return decoded->publish[0];
}

std::optional<RejectReason> reason(const Message& m, SignaturePolicy p) {
  auto r = check_message(m, p);
  if (r) return std::nullopt;
  return r.error().reason;
}

constexpr auto kSign = SignaturePolicy::strict_sign;
constexpr auto kNoSign = SignaturePolicy::strict_no_sign;

TEST(MessageSeqno, BigEndianEightBytes) {
  EXPECT_EQ(to_hex(seqno_bytes(0x0102030405060708)), "0102030405060708");
  EXPECT_EQ(to_hex(seqno_bytes(1)), "0000000000000001");
  Message m;
  m.seqno = seqno_bytes(0xfedcba9876543210);
  EXPECT_EQ(seqno_value(m), 0xfedcba9876543210);
  m.seqno = Bytes(7, 0);
  EXPECT_EQ(seqno_value(m), std::nullopt);
  m.seqno = Bytes(9, 0);
  EXPECT_EQ(seqno_value(m), std::nullopt);
  m.seqno.reset();
  EXPECT_EQ(seqno_value(m), std::nullopt);
}

TEST(MessageSign, StrictSignStampsAndSigns) {
  auto key = test_key();
  auto peer = crypto::PeerId::from_public_key(key.public_key());
  Message m = make_message(key, "news", to_bytes("hi"), 42, kSign);
  EXPECT_EQ(m.topic, "news");
  EXPECT_EQ(m.data, to_bytes("hi"));
  EXPECT_EQ(m.from, peer.bytes());
  EXPECT_EQ(seqno_value(m), 42u);
  ASSERT_TRUE(m.signature);
  EXPECT_EQ(m.signature->size(), 64u);
  EXPECT_FALSE(m.key);  // Ed25519 ids inline the key
  EXPECT_TRUE(key.public_key().verify(signing_bytes(m), *m.signature));
  EXPECT_TRUE(check_message(m, kSign));
  // Signed over the prefix and the message without signature and key.
  Message bare = m;
  bare.signature.reset();
  Bytes expected = to_bytes("libp2p-pubsub:");
  append(expected, encode_message(bare));
  EXPECT_EQ(signing_bytes(m), expected);
  Message keyed = m;  // the key is not signed either
  keyed.key = to_bytes("key bytes");
  EXPECT_EQ(signing_bytes(keyed), expected);
}

TEST(MessageSign, StrictNoSignCarriesTopicAndDataOnly) {
  Message m = make_message(test_key(), "news", to_bytes("hi"), 42, kNoSign);
  EXPECT_EQ(
      m, (Message{std::nullopt, to_bytes("hi"), std::nullopt, "news", std::nullopt, std::nullopt}));
  EXPECT_TRUE(check_message(m, kNoSign));
  EXPECT_EQ(reason(m, kSign), RejectReason::missing_signature);
}

TEST(MessageSign, SurvivesTheWire) {
  Rpc rpc;
  rpc.publish = {make_message(test_key(), "news", to_bytes("hi"), 1, kSign)};
  auto decoded = decode_rpc(encode_rpc(rpc), RpcLimits{});
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(check_message(decoded->publish[0], kSign));
}

// L6: go publishes nil data without the field; the signature covers that encoding, so a
// relay must verify (and forward) the message without adding an empty field.
TEST(MessageSign, AbsentDataFieldStaysAbsentAndVerifies) {
  crypto::PrivateKey key = test_key();
  Message m = make_message(key, "news", {}, 1, kSign);
  m.data_present = false;
  m.signature.reset();
  m.signature = key.sign(signing_bytes(m));
  Rpc rpc;
  rpc.publish = {m};
  auto decoded = decode_rpc(encode_rpc(rpc), RpcLimits{});
  ASSERT_TRUE(decoded);
  EXPECT_FALSE(decoded->publish[0].data_present);
  EXPECT_TRUE(check_message(decoded->publish[0], kSign));
  EXPECT_EQ(encode_rpc(*decoded), encode_rpc(rpc));
}

TEST(MessageCheck, RejectsTamperingUnderStrictSign) {
  const Message good = make_message(test_key(), "news", to_bytes("hi"), 42, kSign);
  Message m = good;
  m.data = to_bytes("ho");
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
  m = good;
  m.topic = "newz";
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
  m = good;
  m.seqno = seqno_bytes(43);
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
  m = good;
  (*m.signature)[0] ^= 1;
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
  m = good;
  m.signature->pop_back();
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
  m = good;
  m.signature.reset();
  EXPECT_EQ(reason(m, kSign), RejectReason::missing_signature);
}

TEST(MessageCheck, RejectsBadAuthorFieldsUnderStrictSign) {
  const Message good = make_message(test_key(), "news", to_bytes("hi"), 42, kSign);
  Message m = good;
  m.from.reset();
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
  m = good;
  m.from = hex("0102");  // not a multihash
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
  m = good;
  m.seqno = Bytes(7, 0);
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
  m = good;
  m.seqno.reset();
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
  // Another peer's id with our signature.
  m = good;
  m.from = crypto::PeerId::from_public_key(test_key(8).public_key()).bytes();
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
}

TEST(MessageCheck, ChecksTheKeyField) {
  auto key = test_key();
  const Message good = make_message(key, "news", to_bytes("hi"), 42, kSign);
  Message m = good;
  m.key = key.public_key().encode();  // js sends the key even when inlined: fine
  EXPECT_TRUE(check_message(m, kSign));
  m.key = test_key(8).public_key().encode();  // a key that is not from's
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
  m.key = hex("0801");  // not a key
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
  // A hashed (sha2-256) peer id needs the key.
  auto hashed = crypto::PeerId::from_bytes(hex("1220" + std::string(64, 'a')));
  ASSERT_TRUE(hashed);
  m = good;
  m.from = hashed->bytes();
  EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
}

TEST(MessageCheck, StrictNoSignRefusesAuthorship) {
  const Message signed_msg = make_message(test_key(), "news", to_bytes("hi"), 42, kSign);
  EXPECT_EQ(reason(signed_msg, kNoSign), RejectReason::unexpected_signature);
  Message m = make_message(test_key(), "news", to_bytes("hi"), 42, kNoSign);
  m.key = test_key().public_key().encode();
  EXPECT_EQ(reason(m, kNoSign), RejectReason::unexpected_signature);
  m.key.reset();
  m.from = signed_msg.from;
  EXPECT_EQ(reason(m, kNoSign), RejectReason::unexpected_author);
  m.from.reset();
  m.seqno = seqno_bytes(1);
  EXPECT_EQ(reason(m, kNoSign), RejectReason::unexpected_author);
  auto r = check_message(m, kNoSign);
  ASSERT_FALSE(r);
  EXPECT_FALSE(r.error().detail.empty());
}

// Messages published by @chainsafe/libp2p-gossipsub 14.1.2 (buildRawMessage, StrictSign) on
// topic "p2pmq/test" with data "hello from js". js always sets `key`, even for Ed25519.
constexpr std::string_view kJsEd25519Message =
    "0a26002408011220ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c120d68656c6c"
    "6f2066726f6d206a731a08f9b97bf63fedb444220a7032706d712f746573742a40c0bd1d7776326bcd7bd8f6b1eb"
    "2649bdf55c7fe0a7fc605b8d5341b407f9f6f84fac0e9aa7c7b82f9e6d5e70501970d48289ed34114257ff7c89fa"
    "a7aa29920c322408011220ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
// The same from an RSA-2048 key: a hashed peer id, so the key field is needed.
constexpr std::string_view kJsRsaMessage =
    "0a2212205e09564422370d513a5eee63fc547f5dd5af4172f1f308d7e43404e4383b1c4f120d68656c6c6f206672"
    "6f6d206a731a08aa9eba34cb6d3e92220a7032706d712f746573742a800264cd4e9206f4b713b64dfb9553032aab"
    "5b8f38934e837028b5d32dc631f7a8c50425519b184f6a5c153f3b900804bbea4c2f19710386444006ab803f18cf"
    "890900c9ca66c1dd1f3555ecffbce2ee120919f83094b0f5e3d127c4da0d538d7f43bafe075d37ac81ce122ea3b4"
    "3a4cd1a3d2cb290bdac9aaade5b1f858c2f2ec92319e13a26e121f0ae81b94c01fbe44ee9ca41d82024c483fb47a"
    "a84b53d44f18104dcccae31b931953d366122b45727b400c7f3cd1b6c8b4246e3cf4601cd800b37994f9907ef89e"
    "3ad962cbf22bea373bd3ecc5fd30b498e97d71416dfdebbdcbb72a4c3a4e8ad0b762815dd88b6ffe546401032cfd"
    "1c0916be27319e01d46132ab02080012a60230820122300d06092a864886f70d01010105000382010f003082010a"
    "0282010100ac42c162995b1d546f22c4f6ef9ffad7b3bd412c2aefbd39fc1f084558e9a25c7625b1a44526badc3c"
    "d29365bb9a625c0e350ef13996068fbce9b43a329cb17ea7aafa3d3e41ad8236d5aea4417b9d108d864d7e8da477"
    "00c7d2cc4820922ef22f6b969c44a72d77f1f78ea88789b8102fe78b5f96d2aadb7dfc0c9660e081cbb8abd3e39c"
    "063bf6dfac2a13006d4aa87e11e3bc5b3dc9f0b59786db489817ac8dd0089b8ebd5b85e5bfbacbc92f73d506c6df"
    "3481c1c5fb219c4b55c9b14c4c4b2c89407b85e5d908995e27fefde01647ce1e1c7c87fdbf63a86f88154c6b2c75"
    "f21a92b571f71fcb452130f2696490c8f92e979d4d680b640ce2dc348cad7b0203010001";

TEST(MessageInterop, VerifiesJsSignedMessages) {
  for (auto vector : {kJsEd25519Message, kJsRsaMessage}) {
    Bytes wire = hex(vector);
    Message m = decode_message(wire);
    EXPECT_EQ(m.topic, "p2pmq/test");
    EXPECT_EQ(m.data, to_bytes("hello from js"));
    EXPECT_TRUE(m.key);
    auto ok = check_message(m, kSign);
    EXPECT_TRUE(ok) << ok.error().detail;
    EXPECT_EQ(encode_message(m), wire);  // our encoding is byte-identical to js's
    m.data.back() ^= 1;
    EXPECT_EQ(reason(m, kSign), RejectReason::invalid_signature);
  }
  // The Ed25519 message's seed is 32 bytes of 7, as test_key(): js and we agree on the id.
  Message m = decode_message(hex(kJsEd25519Message));
  EXPECT_EQ(m.from, crypto::PeerId::from_public_key(test_key().public_key()).bytes());
  // Ed25519 signatures are deterministic: we produce js's exact signature.
  Message ours =
      make_message(test_key(), "p2pmq/test", to_bytes("hello from js"), *seqno_value(m), kSign);
  EXPECT_EQ(ours.signature, m.signature);
}

TEST(MessageInterop, IdsMatchTheJsMsgIdFn) {
  // Computed in node by the msgIdFn given in message.hpp's MessageIdFn::p2pmq documentation.
  Message ed = decode_message(hex(kJsEd25519Message));
  EXPECT_EQ(to_hex(message_id(ed, MessageIdFn::p2pmq)),
            "88452a704465ee68cd0db2c76b450646be5108c750781f80d297920e0ecfc03b");
  Message rsa = decode_message(hex(kJsRsaMessage));
  EXPECT_EQ(to_hex(message_id(rsa, MessageIdFn::p2pmq)),
            "eb0526587f85a1be70087d2d08017792a51da89a18f99f2e58098a291b3f37c9");
  Message unsigned_msg{std::nullopt, to_bytes("hello from js"), std::nullopt, "t", {}, {}};
  EXPECT_EQ(to_hex(message_id(unsigned_msg, MessageIdFn::p2pmq)),
            "b3ce21484fc2cc73c31c2bd7b232ba0d6890418aa0b95f77c05160b777ef4c39");
}

TEST(MessageId, P2pmqHashesTopicOriginSeqno) {
  Message m = make_message(test_key(), "news", to_bytes("hi"), 42, kSign);
  Bytes input{4};
  append(input, to_bytes("news"));
  append(input, *m.from);
  append(input, seqno_bytes(42));
  auto digest = crypto::sha256(input);
  EXPECT_EQ(message_id(m, MessageIdFn::p2pmq), Bytes(digest.begin(), digest.end()));
  // Same origin and seqno on another topic: another id (seqnos count per topic).
  Message other = make_message(test_key(), "sport", to_bytes("hi"), 42, kSign);
  EXPECT_NE(message_id(other, MessageIdFn::p2pmq), message_id(m, MessageIdFn::p2pmq));
  // The data does not count.
  Message data = make_message(test_key(), "news", to_bytes("other"), 42, kSign);
  EXPECT_EQ(message_id(data, MessageIdFn::p2pmq), message_id(m, MessageIdFn::p2pmq));
  // A topic of 200 bytes takes a 2-byte uvarint.
  Message long_topic = make_message(test_key(), std::string(200, 'x'), {}, 1, kSign);
  Bytes input2 = hex("c801");
  append(input2, to_bytes(std::string(200, 'x')));
  append(input2, *long_topic.from);
  append(input2, seqno_bytes(1));
  auto d2 = crypto::sha256(input2);
  EXPECT_EQ(message_id(long_topic, MessageIdFn::p2pmq), Bytes(d2.begin(), d2.end()));
}

TEST(MessageId, P2pmqFallsBackToContent) {
  Message m = make_message(test_key(), "news", to_bytes("abc"), 1, kNoSign);
  EXPECT_EQ(to_hex(message_id(m, MessageIdFn::p2pmq)),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(message_id(m, MessageIdFn::content), message_id(m, MessageIdFn::p2pmq));
}

TEST(MessageId, StockAndContent) {
  Message m = make_message(test_key(), "news", to_bytes("abc"), 0x0102, kSign);
  Bytes stock = *m.from;
  append(stock, hex("0000000000000102"));
  EXPECT_EQ(message_id(m, MessageIdFn::stock), stock);
  EXPECT_EQ(to_hex(message_id(m, MessageIdFn::content)),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace p2pmq::pubsub

namespace p2pmq::pubsub {
namespace {

// Vectors computed by tests/interop/msgid.mjs (the js side of the p2pmq id) and checked against
// an independent sha256: a js-libp2p node using that msgIdFn agrees with us byte for byte.
TEST(MessageId, MatchesTheJsVectors) {
  crypto::PrivateKey::Seed seed;
  for (size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<uint8_t>(i);
  auto key = crypto::PrivateKey::from_seed(seed);
  auto peer = crypto::PeerId::from_public_key(key.public_key());
  ASSERT_EQ(peer.to_string(), "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB");
  auto id_of = [&](std::string topic, uint64_t seqno) {
    Message m;
    m.from = peer.bytes();
    m.topic = std::move(topic);
    m.seqno = seqno_bytes(seqno);
    return to_hex(message_id(m, MessageIdFn::p2pmq));
  };
  EXPECT_EQ(id_of("t", 1), "b279d9b5d2e1347b92083a6edf22947597c8b162c2cef3e2ac7639cc067a8e8b");
  EXPECT_EQ(id_of("t", 2), "f35c3a61b881053fd825eb6252b200cf8245409239d497edec38374ef90e3783");
  EXPECT_EQ(id_of(std::string(200, 'x'), 0x0102030405060708ull),
            "03272a57b9abc4e8699ace28c071d934a51b74be7de501b49e990ea5875fe48e");
  EXPECT_EQ(id_of("p2pmq/\xc3\xa9", 1),
            "8c80a5df2a5952bf62f51da679426e5572cbc67ffeddf18c87f4b0749cbdb8c9");
  Message content;
  content.data = to_bytes("hello");
  EXPECT_EQ(to_hex(message_id(content, MessageIdFn::p2pmq)),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
}

}  // namespace
}  // namespace p2pmq::pubsub
