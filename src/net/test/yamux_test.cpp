#include "net/yamux.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <vector>

namespace p2pmq::yamux {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

Config quiet_config() {
  Config c;
  c.measure_rtt = false;  // no startup ping: wire contents are predictable
  return c;
}

Bytes frame(uint8_t type, uint16_t flags, uint32_t id, uint32_t length, size_t payload = 0) {
  Bytes f = {0,
             type,
             static_cast<uint8_t>(flags >> 8),
             static_cast<uint8_t>(flags),
             static_cast<uint8_t>(id >> 24),
             static_cast<uint8_t>(id >> 16),
             static_cast<uint8_t>(id >> 8),
             static_cast<uint8_t>(id),
             static_cast<uint8_t>(length >> 24),
             static_cast<uint8_t>(length >> 16),
             static_cast<uint8_t>(length >> 8),
             static_cast<uint8_t>(length)};
  f.resize(f.size() + payload, 0xab);
  return f;
}

struct Header {
  uint8_t version, type;
  uint16_t flags;
  uint32_t id, length;
};

// Splits a stream of frames into headers (skipping data payloads).
std::vector<Header> parse_frames(const Bytes& wire) {
  std::vector<Header> out;
  size_t i = 0;
  while (i + 12 <= wire.size()) {
    const uint8_t* h = wire.data() + i;
    Header x{h[0], h[1], static_cast<uint16_t>((h[2] << 8) | h[3]),
             (uint32_t{h[4]} << 24) | (uint32_t{h[5]} << 16) | (uint32_t{h[6]} << 8) | h[7],
             (uint32_t{h[8]} << 24) | (uint32_t{h[9]} << 16) | (uint32_t{h[10]} << 8) | h[11]};
    out.push_back(x);
    i += 12 + (x.type == 0 ? x.length : 0);
  }
  EXPECT_EQ(i, wire.size());
  return out;
}

Bytes pattern(size_t n, uint32_t seed) {
  Bytes b(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : b) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<uint8_t>(x);
  }
  return b;
}

struct Peer {
  explicit Peer(bool client, Config c, Clock::time_point now) : s(client, c, now) {}
  Session s;
  bool auto_consume = true;
  std::vector<Event> events;
  std::map<StreamId, Bytes> received;
  std::map<StreamId, size_t> unconsumed;
  std::set<StreamId> opened, eof, reset, writable;
  std::vector<uint32_t> goaways;
  std::vector<std::chrono::nanoseconds> rtts;

  void drain() {
    Event e;
    while (s.poll_event(e)) {
      std::visit(
          [&](auto& v) {
            using E = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<E, StreamOpened>) {
              opened.insert(v.id);
            } else if constexpr (std::is_same_v<E, StreamData>) {
              EXPECT_FALSE(eof.count(v.id)) << "data after EOF";
              append(received[v.id], v.data);
              if (auto_consume) {
                s.consumed(v.id, v.data.size());
              } else {
                unconsumed[v.id] += v.data.size();
              }
            } else if constexpr (std::is_same_v<E, StreamEof>) {
              eof.insert(v.id);
            } else if constexpr (std::is_same_v<E, StreamReset>) {
              reset.insert(v.id);
            } else if constexpr (std::is_same_v<E, StreamWritable>) {
              writable.insert(v.id);
            } else if constexpr (std::is_same_v<E, GoAwayReceived>) {
              goaways.push_back(v.code);
            } else if constexpr (std::is_same_v<E, PingRtt>) {
              rtts.push_back(v.rtt);
            }
          },
          e);
      events.push_back(std::move(e));
    }
  }
  void consume_all(StreamId id) {
    s.consumed(id, unconsumed[id]);
    unconsumed[id] = 0;
  }
};

struct Pair {
  explicit Pair(Config c = quiet_config(), Config sc = quiet_config())
      : client(true, c, now), server(false, sc, now) {}
  Clock::time_point now{std::chrono::seconds(1000)};
  Peer client, server;

  // Moves bytes both ways until both sides are quiet.
  void pump(size_t split = 0) {
    for (int round = 0; round < 100000; ++round) {
      bool moved = transfer(client, server, split);
      moved |= transfer(server, client, split);
      if (!moved) return;
    }
    FAIL() << "pump did not settle";
  }
  // One direction, optionally split into `split`-byte feeds.
  bool transfer(Peer& from, Peer& to, size_t split = 0) {
    if (!from.s.has_output()) return false;
    Bytes out = from.s.take_output();
    size_t step = split == 0 ? out.size() : split;
    for (size_t i = 0; i < out.size(); i += step) {
      auto r = to.s.feed(BytesView(out).subspan(i, std::min(step, out.size() - i)), now);
      EXPECT_TRUE(r) << r.error().to_string();
    }
    to.drain();
    return true;
  }
};

TEST(Yamux, OpenAcceptAndDataBothWays) {
  Pair p;
  auto id = p.client.s.open_stream();
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, 1u);  // client ids are odd
  Bytes syn = p.client.s.take_output();
  auto frames = parse_frames(syn);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, 1);
  EXPECT_EQ(frames[0].flags, 1);  // SYN
  ASSERT_TRUE(p.server.s.feed(syn, p.now));
  p.server.drain();
  EXPECT_TRUE(p.server.opened.count(1));
  EXPECT_FALSE(p.server.s.has_output());  // no implicit ACK

  EXPECT_EQ(p.client.s.write(1, as_bytes("hello")), 5u);
  p.pump();
  EXPECT_EQ(as_string(p.server.received[1]), "hello");

  EXPECT_EQ(p.server.s.write(1, as_bytes("world")), 5u);
  Bytes reply = p.server.s.take_output();
  frames = parse_frames(reply);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].flags, 2);  // the first frame back carries ACK
  ASSERT_TRUE(p.client.s.feed(reply, p.now));
  p.client.drain();
  EXPECT_EQ(as_string(p.client.received[1]), "world");

  auto sid = p.server.s.open_stream();
  ASSERT_TRUE(sid);
  EXPECT_EQ(*sid, 2u);  // server ids are even
  EXPECT_EQ(p.server.s.write(2, as_bytes("x")), 1u);
  p.pump();
  EXPECT_TRUE(p.client.opened.count(2));
  EXPECT_EQ(as_string(p.client.received[2]), "x");
  EXPECT_EQ(p.client.s.stream_count(), 2u);
  EXPECT_EQ(p.server.s.stream_count(), 2u);
}

TEST(Yamux, ByteAtATimeFeeding) {
  Pair p;
  auto id = p.client.s.open_stream();
  ASSERT_TRUE(id);
  Bytes msg = pattern(100000, 7);
  EXPECT_EQ(p.client.s.write(*id, msg), msg.size());
  p.client.s.close_write(*id);
  p.pump(1);
  EXPECT_EQ(p.server.received[*id], msg);
  EXPECT_TRUE(p.server.eof.count(*id));
}

TEST(Yamux, WindowExhaustionAndUpdates) {
  Pair p;
  p.server.auto_consume = false;
  auto id = p.client.s.open_stream();
  ASSERT_TRUE(id);
  const Bytes msg = pattern(4 << 20, 1);
  size_t written = 0;
  int stalls = 0;
  while (p.server.received[*id].size() < msg.size()) {
    size_t n = p.client.s.write(*id, BytesView(msg).subspan(written));
    written += n;
    p.pump();
    // The receiver never holds more than the window it granted.
    ASSERT_LE(p.server.unconsumed[*id], kDefaultWindow);
    if (p.server.unconsumed[*id] == kDefaultWindow) ++stalls;
    p.server.consume_all(*id);
    p.pump();
  }
  EXPECT_EQ(written, msg.size());
  EXPECT_EQ(p.server.received[*id], msg);
  EXPECT_GT(stalls, 4);  // the window really was the limit
  EXPECT_TRUE(p.client.writable.count(*id));
}

TEST(Yamux, WindowUpdatesAreBatched) {
  Pair p;
  p.server.auto_consume = false;
  auto id = p.client.s.open_stream();
  ASSERT_TRUE(id);
  Bytes msg = pattern(200000, 2);
  ASSERT_EQ(p.client.s.write(*id, msg), msg.size());
  p.pump();
  p.server.s.consumed(*id, 100000);  // under half the window: no update yet
  EXPECT_FALSE(p.server.s.has_output());
  p.server.s.consumed(*id, 100000);
  auto frames = parse_frames(p.server.s.take_output());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, 1);
  EXPECT_EQ(frames[0].length, 200000u);
}

TEST(Yamux, WriteBufferIsBounded) {
  Config c = quiet_config();
  c.max_send_buffer = 1000;
  Pair p(c);
  p.server.auto_consume = false;
  auto id = p.client.s.open_stream();
  ASSERT_TRUE(id);
  Bytes big = pattern(kDefaultWindow + 5000, 3);
  // The window's worth goes straight out, then 1000 bytes are buffered.
  EXPECT_EQ(p.client.s.write(*id, big), kDefaultWindow + 1000);
  EXPECT_EQ(p.client.s.write(*id, BytesView(big).subspan(kDefaultWindow + 1000)), 0u);
  EXPECT_TRUE(p.client.s.is_writable(*id));
  p.pump();
  EXPECT_FALSE(p.client.writable.count(*id));
  p.server.consume_all(*id);
  p.pump();
  EXPECT_TRUE(p.client.writable.count(*id));
  EXPECT_EQ(p.server.received[*id].size(), kDefaultWindow + 1000);
}

TEST(Yamux, HalfCloseBothWays) {
  Pair p;
  auto id = p.client.s.open_stream();
  ASSERT_TRUE(id);
  EXPECT_EQ(p.client.s.write(*id, as_bytes("ping")), 4u);
  p.client.s.close_write(*id);
  EXPECT_FALSE(p.client.s.is_writable(*id));
  EXPECT_EQ(p.client.s.write(*id, as_bytes("more")), 0u);
  p.pump();
  EXPECT_EQ(as_string(p.server.received[*id]), "ping");
  EXPECT_TRUE(p.server.eof.count(*id));
  // The other direction stays open.
  EXPECT_TRUE(p.server.s.is_writable(*id));
  EXPECT_EQ(p.server.s.write(*id, as_bytes("pong")), 4u);
  p.pump();
  EXPECT_EQ(as_string(p.client.received[*id]), "pong");
  EXPECT_EQ(p.client.s.stream_count(), 1u);
  p.server.s.close_write(*id);
  p.pump();
  EXPECT_TRUE(p.client.eof.count(*id));
  // Both sides closed: released everywhere.
  EXPECT_EQ(p.client.s.stream_count(), 0u);
  EXPECT_EQ(p.server.s.stream_count(), 0u);
}

TEST(Yamux, FinWaitsForBufferedData) {
  Pair p;
  p.server.auto_consume = false;
  auto id = p.client.s.open_stream();
  ASSERT_TRUE(id);
  Bytes msg = pattern(3 * kDefaultWindow, 4);
  ASSERT_EQ(p.client.s.write(*id, msg), msg.size());
  p.client.s.close_write(*id);
  p.pump();
  EXPECT_FALSE(p.server.eof.count(*id));
  for (int i = 0; i < 20 && !p.server.eof.count(*id); ++i) {
    p.server.consume_all(*id);
    p.pump();
  }
  EXPECT_TRUE(p.server.eof.count(*id));
  EXPECT_EQ(p.server.received[*id], msg);
}

TEST(Yamux, ResetAndLateDataIgnored) {
  Pair p;
  auto id = p.client.s.open_stream();
  ASSERT_TRUE(id);
  EXPECT_EQ(p.client.s.write(*id, as_bytes("abc")), 3u);
  p.pump();
  // The server writes while the client's RST is in flight: the late data must be ignored.
  p.client.s.reset(*id);
  EXPECT_EQ(p.client.s.stream_count(), 0u);
  EXPECT_FALSE(p.client.s.is_writable(*id));
  EXPECT_EQ(p.server.s.write(*id, as_bytes("late")), 4u);
  p.server.s.close_write(*id);
  p.pump();
  EXPECT_TRUE(p.server.reset.count(*id));
  EXPECT_EQ(p.server.s.stream_count(), 0u);
  EXPECT_FALSE(p.client.received.count(*id));
  EXPECT_FALSE(p.client.eof.count(*id));
  EXPECT_FALSE(p.client.s.is_closed());
  EXPECT_EQ(p.server.s.write(*id, as_bytes("x")), 0u);
  EXPECT_FALSE(p.server.s.is_writable(*id));
  // Calls on a released stream are harmless.
  p.client.s.consumed(*id, 10);
  p.client.s.close_write(*id);
  p.client.s.reset(*id);
  EXPECT_FALSE(p.client.s.has_output());
}

TEST(Yamux, GoAway) {
  Pair p;
  auto id = p.client.s.open_stream();
  ASSERT_TRUE(id);
  p.pump();
  // A SYN that crosses our GoAway is refused with RST.
  auto late = p.server.s.open_stream();
  ASSERT_TRUE(late);
  p.client.s.go_away();
  EXPECT_FALSE(p.client.s.open_stream());
  p.pump();
  ASSERT_EQ(p.server.goaways.size(), 1u);
  EXPECT_EQ(p.server.goaways[0], kGoAwayNormal);
  EXPECT_TRUE(p.server.reset.count(*late));
  auto refused = p.server.s.open_stream();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::closed);
  // Existing streams keep working.
  EXPECT_EQ(p.client.s.write(*id, as_bytes("still")), 5u);
  p.pump();
  EXPECT_EQ(as_string(p.server.received[*id]), "still");
  EXPECT_FALSE(p.client.s.is_closed());

  // An error GoAway closes the session.
  p.server.s.go_away(kGoAwayInternalError);
  EXPECT_TRUE(p.server.s.is_closed());
  p.pump();
  ASSERT_EQ(p.client.goaways.size(), 1u);
  EXPECT_EQ(p.client.goaways[0], kGoAwayInternalError);
}

TEST(Yamux, PingRttAndKeepAlive) {
  Config c;  // measure_rtt on
  c.keepalive_interval = 30s;
  c.ping_timeout = 10s;
  Pair p(c, c);
  p.now += 5ms;
  p.pump();
  ASSERT_EQ(p.client.rtts.size(), 1u);
  EXPECT_EQ(p.client.rtts[0], 5ms);
  ASSERT_EQ(p.server.rtts.size(), 1u);
  EXPECT_EQ(p.client.s.rtt(), 5ms);

  // Keep-alive: a ping every interval, answered.
  auto start = p.now - 5ms;
  EXPECT_EQ(p.client.s.next_deadline(), start + 30s);
  p.now = p.client.s.next_deadline();
  ASSERT_TRUE(p.client.s.on_timer(p.now));
  auto frames = parse_frames(p.client.s.take_output());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, 2);
  EXPECT_EQ(frames[0].flags, 1);
  EXPECT_EQ(p.client.s.next_deadline(), p.now + 10s);  // waiting for the reply
  Bytes ping = frame(2, 1, 0, frames[0].length);
  ASSERT_TRUE(p.server.s.feed(ping, p.now));
  Bytes pong = p.server.s.take_output();
  frames = parse_frames(pong);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].flags, 2);  // ACK, same opaque value
  p.now += 1ms;
  ASSERT_TRUE(p.client.s.feed(pong, p.now));
  p.client.drain();
  EXPECT_EQ(p.client.rtts.size(), 2u);
  EXPECT_EQ(p.client.s.next_deadline(), start + 60s);

  // No reply: the session times out.
  p.now = p.client.s.next_deadline();
  ASSERT_TRUE(p.client.s.on_timer(p.now));
  p.client.s.take_output();  // the ping is lost
  p.now = p.client.s.next_deadline();
  auto r = p.client.s.on_timer(p.now);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::timeout);
  EXPECT_TRUE(p.client.s.is_closed());
  frames = parse_frames(p.client.s.take_output());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, 3);
  EXPECT_EQ(frames[0].length, kGoAwayInternalError);
  EXPECT_EQ(p.client.s.next_deadline(), Clock::time_point::max());
}

TEST(Yamux, WindowAutoTuning) {
  Config c;
  c.max_window = 4 << 20;
  Pair p(c, c);
  p.now += 10ms;  // a 10 ms RTT
  p.pump();
  ASSERT_EQ(p.server.s.rtt(), 10ms);
  auto id = p.client.s.open_stream();
  ASSERT_TRUE(id);
  // A fast reader (the clock does not move) grows the window.
  Bytes msg = pattern(8 << 20, 5);
  size_t written = 0;
  while (written < msg.size()) {
    written += p.client.s.write(*id, BytesView(msg).subspan(written));
    p.pump();
  }
  EXPECT_EQ(p.server.received[*id], msg);
  // Now a stalled reader: the grown window lets more than 256 KiB through.
  p.server.auto_consume = false;
  Bytes more = pattern(8 << 20, 6);
  written = 0;
  for (int i = 0; i < 10; ++i) {
    written += p.client.s.write(*id, BytesView(more).subspan(written));
    p.pump();
  }
  // Whatever credit was left over from the first transfer plus the grown window.
  EXPECT_GT(p.server.unconsumed[*id], size_t{2} << 20);
  EXPECT_LE(p.server.unconsumed[*id], size_t{4} << 20);
}

TEST(Yamux, LargerInitialWindowIsAnnounced) {
  Config c = quiet_config();
  c.initial_window = 1 << 20;
  Pair p(c, c);
  p.server.auto_consume = false;
  auto id = p.client.s.open_stream();
  ASSERT_TRUE(id);
  p.pump();  // SYN (+768 KiB) and the server's ACK (+768 KiB)
  Bytes msg = pattern(2 << 20, 8);
  size_t n = p.client.s.write(*id, msg);
  EXPECT_EQ(n, msg.size());
  p.pump();
  EXPECT_EQ(p.server.unconsumed[*id], size_t{1} << 20);
}

Result<void> feed_all(Session& s, std::initializer_list<Bytes> frames) {
  Bytes wire;
  for (auto& f : frames) append(wire, f);
  return s.feed(wire, Clock::time_point{});
}

void expect_protocol_error(Session& s, const Result<void>& r) {
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::protocol_violation);
  EXPECT_TRUE(s.is_closed());
  auto frames = parse_frames(s.take_output());
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back().type, 3);
  EXPECT_EQ(frames.back().length, kGoAwayProtocolError);
  // The session stays failed.
  EXPECT_FALSE(s.feed(frame(2, 1, 0, 1), Clock::time_point{}));
  EXPECT_FALSE(s.open_stream());
}

TEST(Yamux, WindowOverflowIsProtocolError) {
  Session s(false, quiet_config(), Clock::time_point{});
  // Exactly the window is fine, one byte more is not.
  ASSERT_TRUE(feed_all(s, {frame(1, 1, 1, 0), frame(0, 0, 1, kDefaultWindow, kDefaultWindow)}));
  expect_protocol_error(s, feed_all(s, {frame(0, 0, 1, 1, 1)}));
}

TEST(Yamux, BadVersionAndTypeAreProtocolErrors) {
  Session a(false, quiet_config(), Clock::time_point{});
  Bytes f = frame(2, 1, 0, 1);
  f[0] = 1;
  expect_protocol_error(a, a.feed(f, Clock::time_point{}));
  Session b(false, quiet_config(), Clock::time_point{});
  expect_protocol_error(b, feed_all(b, {frame(4, 0, 0, 0)}));
}

TEST(Yamux, FramesForUnknownStreams) {
  {  // data for a remote id never opened
    Session s(false, quiet_config(), Clock::time_point{});
    expect_protocol_error(s, feed_all(s, {frame(0, 0, 5, 3, 3)}));
  }
  {  // window update for one of our ids never opened
    Session s(false, quiet_config(), Clock::time_point{});
    expect_protocol_error(s, feed_all(s, {frame(1, 0, 2, 100)}));
  }
  {  // SYN reusing an id
    Session s(false, quiet_config(), Clock::time_point{});
    ASSERT_TRUE(feed_all(s, {frame(1, 1, 3, 0)}));
    expect_protocol_error(s, feed_all(s, {frame(1, 1, 1, 0)}));
  }
  {  // SYN with our parity
    Session s(false, quiet_config(), Clock::time_point{});
    expect_protocol_error(s, feed_all(s, {frame(0, 1, 4, 0)}));
  }
  {  // stream 0
    Session s(false, quiet_config(), Clock::time_point{});
    expect_protocol_error(s, feed_all(s, {frame(0, 1, 0, 0)}));
  }
  {  // after RST, frames for the id are ignored, big payloads included
    Session s(false, quiet_config(), Clock::time_point{});
    ASSERT_TRUE(feed_all(s, {frame(1, 1, 1, 0), frame(1, 8, 1, 0), frame(0, 0, 1, 70000, 70000),
                             frame(1, 4, 1, 0)}));
    Event e;
    ASSERT_TRUE(s.poll_event(e));
    EXPECT_TRUE(std::holds_alternative<StreamOpened>(e));
    ASSERT_TRUE(s.poll_event(e));
    EXPECT_TRUE(std::holds_alternative<StreamReset>(e));
    EXPECT_FALSE(s.poll_event(e));
    EXPECT_FALSE(s.is_closed());
  }
}

TEST(Yamux, OtherImplementationsFrameShapes) {
  Session s(false, quiet_config(), Clock::time_point{});
  // rust-yamux may open with a data frame carrying SYN; go-yamux puts an error code in the
  // length of a RST window update.
  Bytes wire = frame(0, 1, 1, 3);
  append(wire, as_bytes("abc"));
  append(wire, frame(1, 1, 3, 1000));
  append(wire, frame(1, 8, 3, 42));
  append(wire, frame(0, 4, 1, 0));  // FIN on an empty data frame
  ASSERT_TRUE(s.feed(wire, Clock::time_point{}));
  std::vector<size_t> kinds;
  Event e;
  while (s.poll_event(e)) kinds.push_back(e.index());
  EXPECT_EQ(kinds, (std::vector<size_t>{0, 1, 0, 3, 2}));  // open, data, open, reset, eof
  EXPECT_EQ(s.stream_count(), 1u);
  EXPECT_TRUE(s.is_writable(1));
}

TEST(Yamux, StreamLimitResetsTheStream) {
  Config sc = quiet_config();
  sc.max_streams = 2;
  Pair p(quiet_config(), sc);
  std::vector<StreamId> ids;
  for (int i = 0; i < 3; ++i) {
    auto id = p.client.s.open_stream();
    ASSERT_TRUE(id);
    ids.push_back(*id);
    EXPECT_EQ(p.client.s.write(*id, as_bytes("hi")), 2u);
  }
  p.pump();
  EXPECT_EQ(p.server.s.stream_count(), 2u);
  EXPECT_EQ(p.server.opened.size(), 2u);
  EXPECT_TRUE(p.client.reset.count(ids[2]));
  EXPECT_FALSE(p.client.reset.count(ids[0]));
  EXPECT_FALSE(p.server.received.count(ids[2]));
  EXPECT_FALSE(p.server.s.is_closed());
  EXPECT_EQ(p.client.s.stream_count(), 2u);
  // Our own side is bounded too.
  Config cc = quiet_config();
  cc.max_streams = 1;
  Session s(true, cc, Clock::time_point{});
  ASSERT_TRUE(s.open_stream());
  auto r = s.open_stream();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::limit_exceeded);
}

TEST(Yamux, AckBacklogIsBounded) {
  Config c = quiet_config();
  c.max_ack_backlog = 3;
  Pair p(c);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(p.client.s.open_stream());
  EXPECT_FALSE(p.client.s.open_stream());
  p.pump();
  EXPECT_EQ(p.server.opened.size(), 3u);
  // The server ACKs one stream by writing on it.
  EXPECT_EQ(p.server.s.write(1, as_bytes("ok")), 2u);
  p.pump();
  EXPECT_TRUE(p.client.s.open_stream());
}

TEST(Yamux, SixtyFourStreamsOneMegabyteEach) {
  Pair p;
  constexpr int kStreams = 64;
  constexpr size_t kSize = 1 << 20;
  std::vector<StreamId> ids;
  std::vector<Bytes> up, down;
  std::vector<size_t> up_done(kStreams), down_done(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    auto id = p.client.s.open_stream();
    ASSERT_TRUE(id);
    ids.push_back(*id);
    up.push_back(pattern(kSize, 100 + i));
    down.push_back(pattern(kSize, 200 + i));
  }
  p.pump();
  ASSERT_EQ(p.server.opened.size(), size_t{kStreams});
  for (int round = 0; round < 1000; ++round) {
    bool pending = false;
    for (int i = 0; i < kStreams; ++i) {
      up_done[i] += p.client.s.write(ids[i], BytesView(up[i]).subspan(up_done[i]));
      down_done[i] += p.server.s.write(ids[i], BytesView(down[i]).subspan(down_done[i]));
      if (up_done[i] == kSize) p.client.s.close_write(ids[i]);
      if (down_done[i] == kSize) p.server.s.close_write(ids[i]);
      pending |= up_done[i] < kSize || down_done[i] < kSize;
    }
    p.pump();
    if (!pending) break;
  }
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_EQ(p.server.received[ids[i]], up[i]) << i;
    EXPECT_EQ(p.client.received[ids[i]], down[i]) << i;
    EXPECT_TRUE(p.server.eof.count(ids[i]));
    EXPECT_TRUE(p.client.eof.count(ids[i]));
  }
  EXPECT_EQ(p.client.s.stream_count(), 0u);
  EXPECT_EQ(p.server.s.stream_count(), 0u);
}

TEST(Yamux, SessionIsMovable) {
  Session a(true, quiet_config(), Clock::time_point{});
  ASSERT_TRUE(a.open_stream());
  Session b = std::move(a);
  EXPECT_EQ(b.stream_count(), 1u);
  EXPECT_TRUE(b.has_output());
}

// Finding 1 (docs/security.md): a peer that grants a huge window and never reads cannot make
// the session's output grow past max_output; the rest waits in the bounded send buffer.
TEST(Yamux, OutputIsBoundedWhenThePeerGrantsAHugeWindow) {
  Config c = quiet_config();
  c.max_output = 256 * 1024;
  c.max_send_buffer = 1 << 20;
  auto now = Clock::now();
  Session s(true, c, now);
  auto id = s.open_stream();
  ASSERT_TRUE(id);
  // The peer ACKs and grants almost 4 GiB.
  ASSERT_TRUE(s.feed(frame(1, 2, *id, 0xFFFF0000u), now));
  Bytes big(8 << 20, 0x5a);
  size_t accepted = s.write(*id, big);
  EXPECT_LE(s.output_size(), c.max_output + kHeaderSize + c.max_frame);
  EXPECT_TRUE(s.output_full());
  EXPECT_LE(accepted, c.max_output + c.max_send_buffer);
  EXPECT_LE(s.buffered_bytes(), c.max_output + c.max_send_buffer + kHeaderSize * 8);
  // Taking the output frames what waited: nothing is lost, the output stays bounded.
  size_t wire = 0;
  for (int i = 0; i < 16 && s.has_output(); ++i) {
    Bytes out = s.take_output();
    wire += out.size();
    EXPECT_LE(s.output_size(), c.max_output + kHeaderSize + c.max_frame);
  }
  EXPECT_EQ(s.buffered_bytes(), 0u);
  EXPECT_GE(wire, accepted);
}

// Finding 1: pings from a peer that does not read our replies queue at most max_pending_pongs.
TEST(Yamux, PongRepliesAreBounded) {
  Config c = quiet_config();
  c.max_pending_pongs = 4;
  auto now = Clock::now();
  Session s(false, c, now);
  Bytes pings;
  for (uint32_t i = 0; i < 1000; ++i) append(pings, frame(2, 1, 0, i));
  ASSERT_TRUE(s.feed(pings, now));
  auto frames = parse_frames(s.take_output());
  EXPECT_EQ(frames.size(), 4u);
  EXPECT_EQ(s.dropped_pongs(), 996u);
  // Once the replies are taken for the wire, new pings are answered again.
  ASSERT_TRUE(s.feed(frame(2, 1, 0, 7), now));
  EXPECT_EQ(parse_frames(s.take_output()).size(), 1u);
}

// Finding 1: keep-alive ping values are not a counter a peer can answer without reading, and a
// pong with another value does not count as the reply.
TEST(Yamux, KeepalivePingValuesAreUnpredictableAndChecked) {
  Config c = quiet_config();
  c.keepalive_interval = 1s;
  c.ping_timeout = 1s;
  c.ping_seed = 0x1234;
  auto now = Clock::now();
  Session s(true, c, now);
  now += 1s;
  ASSERT_TRUE(s.on_timer(now));
  auto f = parse_frames(s.take_output());
  ASSERT_EQ(f.size(), 1u);
  EXPECT_NE(f[0].length, 1u);  // not the first value of a counter
  // A guessed reply is ignored; the ping still times out.
  ASSERT_TRUE(s.feed(frame(2, 2, 0, f[0].length + 1), now));
  ASSERT_TRUE(s.feed(frame(2, 2, 0, 1), now));
  now += 1s;
  EXPECT_FALSE(s.on_timer(now));
  // Another seed gives another value.
  c.ping_seed = 0x5678;
  Session other(true, c, now);
  ASSERT_TRUE(other.on_timer(now + 1s));
  auto g = parse_frames(other.take_output());
  ASSERT_EQ(g.size(), 1u);
  EXPECT_NE(g[0].length, f[0].length);
}

// Many streams written at once hold at most max_send_buffer_total between them; each one
// refused for the total is told when it may write again, and every byte arrives.
TEST(Yamux, SendBuffersAreBoundedAcrossStreams) {
  Config c = quiet_config();
  c.max_send_buffer = 1 << 20;
  c.max_send_buffer_total = 2 << 20;
  Pair p(c);
  p.server.auto_consume = false;  // the remote reads nothing: windows stay shut
  constexpr int kStreams = 8;
  std::vector<StreamId> ids;
  std::map<StreamId, Bytes> sent;
  std::map<StreamId, size_t> offset;
  for (int i = 0; i < kStreams; ++i) {
    auto id = p.client.s.open_stream();
    ASSERT_TRUE(id);
    ids.push_back(*id);
    sent[*id] = pattern(1 << 20, static_cast<uint32_t>(i));
  }
  auto write_all = [&] {
    for (auto id : ids) {
      size_t& off = offset[id];
      BytesView rest(sent[id].data() + off, sent[id].size() - off);
      if (!rest.empty()) off += p.client.s.write(id, rest);
    }
  };
  write_all();
  p.pump();
  p.client.drain();
  p.server.drain();
  EXPECT_LE(p.client.s.buffered_bytes(), c.max_send_buffer_total + c.max_output + kHeaderSize * 16);
  // The remote reads; writers woken by StreamWritable write the rest until all is through.
  for (int round = 0; round < 1000; ++round) {
    for (auto id : ids) p.server.consume_all(id);
    p.pump();
    p.client.drain();
    p.server.drain();
    for (auto id : ids) {
      if (p.client.writable.count(id)) {
        p.client.writable.erase(id);
        size_t& off = offset[id];
        BytesView rest(sent[id].data() + off, sent[id].size() - off);
        if (!rest.empty()) off += p.client.s.write(id, rest);
      }
    }
    EXPECT_LE(p.client.s.buffered_bytes(),
              c.max_send_buffer_total + c.max_output + kHeaderSize * 16);
    bool done = true;
    for (auto id : ids) done &= p.server.received[id].size() == sent[id].size();
    if (done) break;
  }
  for (auto id : ids) EXPECT_EQ(p.server.received[id], sent[id]) << "stream " << id;
}

}  // namespace
}  // namespace p2pmq::yamux
