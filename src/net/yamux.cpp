#include "net/yamux.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

namespace p2pmq::yamux {

namespace {

constexpr uint8_t kTypeData = 0;
constexpr uint8_t kTypeWindowUpdate = 1;
constexpr uint8_t kTypePing = 2;
constexpr uint8_t kTypeGoAway = 3;

constexpr uint16_t kFlagSyn = 1;
constexpr uint16_t kFlagAck = 2;
constexpr uint16_t kFlagFin = 4;
constexpr uint16_t kFlagRst = 8;

constexpr uint64_t kMaxWindow = std::numeric_limits<uint32_t>::max();

uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace

Session::Session(bool is_client, Config config, TimePoint now)
    : is_client_(is_client), config_(config), now_(now), next_id_(is_client ? 1 : 2) {
  // The spec fixes the starting window at 256 KiB; we can only grant more, never less.
  config_.initial_window = std::max(config_.initial_window, kDefaultWindow);
  config_.max_window = std::max(config_.max_window, config_.initial_window);
  config_.max_frame = std::clamp<size_t>(config_.max_frame, 1, 16 * 1024 * 1024);
  config_.max_send_buffer = std::max<size_t>(config_.max_send_buffer, 1);
  config_.max_send_buffer_total =
      std::max<size_t>(config_.max_send_buffer_total, config_.max_send_buffer);
  config_.max_output = std::max<size_t>(config_.max_output, kHeaderSize + config_.max_frame);
  ping_rng_ = config_.ping_seed;
  next_ping_ = now + config_.keepalive_interval;
  if (config_.measure_rtt) send_ping();
}

// ---------------------------------------------------------------- output

void Session::put_header(uint8_t type, uint16_t flags, StreamId id, uint32_t length) {
  size_t o = out_.size();
  out_.resize(o + kHeaderSize);
  uint8_t* h = out_.data() + o;
  h[0] = 0;
  h[1] = type;
  h[2] = static_cast<uint8_t>(flags >> 8);
  h[3] = static_cast<uint8_t>(flags);
  store_be32(h + 4, id);
  store_be32(h + 8, length);
}

uint16_t Session::take_ack(Stream& s) {
  if (!s.need_ack) return 0;
  s.need_ack = false;
  return kFlagAck;
}

void Session::put_data(StreamId id, Stream& s, const uint8_t* data, size_t n) {
  s.send_window -= n;
  while (n > 0) {
    size_t chunk = std::min(n, config_.max_frame);
    put_header(kTypeData, take_ack(s), id, static_cast<uint32_t>(chunk));
    out_.insert(out_.end(), data, data + chunk);
    data += chunk;
    n -= chunk;
  }
}

// Frames buffered data as far as the remote window allows, then the FIN if it is due.
// May release the stream: callers must not touch `s` afterwards.
void Session::flush(StreamId id, Stream& s) {
  size_t n = static_cast<size_t>(std::min<uint64_t>(s.buffered(), s.send_window));
  if (n > output_room()) {
    n = output_room();
    starved_ = true;  // the rest goes out once the output is taken
  }
  if (n > 0) {
    put_data(id, s, s.send_buf.data() + s.send_off, n);
    s.send_off += n;
    send_buffered_ -= n;
    if (s.buffered() == 0) {
      s.send_buf.clear();
      s.send_off = 0;
    }
  }
  if (s.blocked && s.buffered() < config_.max_send_buffer && !send_buffer_full_) {
    s.blocked = false;
    events_.emplace_back(StreamWritable{id});
  }
  wake_if_send_buffer_room();
  if (s.fin_requested && !s.fin_sent && s.buffered() == 0) {
    put_header(kTypeWindowUpdate, take_ack(s) | kFlagFin, id, 0);
    s.fin_sent = true;
    maybe_release(id, s);
  }
}

// Once the streams' buffers together have room again, every stream refused for the total may
// write (each stream refused for its own buffer is woken by its flush).
void Session::wake_if_send_buffer_room() {
  if (!send_buffer_full_ || send_buffered_ >= config_.max_send_buffer_total / 2) return;
  send_buffer_full_ = false;
  for (auto& [sid, stream] : streams_) {
    if (stream.blocked && stream.buffered() < config_.max_send_buffer) {
      stream.blocked = false;
      events_.emplace_back(StreamWritable{sid});
    }
  }
}

void Session::send_window_update(StreamId id, Stream& s) {
  uint64_t delta = s.pending_credit;
  s.pending_credit = 0;
  // Auto-tuning (as go-yamux): a window used up within a few RTTs limits throughput, so
  // double it, within the per-stream and session-wide bounds.
  if (rtt_.count() > 0 && now_ - s.epoch < 4 * rtt_ && s.window_size < config_.max_window) {
    uint32_t grown =
        static_cast<uint32_t>(std::min<uint64_t>(uint64_t{s.window_size} * 2, config_.max_window));
    uint32_t grow = grown - s.window_size;
    if (window_growth_total_ + grow <= config_.max_window_growth_total) {
      s.window_size = grown;
      s.growth += grow;
      window_growth_total_ += grow;
      delta += grow;
    }
  }
  s.epoch = now_;
  s.recv_window = static_cast<uint32_t>(std::min<uint64_t>(s.recv_window + delta, kMaxWindow));
  put_header(kTypeWindowUpdate, take_ack(s), id, static_cast<uint32_t>(delta));
}

// Data frames only fill the output up to max_output; control frames may pass it a little.
size_t Session::output_room() const {
  return config_.max_output - std::min(out_.size(), config_.max_output);
}

// After the output was taken: frame what waited for room, stream by stream.
void Session::refill() {
  if (!starved_ || closed_) return;
  starved_ = false;
  std::vector<StreamId> waiting;
  for (const auto& [id, st] : streams_)
    if (st.buffered() > 0 && st.send_window > 0) waiting.push_back(id);
  for (StreamId id : waiting) {
    if (output_room() == 0) {
      starved_ = true;
      break;
    }
    if (Stream* st = find(id)) flush(id, *st);  // may release the stream
  }
}

void Session::put_pong(uint32_t value) {
  // A peer that pings without reading our replies gets no more than max_pending_pongs of them.
  if (pending_pongs_ >= config_.max_pending_pongs) {
    ++dropped_pongs_;
    return;
  }
  ++pending_pongs_;
  put_header(kTypePing, kFlagAck, 0, value);
}

void Session::send_ping() {
  // splitmix64: the value only needs to be unguessable to the remote, not cryptographic.
  uint64_t z = (ping_rng_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  ping_value_ = static_cast<uint32_t>(z ^ (z >> 31));
  put_header(kTypePing, kFlagSyn, 0, ping_value_);
  ping_outstanding_ = true;
  ping_sent_ = now_;
  next_ping_ = now_ + config_.keepalive_interval;
}

Bytes Session::take_output() {
  Bytes out;
  out.swap(out_);
  pending_pongs_ = 0;
  refill();
  return out;
}

void Session::swap_output(Bytes& buffer) {
  buffer.clear();
  buffer.swap(out_);
  pending_pongs_ = 0;
  refill();
}

// ---------------------------------------------------------------- streams

Session::Stream* Session::find(StreamId id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

const Session::Stream* Session::find(StreamId id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

// Ids are handed out in increasing order on each side, so anything up to the highest id
// seen was used (or skipped) and frames for it may legally still be in flight.
bool Session::was_used(StreamId id) const {
  return is_local_id(id) ? id < next_id_ : id <= highest_remote_id_;
}

void Session::maybe_release(StreamId id, Stream& s) {
  if (s.remote_fin && s.fin_sent) release(id);
}

void Session::release(StreamId id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  if (it->second.outbound_unacked) --unacked_outbound_;
  window_growth_total_ -= it->second.growth;
  send_buffered_ -= it->second.buffered();
  streams_.erase(it);
  wake_if_send_buffer_room();
}

void Session::push_data_event(StreamId id, const uint8_t* data, size_t n) {
  // Coalesce with a queued chunk of the same stream: fewer, larger events.
  if (!events_.empty()) {
    if (auto* d = std::get_if<StreamData>(&events_.back()); d && d->id == id) {
      d->data.insert(d->data.end(), data, data + n);
      return;
    }
  }
  events_.emplace_back(StreamData{id, Bytes(data, data + n)});
}

Result<StreamId> Session::open_stream() {
  if (closed_) return p2pmq::fail(Errc::closed, "yamux session closed");
  if (local_goaway_ || remote_goaway_) return p2pmq::fail(Errc::closed, "yamux session going away");
  if (streams_.size() >= config_.max_streams)
    return p2pmq::fail(Errc::limit_exceeded, "too many yamux streams");
  if (unacked_outbound_ >= config_.max_ack_backlog)
    return p2pmq::fail(Errc::limit_exceeded, "too many unacknowledged yamux streams");
  if (next_id_ > std::numeric_limits<StreamId>::max())
    return p2pmq::fail(Errc::limit_exceeded, "yamux stream ids exhausted");
  auto id = static_cast<StreamId>(next_id_);
  next_id_ += 2;
  Stream& s = streams_[id];
  s.window_size = s.recv_window = config_.initial_window;
  s.epoch = now_;
  s.outbound_unacked = true;
  ++unacked_outbound_;
  // The SYN carries whatever we grant beyond the 256 KiB both sides assume.
  put_header(kTypeWindowUpdate, kFlagSyn, id, config_.initial_window - kDefaultWindow);
  return id;
}

size_t Session::write(StreamId id, BytesView data) {
  if (closed_ || data.empty()) return 0;
  Stream* s = find(id);
  if (!s || s->fin_requested) return 0;
  size_t accepted = 0;
  // Fast path: nothing queued ahead, so frame straight from the caller's bytes (one copy).
  if (s->buffered() == 0 && s->send_window > 0 && output_room() > 0) {
    accepted = static_cast<size_t>(
        std::min<uint64_t>({data.size(), s->send_window, uint64_t{output_room()}}));
    put_data(id, *s, data.data(), accepted);
  }
  size_t rest = data.size() - accepted;
  if (rest == 0) return accepted;
  size_t space = std::min(
      config_.max_send_buffer - std::min(s->buffered(), config_.max_send_buffer),
      config_.max_send_buffer_total - std::min(send_buffered_, config_.max_send_buffer_total));
  size_t take = std::min(rest, space);
  if (take > 0) {
    // Compact before growing so the buffer stays within about max_send_buffer.
    if (s->send_off > 0) {
      s->send_buf.erase(s->send_buf.begin(),
                        s->send_buf.begin() + static_cast<ptrdiff_t>(s->send_off));
      s->send_off = 0;
    }
    const uint8_t* p = data.data() + accepted;
    s->send_buf.insert(s->send_buf.end(), p, p + take);
    send_buffered_ += take;
    accepted += take;
    if (output_room() == 0 && s->send_window > 0) starved_ = true;
  }
  if (take < rest) {
    s->blocked = true;
    if (send_buffered_ >= config_.max_send_buffer_total) send_buffer_full_ = true;
  }
  return accepted;
}

bool Session::is_writable(StreamId id) const {
  if (closed_) return false;
  const Stream* s = find(id);
  return s && !s->fin_requested;
}

void Session::close_write(StreamId id) {
  if (closed_) return;
  Stream* s = find(id);
  if (!s || s->fin_requested) return;
  s->fin_requested = true;
  flush(id, *s);
}

void Session::reset(StreamId id) {
  if (closed_) return;
  Stream* s = find(id);
  if (!s) return;
  put_header(kTypeWindowUpdate, take_ack(*s) | kFlagRst, id, 0);
  release(id);
}

void Session::consumed(StreamId id, size_t n) {
  if (closed_) return;
  Stream* s = find(id);
  if (!s) return;
  n = std::min(n, s->unconsumed);
  s->unconsumed -= n;
  s->pending_credit += n;
  if (s->remote_fin) return;  // nothing more will come: no credit needed
  // Batch: one update per half window keeps the header overhead and wakeups low.
  if (s->pending_credit > 0 && s->pending_credit >= s->window_size / 2) send_window_update(id, *s);
}

void Session::go_away(uint32_t code) {
  if (closed_) return;
  if (local_goaway_ && code == kGoAwayNormal) return;
  local_goaway_ = true;
  put_header(kTypeGoAway, 0, 0, code);
  if (code != kGoAwayNormal) {
    closed_ = true;
    error_ = Error{Errc::closed, "go away sent (code " + std::to_string(code) + ")"};
    streams_.clear();
    unacked_outbound_ = 0;
    window_growth_total_ = 0;
    send_buffered_ = 0;
  }
}

tl::unexpected<Error> Session::fail_session(Errc code, std::string message, uint32_t goaway_code) {
  if (!closed_) {
    closed_ = true;
    error_ = Error{code, std::move(message)};
    local_goaway_ = true;
    put_header(kTypeGoAway, 0, 0, goaway_code);
    streams_.clear();
    unacked_outbound_ = 0;
    window_growth_total_ = 0;
    send_buffered_ = 0;
  }
  return tl::unexpected<Error>(error_);
}

// ---------------------------------------------------------------- input

bool Session::poll_event(Event& out) {
  if (events_.empty()) return false;
  out = std::move(events_.front());
  events_.pop_front();
  return true;
}

Result<void> Session::feed(BytesView wire, TimePoint now) {
  if (closed_) return tl::unexpected<Error>(error_);
  now_ = now;
  const uint8_t* p = wire.data();
  size_t left = wire.size();
  while (left > 0) {
    if (payload_left_ > 0) {
      // Data payloads stream straight into events: no frame reassembly.
      size_t n = static_cast<size_t>(std::min<uint64_t>(payload_left_, left));
      if (payload_deliver_) {
        if (Stream* s = find(payload_id_)) {
          s->unconsumed += n;
          push_data_event(payload_id_, p, n);
        }
      }
      p += n;
      left -= n;
      payload_left_ -= n;
      if (payload_left_ == 0) finish_flags(payload_id_, payload_flags_);
      continue;
    }
    const uint8_t* h;
    if (hdr_len_ == 0 && left >= kHeaderSize) {
      h = p;
      p += kHeaderSize;
      left -= kHeaderSize;
    } else {
      size_t n = std::min(kHeaderSize - hdr_len_, left);
      std::memcpy(hdr_ + hdr_len_, p, n);
      hdr_len_ += n;
      p += n;
      left -= n;
      if (hdr_len_ < kHeaderSize) break;
      hdr_len_ = 0;
      h = hdr_;
    }
    if (auto r = handle_header(h); !r) return r;
  }
  return {};
}

Result<void> Session::handle_header(const uint8_t* h) {
  if (h[0] != 0)
    return fail_session(Errc::protocol_violation, "bad yamux version", kGoAwayProtocolError);
  uint8_t type = h[1];
  auto flags = static_cast<uint16_t>((h[2] << 8) | h[3]);
  StreamId id = load_be32(h + 4);
  uint32_t length = load_be32(h + 8);
  switch (type) {
    case kTypeData:
    case kTypeWindowUpdate:
      return handle_stream_header(type, flags, id, length);
    case kTypePing:
      if (flags & kFlagSyn) {
        put_pong(length);
      } else if ((flags & kFlagAck) && ping_outstanding_ && length == ping_value_) {
        ping_outstanding_ = false;
        auto sample = std::chrono::duration_cast<std::chrono::nanoseconds>(now_ - ping_sent_);
        rtt_ = rtt_.count() == 0 ? sample : (rtt_ * 3 + sample) / 4;
        events_.emplace_back(PingRtt{sample});
      }
      return {};
    case kTypeGoAway:
      remote_goaway_ = true;
      events_.emplace_back(GoAwayReceived{length});
      return {};
    default:
      return fail_session(Errc::protocol_violation, "unknown yamux frame type",
                          kGoAwayProtocolError);
  }
}

Result<void> Session::handle_stream_header(uint8_t type, uint16_t flags, StreamId id,
                                           uint32_t length) {
  if (id == 0)
    return fail_session(Errc::protocol_violation, "yamux stream frame for id 0",
                        kGoAwayProtocolError);
  Stream* s = nullptr;
  if (flags & kFlagSyn) {
    if (is_local_id(id))
      return fail_session(Errc::protocol_violation, "yamux SYN with our stream id parity",
                          kGoAwayProtocolError);
    if (id <= highest_remote_id_)
      return fail_session(Errc::protocol_violation, "yamux SYN for a used stream id",
                          kGoAwayProtocolError);
    highest_remote_id_ = id;
    if (local_goaway_ || streams_.size() >= config_.max_streams) {
      // Refuse the stream, not the session; what follows for it is ignored.
      put_header(kTypeWindowUpdate, kFlagRst, id, 0);
      events_.emplace_back(StreamRefused{id, !local_goaway_});
    } else {
      s = &streams_[id];
      s->window_size = s->recv_window = kDefaultWindow;
      s->epoch = now_;
      s->need_ack = true;  // ACK rides on our first frame (libp2p: no implicit ACK)
      events_.emplace_back(StreamOpened{id});
      if (config_.initial_window > kDefaultWindow) {
        // A bigger window has to be announced now, which ACKs the stream.
        s->window_size = s->recv_window = config_.initial_window;
        put_header(kTypeWindowUpdate, take_ack(*s), id, config_.initial_window - kDefaultWindow);
      }
    }
  } else {
    s = find(id);
    if (!s && !was_used(id))
      return fail_session(Errc::protocol_violation, "yamux frame for a stream never opened",
                          kGoAwayProtocolError);
    // A stream we closed or reset: frames in flight are legal and ignored.
  }
  if (s && (flags & kFlagAck) && s->outbound_unacked) {
    s->outbound_unacked = false;
    --unacked_outbound_;
  }

  if (type == kTypeData) {
    if (s) {
      if (length > s->recv_window)
        return fail_session(Errc::protocol_violation, "yamux data beyond the receive window",
                            kGoAwayProtocolError);
      s->recv_window -= length;
    }
    if (length > 0) {
      payload_left_ = length;
      payload_id_ = id;
      payload_flags_ = flags;
      payload_deliver_ = s && !s->remote_fin;  // data after FIN is dropped
      return {};
    }
  } else if (s) {
    s->send_window = std::min<uint64_t>(s->send_window + length, kMaxWindow);
    flush(id, *s);  // may release the stream; finish_flags looks it up again
  }
  finish_flags(id, flags);
  return {};
}

void Session::finish_flags(StreamId id, uint16_t flags) {
  if (!(flags & (kFlagFin | kFlagRst))) return;
  Stream* s = find(id);
  if (!s) return;
  if (flags & kFlagRst) {
    events_.emplace_back(StreamReset{id});
    release(id);
    return;
  }
  if (!s->remote_fin) {
    s->remote_fin = true;
    events_.emplace_back(StreamEof{id});
    maybe_release(id, *s);
  }
}

// ---------------------------------------------------------------- timers

Session::TimePoint Session::next_deadline() const {
  if (closed_) return TimePoint::max();
  if (ping_outstanding_)
    return config_.ping_timeout.count() > 0 ? ping_sent_ + config_.ping_timeout : TimePoint::max();
  if (config_.keepalive_interval.count() > 0) return next_ping_;
  return TimePoint::max();
}

Result<void> Session::on_timer(TimePoint now) {
  if (closed_) return tl::unexpected<Error>(error_);
  now_ = now;
  if (ping_outstanding_) {
    if (config_.ping_timeout.count() > 0 && now >= ping_sent_ + config_.ping_timeout)
      return fail_session(Errc::timeout, "yamux ping timeout", kGoAwayInternalError);
    return {};
  }
  if (config_.keepalive_interval.count() > 0 && now >= next_ping_) send_ping();
  return {};
}

}  // namespace p2pmq::yamux
