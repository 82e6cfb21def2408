#pragma once
// Yamux stream multiplexer (hashicorp/yamux spec.md, libp2p "/yamux/1.0.0"), sans-IO:
// bytes and time go in, events and bytes come out. No sockets, no clocks, no threads.
//
// Frame header (12 bytes, big endian): version(8)=0, type(8), flags(16), stream id(32),
// length(32). Types: 0 data, 1 window update, 2 ping, 3 go away. Flags: SYN 1, ACK 2, FIN 4,
// RST 8. Client stream ids are odd, server ids even, 0 is the session.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string_view>
#include <unordered_map>
#include <variant>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace p2pmq::yamux {

inline constexpr std::string_view kProtocolId = "/yamux/1.0.0";

// The window every stream starts with in both directions; fixed by the spec.
inline constexpr uint32_t kDefaultWindow = 256 * 1024;
inline constexpr size_t kHeaderSize = 12;

enum GoAwayCode : uint32_t {
  kGoAwayNormal = 0,
  kGoAwayProtocolError = 1,
  kGoAwayInternalError = 2,
};

struct Config {
  // Receive window we grant each stream at open (>= 256 KiB: the spec's starting point).
  uint32_t initial_window = kDefaultWindow;
  // Auto-tuning may grow a busy stream's receive window up to this.
  uint32_t max_window = 16 * 1024 * 1024;
  // Window growth summed over all streams: bounds what a peer can make us (and the
  // application reading our streams) buffer.
  size_t max_window_growth_total = 64 * 1024 * 1024;
  // Open streams (both directions, half-closed included).
  size_t max_streams = 1024;
  // Outbound streams the remote has not acknowledged yet (libp2p spec: at most 256).
  size_t max_ack_backlog = 256;
  // Largest data frame we emit: big enough that headers cost nothing, small enough that
  // streams interleave.
  size_t max_frame = 64 * 1024;
  // 0 disables keep-alive pings.
  std::chrono::milliseconds keepalive_interval{30000};
  // An unanswered ping fails the session after this (0 = never).
  std::chrono::milliseconds ping_timeout{20000};
  // Bytes accepted by write() but not yet framed, per stream.
  size_t max_send_buffer = 1 << 20;
  // The same over all streams: many streams written at once (an echo of 64 x 1 MiB) wait for
  // the window instead of holding the whole of what they write.
  size_t max_send_buffer_total = 8 << 20;
  // Ping once at start so window auto-tuning knows the RTT (go-yamux does the same); its
  // reply is due within ping_timeout like any other.
  bool measure_rtt = true;
  // Framed bytes not yet taken for the wire. Past this, data frames wait in the streams' send
  // buffers, and the IO layer stops reading (so a peer that does not read cannot make us queue
  // replies to what it sends).
  size_t max_output = 1 << 20;
  // Ping replies queued and not yet taken for the wire; more pings are left unanswered.
  size_t max_pending_pongs = 16;
  // Seeds the keep-alive ping values: unpredictable values make the remote read our pings to
  // answer them. The IO layer sets it from the OS; 0 picks a fixed seed (tests).
  uint64_t ping_seed = 0;
};

using StreamId = uint32_t;

struct StreamOpened {  // remote SYN
  StreamId id;
};
struct StreamData {
  StreamId id;
  Bytes data;
};
struct StreamEof {  // remote FIN
  StreamId id;
};
struct StreamReset {  // remote RST
  StreamId id;
};
struct StreamWritable {  // send window/buffer space freed after write() refused bytes
  StreamId id;
};
struct GoAwayReceived {
  uint32_t code;
};
struct PingRtt {
  std::chrono::nanoseconds rtt;
};
// An inbound stream we reset at once: over max_streams, or after our GoAway.
struct StreamRefused {
  StreamId id;
  bool limit;  // true: max_streams; false: going away
};
using Event = std::variant<StreamOpened, StreamData, StreamEof, StreamReset, StreamWritable,
                           GoAwayReceived, PingRtt, StreamRefused>;

class Session {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  Session(bool is_client, Config config, TimePoint now);

  // Parses wire bytes; partial frames are kept for the next call. An error means the
  // connection must close (the GoAway is already in the output).
  Result<void> feed(BytesView wire, TimePoint now);
  bool poll_event(Event& out);
  // Frames to write to the wire (may be empty).
  Bytes take_output();
  // Same, trading buffers: `buffer` (cleared) becomes the session's next output buffer, so its
  // capacity is reused instead of growing a fresh vector for every flush.
  void swap_output(Bytes& buffer);
  bool has_output() const { return !out_.empty(); }
  size_t output_size() const { return out_.size(); }
  // At max_output: the IO layer should stop feeding until the output is taken.
  bool output_full() const { return out_.size() >= config_.max_output; }
  // What the session holds for the wire: framed output plus the streams' send buffers.
  size_t buffered_bytes() const { return out_.size() + send_buffered_; }
  uint64_t dropped_pongs() const { return dropped_pongs_; }

  // Sends SYN. Fails after a GoAway either way, at max_streams or max_ack_backlog.
  Result<StreamId> open_stream();
  // Accepts up to the free buffer space; frames leave as the remote window allows. Returns
  // the bytes accepted: 0 means wait for StreamWritable, or (see is_writable) the stream
  // is gone.
  size_t write(StreamId id, BytesView data);
  bool is_writable(StreamId id) const;
  // FIN once the buffered data is out.
  void close_write(StreamId id);
  // RST now; buffered data is dropped.
  void reset(StreamId id);
  // The application consumed n received bytes: may emit a window update.
  void consumed(StreamId id, size_t n);
  void go_away(uint32_t code = kGoAwayNormal);

  TimePoint next_deadline() const;
  // Keep-alive pings and the ping timeout.
  Result<void> on_timer(TimePoint now);

  size_t stream_count() const { return streams_.size(); }
  // After a protocol error, a ping timeout or an error GoAway we sent. A normal GoAway (either
  // way) only stops new streams; the IO layer decides when to drop the connection.
  bool is_closed() const { return closed_; }
  // The smoothed RTT from pings, zero until the first reply.
  std::chrono::nanoseconds rtt() const { return rtt_; }

 private:
  struct Stream {
    // Receive side.
    uint32_t recv_window = 0;   // bytes the remote may still send
    uint32_t window_size = 0;   // current target window (grows with auto-tuning)
    size_t unconsumed = 0;      // delivered, not yet consumed by the application
    size_t pending_credit = 0;  // consumed, not yet returned in a window update
    TimePoint epoch{};          // when the last window update went out (auto-tuning)
    bool remote_fin = false;
    // Send side.
    uint64_t send_window = kDefaultWindow;
    Bytes send_buf;  // accepted bytes waiting for window, from send_off
    size_t send_off = 0;
    bool blocked = false;  // write() refused bytes: owe a StreamWritable
    bool fin_requested = false;
    bool fin_sent = false;
    bool need_ack = false;          // inbound: the next frame we send carries ACK
    bool outbound_unacked = false;  // outbound: no ACK from the remote yet
    uint32_t growth = 0;            // window_size above the initial window

    size_t buffered() const { return send_buf.size() - send_off; }
  };

  bool is_local_id(StreamId id) const { return (id & 1) == (is_client_ ? 1u : 0u); }
  bool was_used(StreamId id) const;
  Stream* find(StreamId id);
  const Stream* find(StreamId id) const;

  void put_header(uint8_t type, uint16_t flags, StreamId id, uint32_t length);
  uint16_t take_ack(Stream& s);
  void put_data(StreamId id, Stream& s, const uint8_t* data, size_t n);
  void flush(StreamId id, Stream& s);
  void wake_if_send_buffer_room();
  void maybe_release(StreamId id, Stream& s);
  void release(StreamId id);
  void send_window_update(StreamId id, Stream& s);
  void push_data_event(StreamId id, const uint8_t* data, size_t n);
  void send_ping();
  size_t output_room() const;
  void refill();
  void put_pong(uint32_t value);

  Result<void> handle_header(const uint8_t* h);
  Result<void> handle_stream_header(uint8_t type, uint16_t flags, StreamId id, uint32_t length);
  void finish_flags(StreamId id, uint16_t flags);
  tl::unexpected<Error> fail_session(Errc code, std::string message, uint32_t goaway_code);

  bool is_client_;
  Config config_;
  TimePoint now_;

  std::unordered_map<StreamId, Stream> streams_;
  uint64_t next_id_;                // our next stream id (64-bit: detects exhaustion)
  StreamId highest_remote_id_ = 0;  // highest id the remote opened
  size_t unacked_outbound_ = 0;
  size_t window_growth_total_ = 0;
  size_t send_buffered_ = 0;       // sum of the streams' buffered()
  bool send_buffer_full_ = false;  // write() refused bytes for max_send_buffer_total
  bool starved_ = false;           // a flush stopped at max_output: refill after the next take

  Bytes out_;
  std::deque<Event> events_;

  // Parser: a header being assembled, then the payload of a data frame streamed out.
  uint8_t hdr_[kHeaderSize] = {};
  size_t hdr_len_ = 0;
  uint64_t payload_left_ = 0;
  StreamId payload_id_ = 0;
  uint16_t payload_flags_ = 0;
  bool payload_deliver_ = false;  // false: skip the payload (stream gone)

  // Pings.
  bool ping_outstanding_ = false;
  uint32_t ping_value_ = 0;
  uint64_t ping_rng_ = 0;  // splitmix64 state
  size_t pending_pongs_ = 0;
  uint64_t dropped_pongs_ = 0;
  TimePoint ping_sent_{};
  TimePoint next_ping_{};
  std::chrono::nanoseconds rtt_{0};

  bool local_goaway_ = false;
  bool remote_goaway_ = false;
  bool closed_ = false;
  Error error_{Errc::closed, "session closed"};
};

}  // namespace p2pmq::yamux
