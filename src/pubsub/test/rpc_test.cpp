#include "pubsub/rpc.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "core/varint.hpp"
#include "libp2p/pubsub.pb.h"

namespace p2pmq::pubsub {
namespace {

Bytes hex(std::string_view h) {
  Bytes out;
  if (!from_hex(h, out)) throw std::invalid_argument("bad hex in test");
  return out;
}

Bytes id(uint8_t b, size_t n = 20) {
  return Bytes(n, b);
}

// One of everything the RPC can carry.
Rpc full_rpc() {
  Rpc rpc;
  rpc.subscriptions = {{true, "alpha"}, {false, "beta"}};
  Message signed_msg{hex("0024080112"), to_bytes("payload"), Bytes(8, 1),
                     "alpha",           Bytes(64, 0xee),     hex("080112")};
  Message bare{std::nullopt, {}, std::nullopt, "beta", std::nullopt, std::nullopt};
  rpc.publish = {signed_msg, bare};
  rpc.control.ihave = {{"alpha", {id(1), id(2)}}, {"beta", {}}};
  rpc.control.iwant = {{{id(3)}}};
  rpc.control.graft = {{"alpha"}};
  rpc.control.prune = {{"beta", {{hex("1220aa"), hex("bbcc")}, {hex("0024"), std::nullopt}}, 60},
                       {"gamma", {}, std::nullopt}};
  rpc.control.idontwant = {{{id(4), id(5, 32)}}};
  return rpc;
}

TEST(RpcCodec, RoundTripsEveryPart) {
  Rpc rpc = full_rpc();
  auto decoded = decode_rpc(encode_rpc(rpc), RpcLimits{});
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  EXPECT_EQ(*decoded, rpc);
}

TEST(RpcCodec, RoundTripsEmptyRpc) {
  EXPECT_TRUE(encode_rpc(Rpc{}).empty());
  auto decoded = decode_rpc({}, RpcLimits{});
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(decoded->empty());
}

TEST(RpcCodec, MatchesHandBuiltWireBytes) {
  Rpc rpc;
  rpc.subscriptions = {{true, "t"}};
  rpc.publish = {{hex("01"), hex("aa"), hex("0007"), "t", hex("55"), hex("66")}};
  rpc.control.ihave = {{"t", {hex("0102")}}};
  rpc.control.iwant = {{{hex("03")}}};
  rpc.control.graft = {{"g"}};
  rpc.control.prune = {{"p", {{hex("09"), hex("0a")}}, 60}};
  rpc.control.idontwant = {{{hex("04")}}};
  // clang-format off
  Bytes wire = hex(
      "0a05" "0801" "120174"                           // 1 subscriptions: subscribe, topicid
      "1213" "0a0101" "1201aa" "1a020007"              // 2 publish: from, data, seqno,
             "220174" "2a0155" "320166"                //   topic, signature, key
      "1a27"                                           // 3 control
        "0a07" "0a0174" "12020102"                     //   1 ihave: topicID, messageIDs
        "1203" "0a0103"                                //   2 iwant: messageIDs
        "1a03" "0a0167"                                //   3 graft: topicID
        "220d" "0a0170" "1206" "0a0109" "12010a" "183c"  // 4 prune: topicID, PeerInfo, backoff
        "2a03" "0a0104");                              //   5 idontwant: messageIDs
  // clang-format on
  EXPECT_EQ(to_hex(encode_rpc(rpc)), to_hex(wire));
  auto decoded = decode_rpc(wire, RpcLimits{});
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, rpc);
}

// The hand-written encoder is protobuf's own encoding: protobuf parses it as the schema and
// serialises it back byte for byte, and encoded_size() is its exact size.
TEST(RpcCodec, EncodingIsProtobufsOwn) {
  Rpc rpc = full_rpc();
  Message no_data{hex("0024080112"), {}, Bytes(8, 2), "", std::nullopt, std::nullopt, false};
  rpc.publish.push_back(no_data);
  rpc.publish.push_back(Message{std::nullopt, Bytes(300, 7), std::nullopt, std::string(200, 't'),
                                std::nullopt, std::nullopt});
  rpc.control.prune.push_back({"delta", {}, uint64_t{1} << 40});
  rpc.control.ihave.push_back({std::string(130, 'x'), {id(9, 200)}});
  Rpc unsubscribe_empty_topic;
  unsubscribe_empty_topic.subscriptions = {{false, ""}};
  for (const Rpc& r : {rpc, Rpc{}, unsubscribe_empty_topic}) {
    Bytes ours = encode_rpc(r);
    EXPECT_EQ(encoded_size(r), ours.size());
    ::libp2p::pubsub::RPC parsed;
    ASSERT_TRUE(parsed.ParseFromArray(ours.data(), static_cast<int>(ours.size())));
    std::string again = parsed.SerializeAsString();
    EXPECT_EQ(to_hex(Bytes(again.begin(), again.end())), to_hex(ours));
    Bytes framed;
    append_framed_rpc(framed, r);
    Bytes expected;
    varint_append(expected, ours.size());
    expected.insert(expected.end(), ours.begin(), ours.end());
    EXPECT_EQ(framed, expected);
  }
  for (const auto& m : rpc.publish) {
    ::libp2p::pubsub::Message parsed;
    Bytes ours = encode_message(m);
    ASSERT_TRUE(parsed.ParseFromArray(ours.data(), static_cast<int>(ours.size())));
    std::string again = parsed.SerializeAsString();
    EXPECT_EQ(to_hex(Bytes(again.begin(), again.end())), to_hex(ours));
  }
}

TEST(RpcCodec, ReadsAbsentFieldsAndSkipsUnknownOnes) {
  // A message with only a topic, an unknown field 9 (varint) at the top, and an empty control.
  Bytes wire =
      hex("1203"
          "220174"
          "4801"
          "1a00");
  auto decoded = decode_rpc(wire, RpcLimits{});
  ASSERT_TRUE(decoded) << decoded.error().to_string();
  ASSERT_EQ(decoded->publish.size(), 1u);
  EXPECT_EQ(decoded->publish[0], (Message{std::nullopt, {}, std::nullopt, "t", {}, {}, false}));
  EXPECT_TRUE(decoded->control.empty());
  // A message without topic reads as the empty topic (go's proto makes it optional too).
  auto no_topic = decode_rpc(hex("1203"
                                 "1201aa"),
                             RpcLimits{});
  ASSERT_TRUE(no_topic);
  EXPECT_EQ(no_topic->publish[0].topic, "");
}

TEST(RpcCodec, RejectsMalformedProtobuf) {
  Bytes wire = encode_rpc(full_rpc());
  for (size_t cut : {size_t{1}, wire.size() / 2, wire.size() - 1}) {
    auto r = decode_rpc(BytesView(wire).first(cut), RpcLimits{});
    ASSERT_FALSE(r) << cut;
    EXPECT_EQ(r.error().code, Errc::invalid_input);
  }
  EXPECT_FALSE(decode_rpc(hex("0f"), RpcLimits{}));          // field 1 with wire type 7
  EXPECT_FALSE(decode_rpc(hex("0a05080112"), RpcLimits{}));  // length past the end
}

TEST(RpcCodec, EncodedSizeMatchesEncoding) {
  for (const auto& m : full_rpc().publish) {
    Rpc one;
    one.publish = {m};
    EXPECT_EQ(encoded_size(m), encode_rpc(one).size());
  }
  Message big{Bytes(40, 1),          Bytes(300000, 2), Bytes(8, 3),
              std::string(200, 't'), Bytes(64, 4),     Bytes(300, 5)};
  Rpc one;
  one.publish = {big};
  EXPECT_EQ(encoded_size(big), encode_rpc(one).size());
  EXPECT_EQ(encoded_size(big),
            encode_message(big).size() + 1 + varint_size(encode_message(big).size()));
}

// decode_rpc with `limits`, expecting success and `dropped` items dropped.
Rpc decode_dropping(const Rpc& rpc, const RpcLimits& limits, size_t dropped) {
  RpcDecodeStats stats;
  auto r = decode_rpc(encode_rpc(rpc), limits, &stats);
  EXPECT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(stats.dropped, dropped);
  return r ? *r : Rpc{};
}

TEST(RpcLimits, AFrameOverMaxRpcSizeIsRefused) {
  Rpc rpc = full_rpc();
  Bytes wire = encode_rpc(rpc);
  RpcLimits l;
  l.max_rpc_size = wire.size() - 1;
  auto r = decode_rpc(wire, l);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::limit_exceeded);
  EXPECT_NE(r.error().message.find("max_rpc_size"), std::string::npos);
  l.max_rpc_size = wire.size();
  EXPECT_TRUE(decode_rpc(wire, l));
}

// go and rust truncate over-long lists; resetting the stream would lose every frame behind it.
TEST(RpcLimits, CountsOverTheirBoundsAreTruncatedNotRefused) {
  Rpc rpc = full_rpc();
  RpcLimits l;
  l.max_subscriptions = 1;
  EXPECT_EQ(decode_dropping(rpc, l, 1).subscriptions, (std::vector<SubOpts>{{true, "alpha"}}));
  l = {};
  l.max_messages = 1;
  EXPECT_EQ(decode_dropping(rpc, l, 1).publish.size(), 1u);
  l = {};
  l.max_control_entries = 4;  // ihave 2 + iwant 1 + idontwant 2: the last idontwant id goes
  Rpc got = decode_dropping(rpc, l, 1);
  ASSERT_EQ(got.control.idontwant.size(), 1u);
  EXPECT_EQ(got.control.idontwant[0].message_ids, std::vector<MessageId>{id(4)});
  l.max_control_entries = 5;
  EXPECT_EQ(decode_dropping(rpc, l, 0), rpc);
  l = {};
  l.max_control_messages = 6;  // graft 1 + prune 2 + ihave 2 + iwant 1: idontwant (2 ids) goes
  EXPECT_TRUE(decode_dropping(rpc, l, 3).control.idontwant.empty());
  l = {};
  l.max_px_peers = 1;
  EXPECT_EQ(decode_dropping(rpc, l, 1).control.prune[0].peers.size(), 1u);
  l = {};
  l.max_message_id_length = 31;  // the 32-byte idontwant id
  EXPECT_EQ(decode_dropping(rpc, l, 1).control.idontwant[0].message_ids.size(), 1u);
}

TEST(RpcLimits, EntriesWithOverlongTopicsAreDropped) {
  RpcLimits l;
  l.max_topic_length = 3;
  Rpc rpc;
  rpc.control.graft = {{"long"}, {"ok"}};
  rpc.subscriptions = {{true, "long"}, {true, "abc"}};
  rpc.publish = {{std::nullopt, {}, std::nullopt, "long", std::nullopt, std::nullopt}};
  Rpc got = decode_dropping(rpc, l, 3);
  EXPECT_EQ(got.control.graft, (std::vector<ControlGraft>{{"ok"}}));
  EXPECT_EQ(got.subscriptions, (std::vector<SubOpts>{{true, "abc"}}));
  EXPECT_TRUE(got.publish.empty());
}

// go refuses frames over 1 MiB: a full-size payload with the largest envelope (RSA-8192 key
// and signature, longest topic) must still fit one, and what we send we also accept.
TEST(RpcLimits, AFullSizeMessageFitsGosFrameLimit) {
  Rpc rpc;
  rpc.publish = {{Bytes(38, 1), Bytes(kMaxMessageDataSize, 2), Bytes(8, 3), std::string(256, 't'),
                  Bytes(1024, 4), Bytes(1100, 5)}};
  EXPECT_LE(encoded_size(rpc.publish[0]), kMaxEncodedMessageSize);
  EXPECT_LE(encode_rpc(rpc).size(), kMaxOutboundRpcSize);
  EXPECT_TRUE(decode_rpc(encode_rpc(rpc), RpcLimits{}));
}

Bytes framed(const Rpc& rpc) {
  Bytes out;
  append_framed_rpc(out, rpc);
  return out;
}

TEST(RpcReader, SplitsAStreamFedByteByByte) {
  Rpc a = full_rpc();
  Rpc b;
  b.subscriptions = {{true, "x"}};
  Bytes stream = framed(a);
  append_framed_rpc(stream, Rpc{});  // an empty RPC is a 0 length prefix
  append_framed_rpc(stream, b);
  EXPECT_EQ(stream[framed(a).size()], 0);

  RpcReader reader;
  std::vector<Rpc> got;
  for (uint8_t byte : stream) {
    reader.feed(BytesView(&byte, 1));
    for (;;) {
      auto r = reader.next();
      ASSERT_TRUE(r) << r.error().to_string();
      if (!*r) break;
      got.push_back(std::move(**r));
    }
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], a);
  EXPECT_TRUE(got[1].empty());
  EXPECT_EQ(got[2], b);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(RpcReader, ReadsSeveralFramesFromOneFeed) {
  Rpc a = full_rpc();
  Bytes stream = framed(a);
  append(stream, framed(a));
  Bytes tail = framed(a);
  append(stream, BytesView(tail).first(5));
  RpcReader reader;
  reader.feed(stream);
  for (int i = 0; i < 2; ++i) {
    auto r = reader.next();
    ASSERT_TRUE(r && *r);
    EXPECT_EQ(**r, a);
  }
  auto partial = reader.next();
  ASSERT_TRUE(partial);
  EXPECT_FALSE(*partial);
  EXPECT_EQ(reader.buffered(), 5u);
  reader.feed(BytesView(tail).subspan(5));
  auto last = reader.next();
  ASSERT_TRUE(last && *last);
  EXPECT_EQ(**last, a);
}

TEST(RpcReader, RefusesAnOversizedPrefixBeforeItsBody) {
  RpcLimits l;
  l.max_rpc_size = 100;
  RpcReader reader(l);
  Bytes prefix;
  varint_append(prefix, 101);
  reader.feed(prefix);
  auto r = reader.next();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::limit_exceeded);
  EXPECT_NE(r.error().message.find("max_rpc_size"), std::string::npos);
  // The error is final.
  reader.feed(Bytes(101, 0));
  EXPECT_FALSE(reader.next());
  EXPECT_EQ(reader.buffered(), prefix.size());

  RpcReader exact(l);
  Bytes ok;
  varint_append(ok, 100);
  exact.feed(ok);
  auto waiting = exact.next();
  ASSERT_TRUE(waiting);
  EXPECT_FALSE(*waiting);
}

TEST(RpcReader, RefusesBadPrefixesAndBadBodies) {
  RpcReader overlong;
  overlong.feed(hex("8000"));  // non-minimal varint
  EXPECT_FALSE(overlong.next());

  RpcReader huge;
  huge.feed(hex("ffffffffffffffffff7f"));
  auto r = huge.next();
  ASSERT_FALSE(r);

  RpcReader bad_body;
  bad_body.feed(
      hex("01"
          "0f"));
  auto b = bad_body.next();
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::invalid_input);
}

size_t total_ids(const std::vector<Rpc>& parts, auto member) {
  size_t n = 0;
  for (const auto& p : parts)
    for (const auto& e : p.control.*member) n += e.message_ids.size();
  return n;
}

template <class T>
void extend(std::vector<T>& out, const std::vector<T>& in) {
  out.insert(out.end(), in.begin(), in.end());
}

// Concatenates the parts back; adjacent IHAVE pieces of one topic merge.
Rpc merge(const std::vector<Rpc>& parts) {
  Rpc out;
  for (const auto& p : parts) {
    extend(out.subscriptions, p.subscriptions);
    extend(out.publish, p.publish);
    extend(out.control.graft, p.control.graft);
    extend(out.control.prune, p.control.prune);
    for (const auto& e : p.control.ihave) {
      if (!out.control.ihave.empty() && out.control.ihave.back().topic == e.topic &&
          !e.message_ids.empty())
        extend(out.control.ihave.back().message_ids, e.message_ids);
      else
        out.control.ihave.push_back(e);
    }
    for (const auto& e : p.control.iwant) {
      if (out.control.iwant.empty()) out.control.iwant.emplace_back();
      extend(out.control.iwant.back().message_ids, e.message_ids);
    }
    for (const auto& e : p.control.idontwant) {
      if (out.control.idontwant.empty()) out.control.idontwant.emplace_back();
      extend(out.control.idontwant.back().message_ids, e.message_ids);
    }
  }
  return out;
}

TEST(RpcSplit, KeepsASmallRpcWhole) {
  Rpc rpc = full_rpc();
  auto parts = split_rpc(rpc, encode_rpc(rpc).size());
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0], rpc);
}

TEST(RpcSplit, SplitsMessagesAndControlWithinTheLimit) {
  Rpc rpc;
  for (int i = 0; i < 50; ++i) rpc.subscriptions.push_back({true, "topic-" + std::to_string(i)});
  for (int i = 0; i < 40; ++i)
    rpc.publish.push_back({Bytes(38, 1), Bytes(size_t(100 + i * 37), uint8_t(i)),
                           Bytes(8, uint8_t(i)), "topic", Bytes(64, 9), std::nullopt});
  for (int t = 0; t < 3; ++t) {
    ControlIHave ih{"topic-" + std::to_string(t), {}};
    for (int i = 0; i < 300; ++i) ih.message_ids.push_back(id(uint8_t(i), 32));
    rpc.control.ihave.push_back(ih);
  }
  rpc.control.iwant = {{std::vector<MessageId>(500, id(7, 32))}};
  rpc.control.idontwant = {{std::vector<MessageId>(500, id(8, 32))}};
  rpc.control.graft = {{"g1"}, {"g2"}};
  rpc.control.prune = {{"p", {{Bytes(38, 1), Bytes(200, 2)}}, 60}};

  const size_t max = 4096;
  auto parts = split_rpc(rpc, max);
  ASSERT_GT(parts.size(), 10u);
  for (const auto& p : parts) {
    EXPECT_LE(encode_rpc(p).size(), max);
    EXPECT_FALSE(p.empty());
    auto back = decode_rpc(encode_rpc(p), RpcLimits{});
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, p);
  }
  EXPECT_EQ(total_ids(parts, &ControlMessage::ihave), 900u);
  EXPECT_EQ(merge(parts), rpc);
}

TEST(RpcSplit, AMessageOverTheLimitGoesAlone) {
  Rpc rpc;
  rpc.publish = {{std::nullopt, Bytes(10, 1), std::nullopt, "t", std::nullopt, std::nullopt},
                 {std::nullopt, Bytes(5000, 2), std::nullopt, "t", std::nullopt, std::nullopt},
                 {std::nullopt, Bytes(20, 3), std::nullopt, "t", std::nullopt, std::nullopt}};
  auto parts = split_rpc(rpc, 1000);
  ASSERT_EQ(parts.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(parts[i].publish, std::vector<Message>{rpc.publish[i]});
}

// The IWANT reply for 1500 small messages, and 5000+ IHAVE ids: each part stays within the
// counts a p2pmq receiver takes, so nothing is truncated between two p2pmq nodes.
TEST(RpcSplit, SplitsByCountAsWellAsBytes) {
  Rpc rpc;
  for (int i = 0; i < 1500; ++i)
    rpc.publish.push_back({Bytes(38, 1), Bytes(16, 2), Bytes(8, 3), "t", Bytes(64, 4), {}});
  for (int i = 0; i < 2500; ++i) rpc.subscriptions.push_back({true, "t" + std::to_string(i)});
  rpc.control.ihave = {{"t", std::vector<MessageId>(7000, id(1, 32))}};
  RpcLimits limits;
  auto parts = split_rpc(rpc, kMaxOutboundRpcSize, limits);
  size_t messages = 0, subscriptions = 0;
  for (const auto& p : parts) {
    RpcDecodeStats stats;
    auto back = decode_rpc(encode_rpc(p), limits, &stats);
    ASSERT_TRUE(back);
    EXPECT_EQ(stats.dropped, 0u);
    EXPECT_LE(p.publish.size(), limits.max_messages);
    EXPECT_LE(p.subscriptions.size(), limits.max_subscriptions);
    messages += p.publish.size();
    subscriptions += p.subscriptions.size();
  }
  EXPECT_EQ(messages, 1500u);
  EXPECT_EQ(subscriptions, 2500u);
  EXPECT_EQ(total_ids(parts, &ControlMessage::ihave), 7000u);
}

TEST(RpcSplit, PacksTightly) {
  // 1000 ids of 32 bytes in IWANT: each costs 34 bytes, so a 64 KiB limit needs 1 part... and a
  // 10 KiB limit needs 4 (within a few bytes of the ideal 34000 / 10240).
  Rpc rpc;
  rpc.control.iwant = {{std::vector<MessageId>(1000, id(1, 32))}};
  RpcLimits no_control_bound;
  no_control_bound.max_control_size = kMaxOutboundRpcSize;
  EXPECT_EQ(split_rpc(rpc, 64 * 1024, no_control_bound).size(), 1u);
  auto parts = split_rpc(rpc, 10 * 1024, no_control_bound);
  EXPECT_EQ(parts.size(), 4u);
  EXPECT_EQ(total_ids(parts, &ControlMessage::iwant), 1000u);
}

// Bytes of subscriptions and control fields in an encoded RPC, counted as rust-libp2p's codec
// does before it decodes (fields 1 and 3, tag and length included).
size_t control_bytes(const Rpc& rpc) {
  size_t n = encode_rpc(rpc).size();
  for (const auto& m : rpc.publish) n -= encoded_size(m);
  return n;
}

// rust-libp2p fails the stream on an RPC with over 16 KiB of subscriptions and control, so
// ours stay under that however many ids and topics one heartbeat gathers; messages beside them
// are not held to it.
TEST(RpcSplit, SubscriptionsAndControlStayWithinRustsControlSize) {
  Rpc rpc;
  for (int t = 0; t < 300; ++t) rpc.subscriptions.push_back({true, "topic-" + std::to_string(t)});
  rpc.control.ihave = {{"a", std::vector<MessageId>(2000, id(1, 46))}};
  rpc.control.iwant = {{std::vector<MessageId>(2000, id(2, 46))}};
  rpc.control.graft = {{"a"}, {"b"}};
  Message big;
  big.topic = "a";
  big.data = Bytes(100 * 1024, 7);
  rpc.publish = {big};
  RpcLimits limits;
  auto parts = split_rpc(rpc, kMaxOutboundRpcSize, limits);
  EXPECT_GE(parts.size(), (2 * 2000 * 48) / limits.max_control_size);
  size_t subscriptions = 0, grafts = 0, messages = 0;
  for (const auto& p : parts) {
    EXPECT_LE(control_bytes(p), limits.max_control_size);
    subscriptions += p.subscriptions.size();
    grafts += p.control.graft.size();
    messages += p.publish.size();
  }
  EXPECT_EQ(subscriptions, 300u);
  EXPECT_EQ(grafts, 2u);
  EXPECT_EQ(messages, 1u);
  EXPECT_EQ(total_ids(parts, &ControlMessage::ihave), 2000u);
  EXPECT_EQ(total_ids(parts, &ControlMessage::iwant), 2000u);
  // A small RPC is not touched.
  Rpc small;
  small.control.iwant = {{std::vector<MessageId>(10, id(3, 46))}};
  EXPECT_EQ(split_rpc(small, kMaxOutboundRpcSize, limits).size(), 1u);
}

}  // namespace
}  // namespace p2pmq::pubsub
