#include "sync/codec.hpp"

#include <gtest/gtest.h>

#include "pubsub/message.hpp"

namespace p2pmq::sync {
namespace {

crypto::PrivateKey test_key() {
  crypto::PrivateKey::Seed seed;
  seed.fill(3);
  return crypto::PrivateKey::from_seed(seed);
}

Bytes origin_bytes() {
  return crypto::PeerId::from_public_key(test_key().public_key()).bytes();
}

void expect_limit(const Error& e, const std::string& limit) {
  EXPECT_EQ(e.code, Errc::limit_exceeded) << e.to_string();
  EXPECT_NE(e.message.find(limit), std::string::npos) << e.message;
}

TEST(SyncCodec, RequestRoundTrips) {
  std::vector<SyncRequest> requests = {
      {1, LatestQuery{"news", 50}},
      {2, RangeQuery{"news", origin_bytes(), 10, 20}},
      {3, RangeQuery{"news", origin_bytes(), 20, 10}},  // from > to decodes; the server refuses
      {4, SinceQuery{"news", {{origin_bytes(), 7}, {to_bytes("other"), 0}}}},
      {5, SinceQuery{"", {}}},
  };
  for (const auto& r : requests) {
    auto decoded = decode_request(encode_request(r), SyncLimits{});
    ASSERT_TRUE(decoded) << decoded.error().to_string();
    EXPECT_EQ(*decoded, r);
  }
}

TEST(SyncCodec, ResponseRoundTrips) {
  auto m = pubsub::make_message(test_key(), "news", to_bytes("hello"), 9,
                                pubsub::SignaturePolicy::strict_sign);
  Bytes wire = pubsub::encode_message(m);
  std::vector<SyncResponse> responses = {
      {7, Batch{{wire, wire}, true, false}},
      {7, Batch{{}, false, true}},
      {8, ErrorReply{ErrorCode::unknown_topic, "no such topic"}},
      {8, ErrorReply{ErrorCode::bad_range, ""}},
      {8, ErrorReply{ErrorCode::rate_limited, "slow down"}},
      {8, ErrorReply{ErrorCode::too_large, "x"}},
      {8, ErrorReply{ErrorCode::internal, "y"}},
  };
  for (const auto& r : responses) {
    auto decoded = decode_response(encode_response(r), SyncLimits{});
    ASSERT_TRUE(decoded) << decoded.error().to_string();
    EXPECT_EQ(*decoded, r);
  }
  // Batch entries are pubsub Message protobufs that decode to the signed message.
  auto back = decode_message(wire);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, m);
  EXPECT_TRUE(pubsub::check_message(*back, pubsub::SignaturePolicy::strict_sign));
  // (From one entry to two, so the Batch's own length prefix keeps its width.)
  SyncResponse one{1, Batch{{wire}, false, false}};
  SyncResponse two{1, Batch{{wire, wire}, false, false}};
  EXPECT_EQ(encode_response(two).size() - encode_response(one).size(),
            batch_entry_size(wire.size()));
}

TEST(SyncCodec, UnknownErrorCodeReadsAsInternal) {
  // SyncResponse{ error { code: 99 } }: a code from a newer peer.
  Bytes wire = {0x1a, 0x02, 0x08, 0x63};
  auto decoded = decode_response(wire, SyncLimits{});
  ASSERT_TRUE(decoded);
  EXPECT_EQ(std::get<ErrorReply>(decoded->item).code, ErrorCode::internal);
}

TEST(SyncCodec, MalformedAndEmptyRefused) {
  Bytes junk = {0xff, 0xff, 0xff};
  EXPECT_EQ(decode_request(junk, {}).error().code, Errc::invalid_input);
  EXPECT_EQ(decode_response(junk, {}).error().code, Errc::invalid_input);
  Bytes only_id = {0x08, 0x01};
  EXPECT_EQ(decode_request(only_id, {}).error().code, Errc::invalid_input);
  EXPECT_EQ(decode_response(only_id, {}).error().code, Errc::invalid_input);
  EXPECT_EQ(decode_message(junk).error().code, Errc::invalid_input);
}

TEST(SyncCodec, RequestLimits) {
  SyncLimits limits;
  limits.max_count = 100;
  limits.max_range_span = 50;
  limits.max_watermarks = 2;
  limits.max_topic_length = 8;
  limits.max_origin_length = 40;

  auto dec = [&](const SyncRequest& r) { return decode_request(encode_request(r), limits); };
  EXPECT_TRUE(dec({1, LatestQuery{"t", 100}}));
  expect_limit(dec({1, LatestQuery{"t", 101}}).error(), "max_count");
  expect_limit(dec({1, LatestQuery{"toolongtopic", 1}}).error(), "max_topic_length");
  EXPECT_TRUE(dec({1, RangeQuery{"t", origin_bytes(), 1, 50}}));
  expect_limit(dec({1, RangeQuery{"t", origin_bytes(), 1, 51}}).error(), "max_range_span");
  expect_limit(dec({1, RangeQuery{"t", origin_bytes(), 0, UINT64_MAX}}).error(), "max_range_span");
  expect_limit(dec({1, RangeQuery{"t", Bytes(41, 1), 1, 2}}).error(), "max_origin_length");
  EXPECT_TRUE(dec({1, SinceQuery{"t", {{origin_bytes(), 1}, {origin_bytes(), 2}}}}));
  expect_limit(dec({1, SinceQuery{"t", {{Bytes{1}, 1}, {Bytes{2}, 1}, {Bytes{3}, 1}}}}).error(),
               "max_watermarks");
  expect_limit(dec({1, SinceQuery{"t", {{Bytes(41, 1), 1}}}}).error(), "max_origin_length");

  limits.max_request_size = 10;
  expect_limit(dec({1, SinceQuery{"t", {{origin_bytes(), 1}}}}).error(), "max_request_size");
}

TEST(SyncCodec, ResponseLimits) {
  SyncLimits limits;
  limits.max_batch_bytes = 100;
  limits.max_batch_messages = 3;
  limits.max_error_length = 5;
  auto dec = [&](const SyncResponse& r) { return decode_response(encode_response(r), limits); };
  EXPECT_TRUE(dec({1, Batch{{Bytes(50, 1), Bytes(50, 2)}, false, false}}));
  expect_limit(dec({1, Batch{{Bytes(50, 1), Bytes(51, 2)}, false, false}}).error(),
               "max_batch_bytes");
  expect_limit(dec({1, Batch{{Bytes{1}, Bytes{2}, Bytes{3}, Bytes{4}}, false, false}}).error(),
               "max_batch_messages");
  expect_limit(dec({1, ErrorReply{ErrorCode::internal, "too long"}}).error(), "max_error_length");
  limits.max_response_size = 20;
  expect_limit(dec({1, Batch{{Bytes(50, 1)}, false, false}}).error(), "max_response_size");
}

TEST(SyncCodec, FrameReaderSplitsAndBounds) {
  Bytes stream;
  SyncRequest a{1, LatestQuery{"a", 1}}, b{2, SinceQuery{"b", {{Bytes{9}, 4}}}};
  append_framed(stream, encode_request(a));
  append_framed(stream, encode_request(b));
  FrameReader reader(1024);
  std::vector<SyncRequest> got;
  for (uint8_t byte : stream) {  // one byte at a time
    reader.feed(BytesView(&byte, 1));
    for (;;) {
      auto frame = reader.next();
      ASSERT_TRUE(frame);
      if (!*frame) break;
      got.push_back(*decode_request(**frame, {}));
    }
  }
  EXPECT_EQ(got, (std::vector<SyncRequest>{a, b}));
  EXPECT_EQ(reader.buffered(), 0u);

  FrameReader small(4);
  Bytes big;
  append_framed(big, Bytes(5, 0));
  small.feed(BytesView(big).first(1));  // refused from the prefix alone
  auto r = small.next();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::limit_exceeded);
  EXPECT_FALSE(small.next());  // errors are final
}

}  // namespace
}  // namespace p2pmq::sync
