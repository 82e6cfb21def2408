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
std::string to_str(BytesView b) {
  return std::string(as_string(b));
}

tl::unexpected<Error> over(const char* limit, size_t value, size_t bound) {
  return fail(Errc::limit_exceeded, "pubsub rpc: " + std::to_string(value) + " over " + limit +
                                        " (" + std::to_string(bound) + ")");
}

// Size of a length-delimited field with a one-byte tag (all our field numbers are < 16).
size_t field_size(size_t len) {
  return 1 + varint_size(len) + len;
}

void to_pb(const Message& m, pb::Message& out) {
  if (m.from) out.set_from(to_str(*m.from));
  out.set_data(to_str(m.data));
  if (m.seqno) out.set_seqno(to_str(*m.seqno));
  out.set_topic(m.topic);
  if (m.signature) out.set_signature(to_str(*m.signature));
  if (m.key) out.set_key(to_str(*m.key));
}

Message from_pb(const pb::Message& m) {
  Message out;
  if (m.has_from()) out.from = to_bytes_of(m.from());
  out.data = to_bytes_of(m.data());
  if (m.has_seqno()) out.seqno = to_bytes_of(m.seqno());
  out.topic = m.topic();
  if (m.has_signature()) out.signature = to_bytes_of(m.signature());
  if (m.has_key()) out.key = to_bytes_of(m.key());
  return out;
}

template <class Ids>
std::vector<MessageId> ids_of(const Ids& ids) {
  std::vector<MessageId> out;
  out.reserve(ids.size());
  for (const auto& id : ids) out.push_back(to_bytes_of(id));
  return out;
}

// Every count and length bound, checked on the parsed protobuf before converting it.
Result<void> check_limits(const pb::RPC& rpc, const RpcLimits& limits) {
  auto topic_ok = [&](const std::string& t) { return t.size() <= limits.max_topic_length; };
  auto ids_ok = [&](const auto& ids) {
    for (const auto& id : ids)
      if (id.size() > limits.max_message_id_length) return false;
    return true;
  };
  if (size_t n = rpc.subscriptions_size(); n > limits.max_subscriptions)
    return over("max_subscriptions", n, limits.max_subscriptions);
  if (size_t n = rpc.publish_size(); n > limits.max_messages)
    return over("max_messages", n, limits.max_messages);
  for (const auto& s : rpc.subscriptions())
    if (!topic_ok(s.topicid()))
      return over("max_topic_length", s.topicid().size(), limits.max_topic_length);
  for (const auto& m : rpc.publish())
    if (!topic_ok(m.topic()))
      return over("max_topic_length", m.topic().size(), limits.max_topic_length);
  if (!rpc.has_control()) return {};

  const auto& c = rpc.control();
  size_t entries = size_t(c.ihave_size()) + c.iwant_size() + c.graft_size() + c.prune_size() +
                   c.idontwant_size();
  if (entries > limits.max_control_messages)
    return over("max_control_messages", entries, limits.max_control_messages);
  size_t ids = 0, px = 0;
  for (const auto& e : c.ihave()) ids += e.messageids_size();
  for (const auto& e : c.iwant()) ids += e.messageids_size();
  for (const auto& e : c.idontwant()) ids += e.messageids_size();
  for (const auto& e : c.prune()) px += e.peers_size();
  if (ids > limits.max_control_entries)
    return over("max_control_entries", ids, limits.max_control_entries);
  if (px > limits.max_px_peers) return over("max_px_peers", px, limits.max_px_peers);

  bool topics = true, id_lengths = true;
  for (const auto& e : c.ihave()) {
    topics &= topic_ok(e.topicid());
    id_lengths &= ids_ok(e.messageids());
  }
  for (const auto& e : c.iwant()) id_lengths &= ids_ok(e.messageids());
  for (const auto& e : c.idontwant()) id_lengths &= ids_ok(e.messageids());
  for (const auto& e : c.graft()) topics &= topic_ok(e.topicid());
  for (const auto& e : c.prune()) topics &= topic_ok(e.topicid());
  if (!topics)
    return fail(Errc::limit_exceeded, "pubsub rpc: control topic over max_topic_length (" +
                                          std::to_string(limits.max_topic_length) + ")");
  if (!id_lengths)
    return fail(Errc::limit_exceeded, "pubsub rpc: message id over max_message_id_length (" +
                                          std::to_string(limits.max_message_id_length) + ")");
  return {};
}

}  // namespace

Result<Rpc> decode_rpc(BytesView protobuf, const RpcLimits& limits) {
  if (protobuf.size() > limits.max_rpc_size)
    return over("max_rpc_size", protobuf.size(), limits.max_rpc_size);
  pb::RPC msg;
  if (!msg.ParseFromArray(protobuf.data(), static_cast<int>(protobuf.size())))
    return fail(Errc::invalid_input, "pubsub rpc: malformed protobuf");
  if (auto ok = check_limits(msg, limits); !ok) return tl::unexpected(ok.error());

  Rpc rpc;
  for (const auto& s : msg.subscriptions())
    rpc.subscriptions.push_back({s.subscribe(), s.topicid()});
  for (const auto& m : msg.publish()) rpc.publish.push_back(from_pb(m));
  const auto& c = msg.control();
  for (const auto& e : c.ihave())
    rpc.control.ihave.push_back({e.topicid(), ids_of(e.messageids())});
  for (const auto& e : c.iwant()) rpc.control.iwant.push_back({ids_of(e.messageids())});
  for (const auto& e : c.graft()) rpc.control.graft.push_back({e.topicid()});
  for (const auto& e : c.prune()) {
    ControlPrune prune{e.topicid(), {}, std::nullopt};
    for (const auto& p : e.peers()) {
      PeerRecord rec{to_bytes_of(p.peerid()), std::nullopt};
      if (p.has_signedpeerrecord()) rec.signed_peer_record = to_bytes_of(p.signedpeerrecord());
      prune.peers.push_back(std::move(rec));
    }
    if (e.has_backoff()) prune.backoff_seconds = e.backoff();
    rpc.control.prune.push_back(std::move(prune));
  }
  for (const auto& e : c.idontwant()) rpc.control.idontwant.push_back({ids_of(e.messageids())});
  return rpc;
}

Bytes encode_rpc(const Rpc& rpc) {
  pb::RPC msg;
  for (const auto& s : rpc.subscriptions) {
    auto* out = msg.add_subscriptions();
    out->set_subscribe(s.subscribe);
    out->set_topicid(s.topic);
  }
  for (const auto& m : rpc.publish) to_pb(m, *msg.add_publish());
  if (!rpc.control.empty()) {
    auto* c = msg.mutable_control();
    for (const auto& e : rpc.control.ihave) {
      auto* out = c->add_ihave();
      out->set_topicid(e.topic);
      for (const auto& id : e.message_ids) out->add_messageids(to_str(id));
    }
    for (const auto& e : rpc.control.iwant) {
      auto* out = c->add_iwant();
      for (const auto& id : e.message_ids) out->add_messageids(to_str(id));
    }
    for (const auto& e : rpc.control.graft) c->add_graft()->set_topicid(e.topic);
    for (const auto& e : rpc.control.prune) {
      auto* out = c->add_prune();
      out->set_topicid(e.topic);
      for (const auto& p : e.peers) {
        auto* info = out->add_peers();
        info->set_peerid(to_str(p.peer_id));
        if (p.signed_peer_record) info->set_signedpeerrecord(to_str(*p.signed_peer_record));
      }
      if (e.backoff_seconds) out->set_backoff(*e.backoff_seconds);
    }
    for (const auto& e : rpc.control.idontwant) {
      auto* out = c->add_idontwant();
      for (const auto& id : e.message_ids) out->add_messageids(to_str(id));
    }
  }
  Bytes out(msg.ByteSizeLong());
  msg.SerializeWithCachedSizesToArray(out.data());
  return out;
}

Bytes encode_message(const Message& message) {
  pb::Message msg;
  to_pb(message, msg);
  Bytes out(msg.ByteSizeLong());
  msg.SerializeWithCachedSizesToArray(out.data());
  return out;
}

size_t encoded_size(const Message& m) {
  size_t body = field_size(m.data.size()) + field_size(m.topic.size());
  if (m.from) body += field_size(m.from->size());
  if (m.seqno) body += field_size(m.seqno->size());
  if (m.signature) body += field_size(m.signature->size());
  if (m.key) body += field_size(m.key->size());
  return field_size(body);
}

namespace {

// Greedy packing with sizes computed by hand. Entries that are cut (IHAVE/IWANT/IDONTWANT)
// and the control field itself count a worst-case header (tag + length up to max_size), so
// the estimate never falls below the real encoding.
class Packer {
 public:
  explicit Packer(size_t max) : max_(max), header_(1 + varint_size(max)) {}

  size_t header() const { return header_; }

  // Makes room for a top-level item of n bytes; false when it cannot fit even alone.
  bool room(size_t n) {
    if (n > max_) return false;
    if (size_ + n > max_) flush();
    size_ += n;
    return true;
  }
  // The same for a control item: the first one also pays for the control field's header.
  bool room_control(size_t n) {
    if (n + header_ > max_) return false;
    size_t need = n + (cur_.control.empty() ? header_ : 0);
    if (size_ + need > max_) {
      flush();
      need = n + header_;
    }
    size_ += need;
    return true;
  }
  // Adds n bytes to the current RPC's last entry if they fit.
  bool extend(size_t n) {
    if (size_ + n > max_) return false;
    size_ += n;
    return true;
  }

  Rpc& cur() { return cur_; }
  std::vector<Rpc> finish() {
    if (!cur_.empty()) flush();
    return std::move(out_);
  }

 private:
  void flush() {
    out_.push_back(std::move(cur_));
    cur_ = {};
    size_ = 0;
  }

  size_t max_, header_;
  size_t size_ = 0;
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
      if (p.room_control(base)) (p.cur().control.*list).push_back(std::move(e));
      continue;
    }
    Entry* open = nullptr;  // this entry's part in the current RPC
    for (auto& id : e.message_ids) {
      size_t n = field_size(id.size());
      if (open && p.extend(n)) {
        open->message_ids.push_back(std::move(id));
        continue;
      }
      open = nullptr;
      if (!p.room_control(base + n)) continue;  // dropped: cannot fit alone
      open = &(p.cur().control.*list).emplace_back();
      if constexpr (has_topic) open->topic = e.topic;
      open->message_ids.push_back(std::move(id));
    }
  }
}

size_t subopts_size(const SubOpts& s) {
  return field_size(2 + field_size(s.topic.size()));
}

size_t uint64_size(uint64_t v) {  // protobuf varint: up to 10 bytes
  size_t n = 1;
  while (v >= 0x80) v >>= 7, ++n;
  return n;
}

size_t prune_size(const ControlPrune& e) {
  size_t body = field_size(e.topic.size());
  for (const auto& peer : e.peers) {
    size_t info = field_size(peer.peer_id.size());
    if (peer.signed_peer_record) info += field_size(peer.signed_peer_record->size());
    body += field_size(info);
  }
  if (e.backoff_seconds) body += 1 + uint64_size(*e.backoff_seconds);
  return field_size(body);
}

}  // namespace

std::vector<Rpc> split_rpc(Rpc rpc, size_t max_size) {
  if (encode_rpc(rpc).size() <= max_size) return {std::move(rpc)};
  Packer p(max_size);
  for (auto& s : rpc.subscriptions)
    if (p.room(subopts_size(s))) p.cur().subscriptions.push_back(std::move(s));
  for (auto& m : rpc.publish)
    if (p.room(encoded_size(m))) p.cur().publish.push_back(std::move(m));

  auto& c = rpc.control;
  for (auto& g : c.graft)
    if (p.room_control(field_size(field_size(g.topic.size()))))
      p.cur().control.graft.push_back(std::move(g));
  for (auto& e : c.prune)
    if (p.room_control(prune_size(e))) p.cur().control.prune.push_back(std::move(e));
  pack_ids(p, c.ihave, &ControlMessage::ihave);
  pack_ids(p, c.iwant, &ControlMessage::iwant);
  pack_ids(p, c.idontwant, &ControlMessage::idontwant);
  return p.finish();
}

void append_framed_rpc(Bytes& out, const Rpc& rpc) {
  Bytes body = encode_rpc(rpc);
  varint_append(out, body.size());
  append(out, body);
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
  auto rpc = decode_rpc(in.subspan(used, len), limits_);
  if (!rpc) {
    error_ = rpc.error();
    return tl::unexpected(*error_);
  }
  pos_ += used + len;
  if (pos_ == buf_.size()) buf_.clear(), pos_ = 0;
  return std::optional<Rpc>(std::move(*rpc));
}

}  // namespace p2pmq::pubsub
