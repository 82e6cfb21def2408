#include "pubsub/rpc.hpp"

#include <string>
#include <utility>

#include "core/varint.hpp"
#include "libp2p/pubsub.pb.h"

namespace p2pmq::pubsub {
namespace {

namespace pb = ::libp2p::pubsub;

Bytes to_bytes_of(const std::string& s) {
  return Bytes(s.begin(), s.end());
}
tl::unexpected<Error> over(const char* limit, size_t value, size_t bound) {
  return fail(Errc::limit_exceeded, "pubsub rpc: " + std::to_string(value) + " over " + limit +
                                        " (" + std::to_string(bound) + ")");
}

// Size of a length-delimited field with a one-byte tag (all our field numbers are < 16).
size_t field_size(size_t len) {
  return 1 + varint_size(len) + len;
}

Message from_pb(const pb::Message& m) {
  Message out;
  if (m.has_from()) out.from = to_bytes_of(m.from());
  out.data = to_bytes_of(m.data());
  out.data_present = m.has_data();
  if (m.has_seqno()) out.seqno = to_bytes_of(m.seqno());
  out.topic = m.topic();
  if (m.has_signature()) out.signature = to_bytes_of(m.signature());
  if (m.has_key()) out.key = to_bytes_of(m.key());
  return out;
}

// Converts the parsed protobuf, keeping what fits RpcLimits and counting what does not.
// GRAFT and PRUNE are taken before the gossip lists, since losing them splits mesh views.
class LimitedDecoder {
 public:
  LimitedDecoder(const RpcLimits& limits, size_t& dropped)
      : l_(limits),
        dropped_(dropped),
        entries_left_(limits.max_control_messages),
        ids_left_(limits.max_control_entries),
        px_left_(limits.max_px_peers) {}

  Rpc decode(const pb::RPC& msg) {
    Rpc rpc;
    for (const auto& s : msg.subscriptions()) {
      if (rpc.subscriptions.size() < l_.max_subscriptions && topic_ok(s.topicid()))
        rpc.subscriptions.push_back({s.subscribe(), s.topicid()});
      else
        ++dropped_;
    }
    for (const auto& m : msg.publish()) {
      if (rpc.publish.size() < l_.max_messages && topic_ok(m.topic()))
        rpc.publish.push_back(from_pb(m));
      else
        ++dropped_;
    }
    const auto& c = msg.control();
    for (const auto& e : c.graft()) {
      if (take_entry(e.topicid())) rpc.control.graft.push_back({e.topicid()});
    }
    for (const auto& e : c.prune()) {
      if (!take_entry(e.topicid())) continue;
      ControlPrune prune{e.topicid(), {}, std::nullopt};
      for (const auto& p : e.peers()) {
        if (px_left_ == 0) {
          ++dropped_;
          continue;
        }
        --px_left_;
        PeerRecord rec{to_bytes_of(p.peerid()), std::nullopt};
        if (p.has_signedpeerrecord()) rec.signed_peer_record = to_bytes_of(p.signedpeerrecord());
        prune.peers.push_back(std::move(rec));
      }
      if (e.has_backoff()) prune.backoff_seconds = e.backoff();
      rpc.control.prune.push_back(std::move(prune));
    }
    for (const auto& e : c.ihave()) {
      if (!take_entry(e.topicid(), e.messageids_size())) continue;
      if (auto ids = take_ids(e.messageids())) rpc.control.ihave.push_back({e.topicid(), *ids});
    }
    for (const auto& e : c.iwant()) {
      if (!take_entry({}, e.messageids_size())) continue;
      if (auto ids = take_ids(e.messageids())) rpc.control.iwant.push_back({*ids});
    }
    for (const auto& e : c.idontwant()) {
      if (!take_entry({}, e.messageids_size())) continue;
      if (auto ids = take_ids(e.messageids())) rpc.control.idontwant.push_back({*ids});
    }
    return rpc;
  }

 private:
  bool topic_ok(const std::string& t) const { return t.size() <= l_.max_topic_length; }

  // One control entry (with `ids` ids, dropped with it) if the budget and its topic allow.
  bool take_entry(const std::string& topic, int ids = 0) {
    if (entries_left_ > 0 && topic_ok(topic)) {
      --entries_left_;
      return true;
    }
    dropped_ += 1 + static_cast<size_t>(ids);
    return false;
  }

  // The ids that fit the id budget and the length bound; an empty optional when none did,
  // so that an entry emptied by the limits is dropped rather than sent on empty.
  template <class Ids>
  std::optional<std::vector<MessageId>> take_ids(const Ids& ids) {
    std::vector<MessageId> out;
    for (const auto& id : ids) {
      if (ids_left_ > 0 && id.size() <= l_.max_message_id_length) {
        --ids_left_;
        out.push_back(to_bytes_of(id));
      } else {
        ++dropped_;
      }
    }
    if (out.empty() && !ids.empty()) return std::nullopt;
    return out;
  }

  const RpcLimits& l_;
  size_t& dropped_;
  size_t entries_left_, ids_left_, px_left_;
};

}  // namespace

Result<Rpc> decode_rpc(BytesView protobuf, const RpcLimits& limits, RpcDecodeStats* stats) {
  if (protobuf.size() > limits.max_rpc_size)
    return over("max_rpc_size", protobuf.size(), limits.max_rpc_size);
  pb::RPC msg;
  if (!msg.ParseFromArray(protobuf.data(), static_cast<int>(protobuf.size())))
    return fail(Errc::invalid_input, "pubsub rpc: malformed protobuf");
  size_t dropped = 0;
  Rpc rpc = LimitedDecoder(limits, dropped).decode(msg);
  if (stats) stats->dropped += dropped;
  return rpc;
}

// The encoder writes the protobuf wire format directly (fields in number order, as protobuf
// serialises them): one pass for the sizes, one to write, no intermediate message objects or
// copies of the payload. RpcCodec.MatchesHandBuiltWireBytes and
// RpcCodec.EncodingIsProtobufsOwn check it against the schema.
namespace {

constexpr uint8_t kLen = 2;  // wire type: length-delimited

uint8_t tag(int field, uint8_t wire_type = kLen) {
  return static_cast<uint8_t>(field << 3 | wire_type);
}

// Body sizes (without their own tag and length).
size_t message_body_size(const Message& m) {
  size_t body = field_size(m.topic.size());
  if (m.data_present || !m.data.empty()) body += field_size(m.data.size());
  if (m.from) body += field_size(m.from->size());
  if (m.seqno) body += field_size(m.seqno->size());
  if (m.signature) body += field_size(m.signature->size());
  if (m.key) body += field_size(m.key->size());
  return body;
}

size_t ids_size(const std::vector<MessageId>& ids) {
  size_t n = 0;
  for (const auto& id : ids) n += field_size(id.size());
  return n;
}

size_t peer_info_size(const PeerRecord& p) {
  size_t n = field_size(p.peer_id.size());
  if (p.signed_peer_record) n += field_size(p.signed_peer_record->size());
  return n;
}

size_t prune_body_size(const ControlPrune& e) {
  size_t body = field_size(e.topic.size());
  for (const auto& peer : e.peers) body += field_size(peer_info_size(peer));
  if (e.backoff_seconds) body += 1 + varint_size(*e.backoff_seconds);
  return body;
}

size_t control_body_size(const ControlMessage& c) {
  size_t n = 0;
  for (const auto& e : c.ihave)
    n += field_size(field_size(e.topic.size()) + ids_size(e.message_ids));
  for (const auto& e : c.iwant) n += field_size(ids_size(e.message_ids));
  for (const auto& e : c.graft) n += field_size(field_size(e.topic.size()));
  for (const auto& e : c.prune) n += field_size(prune_body_size(e));
  for (const auto& e : c.idontwant) n += field_size(ids_size(e.message_ids));
  return n;
}

class Writer {
 public:
  explicit Writer(Bytes& out) : out_(out) {}

  void bytes(int field, BytesView b) {
    header(field, b.size());
    out_.insert(out_.end(), b.begin(), b.end());
  }
  void text(int field, std::string_view s) {
    header(field, s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void header(int field, size_t length) {
    out_.push_back(tag(field));
    varint_append(out_, length);
  }
  void uint(int field, uint64_t v) {
    out_.push_back(tag(field, 0));
    varint_append(out_, v);
  }

  void message_body(const Message& m) {
    signed_fields(m);
    if (m.signature) bytes(5, *m.signature);
    if (m.key) bytes(6, *m.key);
  }
  // What a signature covers: every field but the signature and the key.
  void signed_fields(const Message& m) {
    if (m.from) bytes(1, *m.from);
    if (m.data_present || !m.data.empty()) bytes(2, m.data);
    if (m.seqno) bytes(3, *m.seqno);
    text(4, m.topic);
  }
  void ids(int field, const std::vector<MessageId>& list) {
    for (const auto& id : list) bytes(field, id);
  }
  void control_body(const ControlMessage& c) {
    for (const auto& e : c.ihave) {
      header(1, field_size(e.topic.size()) + ids_size(e.message_ids));
      text(1, e.topic);
      ids(2, e.message_ids);
    }
    for (const auto& e : c.iwant) {
      header(2, ids_size(e.message_ids));
      ids(1, e.message_ids);
    }
    for (const auto& e : c.graft) {
      header(3, field_size(e.topic.size()));
      text(1, e.topic);
    }
    for (const auto& e : c.prune) {
      header(4, prune_body_size(e));
      text(1, e.topic);
      for (const auto& peer : e.peers) {
        header(2, peer_info_size(peer));
        bytes(1, peer.peer_id);
        if (peer.signed_peer_record) bytes(2, *peer.signed_peer_record);
      }
      if (e.backoff_seconds) uint(3, *e.backoff_seconds);
    }
    for (const auto& e : c.idontwant) {
      header(5, ids_size(e.message_ids));
      ids(1, e.message_ids);
    }
  }
  void rpc(const Rpc& r) {
    for (const auto& sub : r.subscriptions) {
      header(1, 2 + field_size(sub.topic.size()));
      uint(1, sub.subscribe ? 1 : 0);
      text(2, sub.topic);
    }
    for (const auto& m : r.publish) {
      header(2, message_body_size(m));
      message_body(m);
    }
    if (!r.control.empty()) {
      header(3, control_body_size(r.control));
      control_body(r.control);
    }
  }

 private:
  Bytes& out_;
};

}  // namespace

size_t encoded_size(const Rpc& rpc) {
  size_t n = 0;
  for (const auto& sub : rpc.subscriptions) n += field_size(2 + field_size(sub.topic.size()));
  for (const auto& m : rpc.publish) n += encoded_size(m);
  if (!rpc.control.empty()) n += field_size(control_body_size(rpc.control));
  return n;
}

Bytes encode_rpc(const Rpc& rpc) {
  Bytes out;
  out.reserve(encoded_size(rpc));
  Writer(out).rpc(rpc);
  return out;
}

Bytes encode_message(const Message& message) {
  Bytes out;
  out.reserve(message_body_size(message));
  Writer(out).message_body(message);
  return out;
}

Bytes encode_signed_part(std::string_view prefix, const Message& message) {
  Bytes out;
  size_t body = message_body_size(message);
  if (message.signature) body -= field_size(message.signature->size());
  if (message.key) body -= field_size(message.key->size());
  out.reserve(prefix.size() + body);
  out.insert(out.end(), prefix.begin(), prefix.end());
  Writer(out).signed_fields(message);
  return out;
}

size_t encoded_size(const Message& m) {
  return field_size(message_body_size(m));
}

namespace {

// Greedy packing with sizes computed by hand, within the byte bound and the counts of
// RpcLimits. Entries that are cut (IHAVE/IWANT/IDONTWANT) and the control field itself count a
// worst-case header (tag + length up to max_size), so the estimate never falls below the real
// encoding.
class Packer {
 public:
  // What one item adds to the current RPC's counts.
  struct Counts {
    size_t subscriptions = 0, messages = 0, control_messages = 0, ids = 0, px = 0;
  };

  Packer(size_t max, const RpcLimits& limits)
      : max_(max), header_(1 + varint_size(max)), limits_(limits) {}

  size_t header() const { return header_; }

  // Makes room for a top-level item of n bytes. One over max goes alone into an RPC of its own:
  // a message of a topic configured for messages over the frame limit.
  bool room(size_t n, const Counts& add) {
    size_t control = add.subscriptions > 0 ? n : 0;
    if (size_ + n > max_ || !counts_fit(add) || !control_fits(control)) flush();
    if (n > max_) size_ = max_;  // nothing joins it
    size_ += n;
    control_ += control;
    count(add);
    return true;
  }
  // The same for a control item: the first one also pays for the control field's header.
  bool room_control(size_t n, const Counts& add) {
    if (n + header_ > max_) return false;
    size_t need = n + (cur_.control.empty() ? header_ : 0);
    if (size_ + need > max_ || !counts_fit(add) || !control_fits(need)) {
      flush();
      need = n + header_;
    }
    size_ += need;
    control_ += need;  // an item over max_control_size alone still goes, in an RPC of its own
    count(add);
    return true;
  }
  // Adds one id of n bytes to the current RPC's last entry if it fits.
  bool extend_id(size_t n) {
    if (size_ + n > max_ || !counts_fit({.ids = 1}) || !control_fits(n)) return false;
    size_ += n;
    control_ += n;
    ++counts_.ids;
    return true;
  }

  Rpc& cur() { return cur_; }
  std::vector<Rpc> finish() {
    if (!cur_.empty()) flush();
    return std::move(out_);
  }

 private:
  bool counts_fit(const Counts& add) const {
    return counts_.subscriptions + add.subscriptions <= limits_.max_subscriptions &&
           counts_.messages + add.messages <= limits_.max_messages &&
           counts_.control_messages + add.control_messages <= limits_.max_control_messages &&
           counts_.ids + add.ids <= limits_.max_control_entries &&
           counts_.px + add.px <= limits_.max_px_peers;
  }
  void count(const Counts& add) {
    counts_.subscriptions += add.subscriptions;
    counts_.messages += add.messages;
    counts_.control_messages += add.control_messages;
    counts_.ids += add.ids;
    counts_.px += add.px;
  }
  bool control_fits(size_t n) const { return n == 0 || control_ + n <= limits_.max_control_size; }
  void flush() {
    if (!cur_.empty()) out_.push_back(std::move(cur_));
    cur_ = {};
    size_ = 0;
    control_ = 0;
    counts_ = {};
  }

  size_t max_, header_;
  const RpcLimits& limits_;
  size_t size_ = 0;
  size_t control_ = 0;  // subscriptions and control, as rust-libp2p counts them
  Counts counts_;
  Rpc cur_;
  std::vector<Rpc> out_;
};

// Cuts the id lists of IHAVE, IWANT or IDONTWANT entries across RPCs.
template <class Entry>
void pack_ids(Packer& p, std::vector<Entry>& entries, std::vector<Entry> ControlMessage::*list) {
  constexpr bool has_topic = requires(Entry e) {
    e.topic;
  };
  for (auto& e : entries) {
    size_t base = p.header();
    if constexpr (has_topic) base += field_size(e.topic.size());
    if (e.message_ids.empty()) {
      if (p.room_control(base, {.control_messages = 1}))
        (p.cur().control.*list).push_back(std::move(e));
      continue;
    }
    Entry* open = nullptr;  // this entry's part in the current RPC
    for (auto& id : e.message_ids) {
      size_t n = field_size(id.size());
      if (open && p.extend_id(n)) {
        open->message_ids.push_back(std::move(id));
        continue;
      }
      open = nullptr;
      if (!p.room_control(base + n, {.control_messages = 1, .ids = 1}))
        continue;  // dropped: cannot fit alone
      open = &(p.cur().control.*list).emplace_back();
      if constexpr (has_topic) open->topic = e.topic;
      open->message_ids.push_back(std::move(id));
    }
  }
}

size_t subopts_size(const SubOpts& s) {
  return field_size(2 + field_size(s.topic.size()));
}

size_t prune_size(const ControlPrune& e) {
  return field_size(prune_body_size(e));
}

}  // namespace

std::vector<Rpc> split_rpc(Rpc rpc, size_t max_size, const RpcLimits& counts) {
  auto within_counts = [&](const Rpc& r) {
    size_t ids = 0, px = 0;
    for (const auto& e : r.control.ihave) ids += e.message_ids.size();
    for (const auto& e : r.control.iwant) ids += e.message_ids.size();
    for (const auto& e : r.control.idontwant) ids += e.message_ids.size();
    for (const auto& e : r.control.prune) px += e.peers.size();
    size_t entries = r.control.ihave.size() + r.control.iwant.size() + r.control.graft.size() +
                     r.control.prune.size() + r.control.idontwant.size();
    return r.subscriptions.size() <= counts.max_subscriptions &&
           r.publish.size() <= counts.max_messages && entries <= counts.max_control_messages &&
           ids <= counts.max_control_entries && px <= counts.max_px_peers;
  };
  auto control_size = [](const Rpc& r, size_t encoded) {
    for (const auto& m : r.publish) encoded -= encoded_size(m);
    return encoded;
  };
  if (within_counts(rpc)) {
    size_t encoded = encoded_size(rpc);
    if (encoded <= max_size && control_size(rpc, encoded) <= counts.max_control_size)
      return {std::move(rpc)};
  }
  Packer p(max_size, counts);
  for (auto& s : rpc.subscriptions)
    if (p.room(subopts_size(s), {.subscriptions = 1}))
      p.cur().subscriptions.push_back(std::move(s));
  for (auto& m : rpc.publish)
    if (p.room(encoded_size(m), {.messages = 1})) p.cur().publish.push_back(std::move(m));

  auto& c = rpc.control;
  for (auto& g : c.graft)
    if (p.room_control(field_size(field_size(g.topic.size())), {.control_messages = 1}))
      p.cur().control.graft.push_back(std::move(g));
  for (auto& e : c.prune) {
    // PX beyond the count bound is dropped rather than splitting one PRUNE in two.
    if (e.peers.size() > counts.max_px_peers) e.peers.resize(counts.max_px_peers);
    if (p.room_control(prune_size(e), {.control_messages = 1, .px = e.peers.size()}))
      p.cur().control.prune.push_back(std::move(e));
  }
  pack_ids(p, c.ihave, &ControlMessage::ihave);
  pack_ids(p, c.iwant, &ControlMessage::iwant);
  pack_ids(p, c.idontwant, &ControlMessage::idontwant);
  return p.finish();
}

void append_framed_rpc(Bytes& out, const Rpc& rpc) {
  const size_t size = encoded_size(rpc);
  out.reserve(out.size() + varint_size(size) + size);
  varint_append(out, size);
  Writer(out).rpc(rpc);
}

RpcReader::RpcReader(RpcLimits limits) : limits_(limits) {}

void RpcReader::feed(BytesView bytes) {
  if (error_) return;
  // Drop consumed bytes once they dominate, so the buffer stays about one frame long.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }
  append(buf_, bytes);
}

Result<std::optional<Rpc>> RpcReader::next() {
  if (error_) return tl::unexpected(*error_);
  BytesView in = BytesView(buf_).subspan(pos_);
  auto prefix = varint_decode(in);
  if (!prefix) {
    error_ = Error{Errc::invalid_input, "pubsub rpc: bad length prefix: " + prefix.error().message};
    return tl::unexpected(*error_);
  }
  if (!*prefix) return std::nullopt;
  auto [len, used] = **prefix;
  // Refused before buffering the body: a peer cannot make us hold more than one frame.
  if (len > limits_.max_rpc_size) {
    error_ = over("max_rpc_size", len, limits_.max_rpc_size).value();
    return tl::unexpected(*error_);
  }
  if (in.size() - used < len) return std::nullopt;
  auto rpc = decode_rpc(in.subspan(used, len), limits_, &stats_);
  if (!rpc) {
    error_ = rpc.error();
    return tl::unexpected(*error_);
  }
  pos_ += used + len;
  if (pos_ == buf_.size()) buf_.clear(), pos_ = 0;
  return std::optional<Rpc>(std::move(*rpc));
}

}  // namespace p2pmq::pubsub
