#include "net/multistream.hpp"

#include <gtest/gtest.h>

#include <set>

namespace p2pmq::multistream {
namespace {

std::function<bool(std::string_view)> supports(std::set<std::string, std::less<>> names) {
  return [names = std::move(names)](std::string_view p) { return names.contains(p); };
}

// Runs both sides against each other until neither has output, delivering `chunk` bytes at a time.
void pump(Dialer& d, Listener& l, Bytes first, size_t chunk = SIZE_MAX) {
  Bytes to_listener = std::move(first);
  Bytes to_dialer = l.take_output();
  while (!to_listener.empty() || !to_dialer.empty()) {
    for (size_t i = 0; i < to_listener.size(); i += chunk) {
      size_t n = std::min(chunk, to_listener.size() - i);
      ASSERT_TRUE(l.feed(BytesView(to_listener).subspan(i, n)));
    }
    for (size_t i = 0; i < to_dialer.size(); i += chunk) {
      size_t n = std::min(chunk, to_dialer.size() - i);
      ASSERT_TRUE(d.feed(BytesView(to_dialer).subspan(i, n)));
    }
    to_listener = d.take_output();
    to_dialer = l.take_output();
  }
}

TEST(MultistreamTest, EncodeMessageMatchesSpecBytes) {
  // 0x13 = 19 = len("/multistream/1.0.0\n"), as on the wire of every libp2p implementation.
  Bytes expected{0x13};
  append(expected, as_bytes("/multistream/1.0.0\n"));
  EXPECT_EQ(encode_message(kProtocolId), expected);
  EXPECT_EQ(encode_message("na"), (Bytes{0x03, 'n', 'a', '\n'}));
}

TEST(MultistreamTest, ReaderSplitsAndBuffersPartialMessages) {
  Bytes wire = encode_message("/a");
  append(wire, encode_message("/bb"));
  wire.push_back(0x42);  // trailing protocol data
  Reader r;
  r.feed(BytesView(wire).first(2));
  auto m = r.next();
  ASSERT_TRUE(m);
  EXPECT_FALSE(*m);
  r.feed(BytesView(wire).subspan(2));
  m = r.next();
  ASSERT_TRUE(m && *m);
  EXPECT_EQ(**m, "/a");
  m = r.next();
  ASSERT_TRUE(m && *m);
  EXPECT_EQ(**m, "/bb");
  EXPECT_EQ(r.take_remaining(), Bytes{0x42});
}

TEST(MultistreamTest, ReaderRejectsMissingNewline) {
  Reader r;
  r.feed(Bytes{0x03, 'a', 'b', 'c'});
  auto m = r.next();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Errc::invalid_input);
}

TEST(MultistreamTest, ReaderRejectsEmptyAndBadPrefix) {
  Reader r;
  r.feed(Bytes{0x00});
  EXPECT_FALSE(r.next());
  Reader r2;
  r2.feed(Bytes{0x80, 0x00});  // non-minimal varint
  EXPECT_FALSE(r2.next());
}

TEST(MultistreamTest, ReaderRejectsOversizedBeforeBuffering) {
  Reader r;
  r.feed(Bytes{0x81, 0x08});  // varint 1025, no body needed to refuse it
  auto m = r.next();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Errc::limit_exceeded);

  // Exactly the limit is fine.
  std::string big(kMaxMessage - 1, 'x');
  Reader ok;
  ok.feed(encode_message(big));
  auto m2 = ok.next();
  ASSERT_TRUE(m2 && *m2);
  EXPECT_EQ(**m2, big);
}

TEST(MultistreamTest, NegotiatesFirstProtocol) {
  Dialer d({"/noise", "/tls/1.0.0"});
  Listener l(supports({"/noise"}));
  pump(d, l, d.start());
  ASSERT_TRUE(d.done());
  ASSERT_TRUE(l.done());
  EXPECT_EQ(d.selected(), "/noise");
  EXPECT_EQ(l.selected(), "/noise");
}

TEST(MultistreamTest, FallsBackOnNa) {
  Dialer d({"/yamux/2.0.0", "/mplex/6.7.0", "/yamux/1.0.0"});
  Listener l(supports({"/yamux/1.0.0"}));
  pump(d, l, d.start(), 1);  // byte by byte
  ASSERT_TRUE(d.done());
  EXPECT_EQ(d.selected(), "/yamux/1.0.0");
  EXPECT_EQ(l.selected(), "/yamux/1.0.0");
}

TEST(MultistreamTest, DialerFailsWhenAllRefused) {
  Dialer d({"/a", "/b"});
  Listener l(supports({"/c"}));
  Bytes wire = d.start();
  ASSERT_TRUE(l.feed(wire));
  ASSERT_TRUE(d.feed(l.take_output()));
  ASSERT_TRUE(l.feed(d.take_output()));
  auto r = d.feed(l.take_output());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unsupported);
  EXPECT_FALSE(d.feed({}));  // stays failed
}

TEST(MultistreamTest, ExactWireExchange) {
  Dialer d({"/noise"});
  Bytes expected = encode_message("/multistream/1.0.0");
  append(expected, encode_message("/noise"));
  EXPECT_EQ(d.start(), expected);

  Listener l(supports({"/noise"}));
  EXPECT_EQ(l.take_output(), encode_message(kProtocolId));  // header sent eagerly
  ASSERT_TRUE(l.feed(expected));
  EXPECT_EQ(l.take_output(), encode_message("/noise"));
}

TEST(MultistreamTest, PipelinedDataReachesBothSides) {
  // The dialer sends its first protocol bytes with the proposal (optimistic), the listener sends
  // its first bytes right after the acknowledgement.
  Dialer d({"/echo"});
  Bytes wire = d.start();
  append(wire, as_bytes("hello"));
  Listener l(supports({"/echo"}));
  ASSERT_TRUE(l.feed(wire));
  ASSERT_TRUE(l.done());
  EXPECT_EQ(as_string(l.take_remaining()), "hello");
  ASSERT_TRUE(l.feed(as_bytes(" again")));  // bytes after done stay for the protocol
  EXPECT_EQ(as_string(l.take_remaining()), " again");

  Bytes back = l.take_output();
  append(back, as_bytes("world"));
  ASSERT_TRUE(d.feed(back));
  ASSERT_TRUE(d.done());
  EXPECT_EQ(as_string(d.take_remaining()), "world");
}

TEST(MultistreamTest, ListenerAnswersNaToLsAndUnknown) {
  Listener l(supports({"/x"}));
  (void)l.take_output();
  Bytes wire = encode_message(kProtocolId);
  append(wire, encode_message("ls"));
  append(wire, encode_message("/y"));
  ASSERT_TRUE(l.feed(wire));
  Bytes expected = encode_message("na");
  append(expected, encode_message("na"));
  EXPECT_EQ(l.take_output(), expected);
  EXPECT_FALSE(l.done());
}

TEST(MultistreamTest, ListenerBoundsAttempts) {
  Listener l(supports({}));
  Bytes wire = encode_message(kProtocolId);
  for (size_t i = 0; i < kMaxAttempts; ++i) append(wire, encode_message("/p" + std::to_string(i)));
  ASSERT_TRUE(l.feed(wire));
  auto r = l.feed(encode_message("/one-more"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::limit_exceeded);
}

TEST(MultistreamTest, WrongHeaderIsAnError) {
  Listener l(supports({"/x"}));
  auto r = l.feed(encode_message("/multistream/2.0.0"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::protocol_violation);

  Dialer d({"/x"});
  (void)d.start();
  auto r2 = d.feed(encode_message("/x"));
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, Errc::protocol_violation);
}

TEST(MultistreamTest, DialerRejectsUnexpectedAnswer) {
  Dialer d({"/x"});
  (void)d.start();
  Bytes wire = encode_message(kProtocolId);
  append(wire, encode_message("/other"));
  auto r = d.feed(wire);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::protocol_violation);
}

TEST(MultistreamTest, ListenerRejectsOversizedLine) {
  Listener l(supports({"/x"}));
  ASSERT_TRUE(l.feed(encode_message(kProtocolId)));
  auto r = l.feed(encode_message(std::string(2000, 'a')));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::limit_exceeded);
}

}  // namespace
}  // namespace p2pmq::multistream
