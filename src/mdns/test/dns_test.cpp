#include "mdns/dns.hpp"

#include <gtest/gtest.h>

#include "helpers.hpp"

namespace p2pmq::mdns {
namespace {

using test::Wire;

Message full_message() {
  Message m;
  m.id = 0x1234;
  m.flags = kFlagResponse | kFlagAuthoritative;
  m.questions.push_back(Question{name_from_string("_p2p._udp.local"), RrType::ptr, kClassIn, true});
  const auto instance = name_from_string("abc123._p2p._udp.local");
  const auto host = name_from_string("abc123.local");
  m.answers.push_back(ResourceRecord{name_from_string("_p2p._udp.local"), RrType::ptr, kClassIn,
                                     false, 120, PtrData{instance}});
  m.authorities.push_back(ResourceRecord{instance, static_cast<RrType>(47), kClassIn, true, 120,
                                         RawData{Bytes{1, 2, 3}}});  // NSEC: kept raw
  m.additionals.push_back(
      ResourceRecord{instance, RrType::srv, kClassIn, true, 120, SrvData{0, 0, 4001, host}});
  m.additionals.push_back(ResourceRecord{instance, RrType::txt, kClassIn, true, 120,
                                         TxtData{{"dnsaddr=/ip4/10.0.0.1/tcp/4001", "", "k=v"}}});
  m.additionals.push_back(
      ResourceRecord{host, RrType::a, kClassIn, true, 120, AData{{10, 0, 0, 1}}});
  AaaaData v6;
  v6.address[15] = 1;
  m.additionals.push_back(ResourceRecord{host, RrType::aaaa, kClassIn, true, 120, v6});
  return m;
}

TEST(DnsCodec, RoundTripsEveryRecordType) {
  Message m = full_message();
  auto wire = encode(m);
  ASSERT_TRUE(wire) << wire.error().to_string();
  auto back = decode(*wire);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(*back, m);
}

TEST(DnsCodec, CompressesRepeatedNames) {
  Message m = full_message();
  auto wire = encode(m).value();
  // "_p2p._udp.local" is spelled out once; every later use is (or ends in) a pointer.
  std::string_view text = as_string(wire);
  size_t count = 0;
  for (size_t at = text.find("_p2p"); at != std::string_view::npos; at = text.find("_p2p", at + 1))
    ++count;
  EXPECT_EQ(count, 1u);
}

TEST(DnsCodec, CompressionKeepsCase) {
  Message m;
  m.questions.push_back(Question{name_from_string("_p2p._udp.local"), RrType::ptr});
  m.questions.push_back(Question{name_from_string("_P2P._UDP.local"), RrType::ptr});
  m.questions.push_back(Question{name_from_string("_p2p._udp.local"), RrType::ptr});
  auto wire = encode(m).value();
  // The second shares only "local"; the third is one pointer.
  EXPECT_EQ(wire.size(), 12u + (17 + 4) + (10 + 2 + 4) + (2 + 4));
  auto back = decode(wire).value();
  EXPECT_EQ(back, m);
  EXPECT_TRUE(names_equal(name_from_string("A.b.C"), name_from_string("a.B.c")));
  EXPECT_FALSE(names_equal(name_from_string("a.b"), name_from_string("a.b.c")));
}

TEST(DnsCodec, Names) {
  EXPECT_EQ(name_from_string("_p2p._udp.local."), (DnsName{"_p2p", "_udp", "local"}));
  EXPECT_EQ(name_from_string(""), DnsName{});
  EXPECT_EQ(name_to_string(DnsName{"a", "b"}), "a.b");
  EXPECT_TRUE(name_has_suffix(name_from_string("x._p2p._udp.local"),
                              name_from_string("_p2p._udp.local"), 1));
  EXPECT_FALSE(name_has_suffix(name_from_string("x.y._p2p._udp.local"),
                               name_from_string("_p2p._udp.local"), 1));
}

TEST(DnsCodec, QuestionAndCacheFlushBits) {
  Wire w;
  w.header(0, 0, 1, 1, 0, 0);
  w.label("a").root().u16(12).u16(0x8001);  // QU question
  w.ptr(12);
  size_t at = w.rr_fixed(1, 0x8001, 7);
  w.u8(1).u8(2).u8(3).u8(4);
  w.end_rdata(at);
  auto m = decode(w.b);
  ASSERT_TRUE(m) << m.error().to_string();
  EXPECT_TRUE(m->questions[0].unicast_response);
  EXPECT_EQ(m->questions[0].qclass, kClassIn);
  EXPECT_TRUE(m->answers[0].cache_flush);
  EXPECT_EQ(m->answers[0].rclass, kClassIn);
  EXPECT_EQ(m->answers[0].name, DnsName{"a"});
  EXPECT_EQ(std::get<AData>(m->answers[0].data).address, (std::array<uint8_t, 4>{1, 2, 3, 4}));
  EXPECT_EQ(encode(*m).value(), w.b);
}

TEST(DnsCodec, EmptyTxtAndRootName) {
  Wire w;
  w.header(0, kFlagResponse, 0, 1, 0, 0);
  w.root();
  size_t at = w.rr_fixed(16, 1, 0);
  w.end_rdata(at);
  auto m = decode(w.b);
  ASSERT_TRUE(m) << m.error().to_string();
  EXPECT_TRUE(m->answers[0].name.empty());
  EXPECT_TRUE(std::get<TxtData>(m->answers[0].data).strings.empty());
}

TEST(DnsCodec, IgnoresTrailingBytes) {
  Wire w;
  w.header(0, 0, 0, 0, 0, 0).u8(0xff).u8(0xff);
  EXPECT_TRUE(decode(w.b));
}

// ---- Malformed input -------------------------------------------------------------------------

Bytes question_with_name(const std::function<void(Wire&)>& write_name, size_t prefix = 0) {
  Wire w;
  w.header(0, 0, 1, 0, 0, 0);
  for (size_t i = 0; i < prefix; ++i) w.u8(0);  // padding a pointer may aim at
  write_name(w);
  w.u16(12).u16(1);
  return w.b;
}

TEST(DnsCodecMalformed, PointerToItself) {
  auto wire = question_with_name([](Wire& w) { w.ptr(12); });
  auto m = decode(wire);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("backwards"), std::string::npos);
}

TEST(DnsCodecMalformed, PointerLoopThroughALabel) {
  // 12: "a" then a pointer back to 12: a loop that only moves backwards at its pointer.
  auto wire = question_with_name([](Wire& w) { w.label("a").ptr(12); });
  EXPECT_FALSE(decode(wire));
}

TEST(DnsCodecMalformed, TwoPointersAtEachOther) {
  Wire w;
  w.header(0, 0, 2, 0, 0, 0);
  w.ptr(19).u16(12).u16(1);  // 12: points forward at 19
  w.ptr(12).u16(12).u16(1);  // 19: points back at 12
  EXPECT_FALSE(decode(w.b));
}

TEST(DnsCodecMalformed, ForwardPointer) {
  Wire w;
  w.header(0, 0, 1, 0, 0, 0);
  w.ptr(18).u16(12).u16(1).label("a").root();
  EXPECT_FALSE(decode(w.b));
}

TEST(DnsCodecMalformed, PointerIntoHeader) {
  auto wire = question_with_name([](Wire& w) { w.ptr(4); });
  EXPECT_FALSE(decode(wire));
}

TEST(DnsCodecMalformed, TooManyJumps) {
  // A record of an unknown type whose data holds "a" then a chain of pointers, each to the one
  // before; a second record is named by the last: backwards every time, but too many jumps.
  Wire w;
  w.header(0, kFlagResponse, 0, 2, 0, 0);
  w.root();
  size_t at = w.rr_fixed(99, 1, 10);
  size_t prev = w.size();
  w.label("a").root();
  for (int i = 0; i < 30; ++i) {
    size_t here = w.size();
    w.ptr(prev);
    prev = here;
  }
  w.end_rdata(at);
  w.ptr(prev);
  at = w.rr_fixed(99, 1, 10);
  w.end_rdata(at);
  auto m = decode(w.b);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Errc::limit_exceeded);
  DnsLimits roomy;
  roomy.max_pointer_jumps = 64;
  auto ok = decode(w.b, roomy);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(ok->answers[1].name, DnsName{"a"});
}

TEST(DnsCodecMalformed, NameOverLongThroughPointers) {
  // Each name adds one 63-byte label in front of the previous one: the fifth is over 255 bytes.
  Wire w;
  w.header(0, 0, 5, 0, 0, 0);
  std::string label(63, 'x');
  size_t prev = 0;
  for (int i = 0; i < 5; ++i) {
    size_t here = w.size();
    w.label(label);
    if (i == 0)
      w.root();
    else
      w.ptr(prev);
    w.u16(12).u16(1);
    prev = here;
  }
  auto m = decode(w.b);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("255"), std::string::npos);
}

TEST(DnsCodecMalformed, ReservedLabelTypes) {
  EXPECT_FALSE(decode(question_with_name([](Wire& w) { w.u8(0x40).u8(0); })));
  EXPECT_FALSE(decode(question_with_name([](Wire& w) { w.u8(0x80).u8(0); })));
}

TEST(DnsCodecMalformed, EveryTruncationFails) {
  auto wire = encode(full_message()).value();
  for (size_t n = 0; n < wire.size(); ++n)
    EXPECT_FALSE(decode(BytesView(wire).first(n))) << "prefix of " << n << " bytes decoded";
}

TEST(DnsCodecMalformed, OversizedCounts) {
  Wire w;
  w.header(0, 0, 0xffff, 0, 0, 0);
  EXPECT_EQ(decode(w.b).error().code, Errc::limit_exceeded);
  Wire r;
  r.header(0, kFlagResponse, 0, 0xffff, 0xffff, 0xffff);
  EXPECT_EQ(decode(r.b).error().code, Errc::limit_exceeded);
  // Within the limits but more than the bytes could hold.
  Wire s;
  s.header(0, kFlagResponse, 10, 100, 0, 0);
  s.root().u16(12).u16(1);
  auto m = decode(s.b);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("counts"), std::string::npos);
}

TEST(DnsCodecMalformed, MessageTooLarge) {
  Bytes big(9001, 0);
  EXPECT_EQ(decode(big).error().code, Errc::limit_exceeded);
  EXPECT_FALSE(decode(Bytes(11, 0)));
}

TEST(DnsCodecMalformed, RecordDataOfTheWrongShape) {
  auto record = [](uint16_t type, const std::function<void(Wire&)>& rdata) {
    Wire w;
    w.header(0, kFlagResponse, 0, 1, 0, 0);
    w.label("a").root();
    size_t at = w.rr_fixed(type, 1, 10);
    rdata(w);
    w.end_rdata(at);
    return w.b;
  };
  EXPECT_FALSE(decode(record(1, [](Wire& w) { w.u8(1).u8(2).u8(3); })));         // A: 3 bytes
  EXPECT_FALSE(decode(record(28, [](Wire& w) { w.u32(1); })));                   // AAAA: 4 bytes
  EXPECT_FALSE(decode(record(12, [](Wire& w) { w.label("b").root().u8(9); })));  // PTR: extra
  EXPECT_FALSE(decode(record(12, [](Wire& w) { w.label("b"); })));        // PTR: name runs out
  EXPECT_FALSE(decode(record(16, [](Wire& w) { w.u8(5).raw("abc"); })));  // TXT: overrun
  EXPECT_FALSE(decode(record(33, [](Wire& w) { w.u16(0).u16(0); })));     // SRV: short
  EXPECT_TRUE(decode(record(33, [](Wire& w) { w.u16(0).u16(0).u16(80).ptr(12); })));
  EXPECT_TRUE(decode(record(99, [](Wire& w) { w.u8(0xc0).u8(0xff); })));  // unknown: raw
  // Record data longer than the message.
  Wire w;
  w.header(0, kFlagResponse, 0, 1, 0, 0);
  w.root();
  w.rr_fixed(16, 1, 10);
  w.b[w.size() - 1] = 200;
  w.u8(3).raw("abc");
  EXPECT_FALSE(decode(w.b));
}

TEST(DnsCodecMalformed, TooManyTxtStrings) {
  Wire w;
  w.header(0, kFlagResponse, 0, 1, 0, 0);
  w.root();
  size_t at = w.rr_fixed(16, 1, 10);
  for (int i = 0; i < 65; ++i) w.u8(0);
  w.end_rdata(at);
  EXPECT_EQ(decode(w.b).error().code, Errc::limit_exceeded);
}

TEST(DnsCodecEncode, RefusesWhatCannotBeWritten) {
  Message m;
  m.questions.push_back(Question{DnsName{std::string(64, 'a')}, RrType::ptr});
  EXPECT_FALSE(encode(m));
  m.questions[0].name = DnsName{"a", "", "b"};
  EXPECT_FALSE(encode(m));
  m.questions[0].name = DnsName(5, std::string(63, 'a'));  // 5 * 64 + 1 bytes
  EXPECT_FALSE(encode(m));
  m.questions.clear();
  m.answers.push_back(ResourceRecord{DnsName{"a"}, RrType::txt, kClassIn, false, 1,
                                     TxtData{{std::string(256, 'x')}}});
  EXPECT_FALSE(encode(m));
  m.answers[0].data = PtrData{DnsName{"b"}};  // PTR data in a TXT record
  EXPECT_FALSE(encode(m));
  m.answers[0].data = RawData{Bytes{1}};  // raw data fits any type
  EXPECT_TRUE(encode(m));
}

}  // namespace
}  // namespace p2pmq::mdns
