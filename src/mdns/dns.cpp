#include "mdns/dns.hpp"

#include <algorithm>
#include <map>

namespace p2pmq::mdns {

namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

constexpr size_t kMinQuestionSize = 1 + 4;  // root name, type, class
constexpr size_t kMinRecordSize = 1 + 10;   // root name, type, class, ttl, rdlength
constexpr uint16_t kTopBit = 0x8000;

class Reader {
 public:
  Reader(BytesView wire, const DnsLimits& limits) : w_(wire), limits_(limits) {}

  size_t pos() const { return pos_; }
  void seek(size_t p) { pos_ = p; }

  Result<uint16_t> u16(size_t end) {
    if (pos_ > end || end - pos_ < 2) return fail(Errc::invalid_input, "dns: truncated message");
    uint16_t v = static_cast<uint16_t>((w_[pos_] << 8) | w_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  Result<uint32_t> u32(size_t end) {
    auto hi = u16(end);
    if (!hi) return tl::unexpected(hi.error());
    auto lo = u16(end);
    if (!lo) return tl::unexpected(lo.error());
    return (uint32_t{*hi} << 16) | *lo;
  }

  // A name starting at pos(); its in-place part must end by `end`. Pointers must point strictly
  // before the start of the name (then before the previous target), so every jump goes further
  // back and no loop is possible; their number is bounded too.
  Result<DnsName> name(size_t end) {
    DnsName out;
    size_t p = pos_;
    size_t bound = end;
    size_t limit = pos_;
    size_t wire_size = 1;  // the root's zero octet
    size_t jumps = 0;
    bool jumped = false;
    for (;;) {
      if (p >= bound) return fail(Errc::invalid_input, "dns: truncated name");
      const uint8_t len = w_[p];
      if ((len & 0xc0) == 0xc0) {
        if (p + 1 >= bound) return fail(Errc::invalid_input, "dns: truncated compression pointer");
        const size_t target = (size_t{len & 0x3fu} << 8) | w_[p + 1];
        if (!jumped) {
          pos_ = p + 2;
          jumped = true;
        }
        if (target >= limit || target < kHeaderSize)
          return fail(Errc::invalid_input, "dns: compression pointer does not point backwards");
        if (++jumps > limits_.max_pointer_jumps)
          return fail(Errc::limit_exceeded, "dns: too many compression pointers in a name");
        limit = target;
        p = target;
        bound = w_.size();
        continue;
      }
      if ((len & 0xc0) != 0) return fail(Errc::invalid_input, "dns: unsupported label type");
      if (len == 0) {
        if (!jumped) pos_ = p + 1;
        return out;
      }
      if (bound - p - 1 < len) return fail(Errc::invalid_input, "dns: truncated label");
      wire_size += 1 + size_t{len};
      if (wire_size > kMaxNameWireSize)
        return fail(Errc::invalid_input, "dns: name longer than 255 bytes");
      out.emplace_back(reinterpret_cast<const char*>(w_.data() + p + 1), len);
      p += 1 + size_t{len};
    }
  }

  Result<Question> question() {
    Question q;
    auto n = name(w_.size());
    if (!n) return tl::unexpected(n.error());
    q.name = std::move(*n);
    auto type = u16(w_.size());
    if (!type) return tl::unexpected(type.error());
    auto cls = u16(w_.size());
    if (!cls) return tl::unexpected(cls.error());
    q.type = static_cast<RrType>(*type);
    q.unicast_response = (*cls & kTopBit) != 0;
    q.qclass = *cls & ~kTopBit;
    return q;
  }

  Result<ResourceRecord> record() {
    ResourceRecord r;
    const size_t end = w_.size();
    auto n = name(end);
    if (!n) return tl::unexpected(n.error());
    r.name = std::move(*n);
    auto type = u16(end);
    if (!type) return tl::unexpected(type.error());
    auto cls = u16(end);
    if (!cls) return tl::unexpected(cls.error());
    auto ttl = u32(end);
    if (!ttl) return tl::unexpected(ttl.error());
    auto rdlength = u16(end);
    if (!rdlength) return tl::unexpected(rdlength.error());
    r.type = static_cast<RrType>(*type);
    r.cache_flush = (*cls & kTopBit) != 0;
    r.rclass = *cls & ~kTopBit;
    r.ttl = *ttl;
    if (end - pos_ < *rdlength) return fail(Errc::invalid_input, "dns: truncated record data");
    const size_t rd_begin = pos_;
    const size_t rd_end = pos_ + *rdlength;
    auto rd = rdata(r.type, rd_begin, rd_end);
    if (!rd) return tl::unexpected(rd.error());
    r.data = std::move(*rd);
    pos_ = rd_end;
    return r;
  }

 private:
  Result<RData> rdata(RrType type, size_t begin, size_t end) {
    const size_t size = end - begin;
    switch (type) {
      case RrType::a: {
        if (size != 4) return fail(Errc::invalid_input, "dns: A record data is not 4 bytes");
        AData a;
        std::copy(w_.begin() + begin, w_.begin() + end, a.address.begin());
        return a;
      }
      case RrType::aaaa: {
        if (size != 16) return fail(Errc::invalid_input, "dns: AAAA record data is not 16 bytes");
        AaaaData a;
        std::copy(w_.begin() + begin, w_.begin() + end, a.address.begin());
        return a;
      }
      case RrType::ptr: {
        auto target = name(end);
        if (!target) return tl::unexpected(target.error());
        if (pos_ != end) return fail(Errc::invalid_input, "dns: PTR record data has extra bytes");
        return PtrData{std::move(*target)};
      }
      case RrType::srv: {
        SrvData s;
        auto priority = u16(end);
        if (!priority) return tl::unexpected(priority.error());
        auto weight = u16(end);
        if (!weight) return tl::unexpected(weight.error());
        auto port = u16(end);
        if (!port) return tl::unexpected(port.error());
        auto target = name(end);
        if (!target) return tl::unexpected(target.error());
        if (pos_ != end) return fail(Errc::invalid_input, "dns: SRV record data has extra bytes");
        s.priority = *priority;
        s.weight = *weight;
        s.port = *port;
        s.target = std::move(*target);
        return s;
      }
      case RrType::txt: {
        TxtData t;
        size_t p = begin;
        while (p < end) {
          const size_t len = w_[p];
          if (end - p - 1 < len) return fail(Errc::invalid_input, "dns: truncated TXT string");
          if (t.strings.size() >= limits_.max_txt_strings)
            return fail(Errc::limit_exceeded, "dns: too many TXT strings");
          t.strings.emplace_back(reinterpret_cast<const char*>(w_.data() + p + 1), len);
          p += 1 + len;
        }
        return t;
      }
      default:
        return RawData{Bytes(w_.begin() + begin, w_.begin() + end)};
    }
  }

  BytesView w_;
  const DnsLimits& limits_;
  size_t pos_ = 0;
};

class Writer {
 public:
  Bytes take() { return std::move(out_); }
  size_t size() const { return out_.size(); }

  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) {
    out_.push_back(static_cast<uint8_t>(v >> 8));
    out_.push_back(static_cast<uint8_t>(v));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  }
  void patch_u16(size_t at, uint16_t v) {
    out_[at] = static_cast<uint8_t>(v >> 8);
    out_[at + 1] = static_cast<uint8_t>(v);
  }

  // Writes the name, replacing the longest suffix already written by a pointer to it.
  Result<void> name(const DnsName& n) {
    size_t wire_size = 1;
    for (const auto& label : n) {
      if (label.empty()) return fail(Errc::invalid_input, "dns: empty label");
      if (label.size() > kMaxLabelSize)
        return fail(Errc::invalid_input, "dns: label longer than 63 bytes");
      wire_size += 1 + label.size();
    }
    if (wire_size > kMaxNameWireSize)
      return fail(Errc::invalid_input, "dns: name longer than 255 bytes");
    // keys[i]: the suffix n[i..], each label prefixed by its length. Case is kept (a pointer
    // only to the same spelling), so a decoded message re-encodes to what it said.
    std::vector<std::string> keys(n.size());
    std::string suffix;
    for (size_t i = n.size(); i-- > 0;) {
      std::string key;
      key.push_back(static_cast<char>(n[i].size()));
      key += n[i];
      suffix = key + suffix;
      keys[i] = suffix;
    }
    for (size_t i = 0; i < n.size(); ++i) {
      if (auto it = offsets_.find(keys[i]); it != offsets_.end()) {
        u16(static_cast<uint16_t>(0xc000 | it->second));
        return {};
      }
      if (out_.size() < 0x4000) offsets_.emplace(keys[i], static_cast<uint16_t>(out_.size()));
      u8(static_cast<uint8_t>(n[i].size()));
      out_.insert(out_.end(), n[i].begin(), n[i].end());
    }
    u8(0);
    return {};
  }

  Result<void> question(const Question& q) {
    if (auto r = name(q.name); !r) return r;
    u16(static_cast<uint16_t>(q.type));
    u16(static_cast<uint16_t>((q.qclass & ~kTopBit) | (q.unicast_response ? kTopBit : 0)));
    return {};
  }

  Result<void> record(const ResourceRecord& r) {
    if (auto n = name(r.name); !n) return n;
    u16(static_cast<uint16_t>(r.type));
    u16(static_cast<uint16_t>((r.rclass & ~kTopBit) | (r.cache_flush ? kTopBit : 0)));
    u32(r.ttl);
    const size_t length_at = out_.size();
    u16(0);
    if (auto d = rdata(r.type, r.data); !d) return d;
    const size_t length = out_.size() - length_at - 2;
    if (length > 0xffff) return fail(Errc::invalid_input, "dns: record data over 65535 bytes");
    patch_u16(length_at, static_cast<uint16_t>(length));
    return {};
  }

 private:
  Result<void> rdata(RrType type, const RData& data) {
    auto mismatch = [] { return fail(Errc::invalid_input, "dns: record data does not fit type"); };
    if (auto* raw = std::get_if<RawData>(&data)) {
      out_.insert(out_.end(), raw->bytes.begin(), raw->bytes.end());
      return {};
    }
    if (auto* ptr = std::get_if<PtrData>(&data)) {
      if (type != RrType::ptr) return mismatch();
      return name(ptr->target);
    }
    if (auto* txt = std::get_if<TxtData>(&data)) {
      if (type != RrType::txt) return mismatch();
      for (const auto& s : txt->strings) {
        if (s.size() > kMaxTxtStringSize)
          return fail(Errc::invalid_input, "dns: TXT string longer than 255 bytes");
        u8(static_cast<uint8_t>(s.size()));
        out_.insert(out_.end(), s.begin(), s.end());
      }
      return {};
    }
    if (auto* a = std::get_if<AData>(&data)) {
      if (type != RrType::a) return mismatch();
      out_.insert(out_.end(), a->address.begin(), a->address.end());
      return {};
    }
    if (auto* aaaa = std::get_if<AaaaData>(&data)) {
      if (type != RrType::aaaa) return mismatch();
      out_.insert(out_.end(), aaaa->address.begin(), aaaa->address.end());
      return {};
    }
    const auto& srv = std::get<SrvData>(data);
    if (type != RrType::srv) return mismatch();
    u16(srv.priority);
    u16(srv.weight);
    u16(srv.port);
    return name(srv.target);
  }

  Bytes out_;
  std::map<std::string, uint16_t> offsets_;  // suffix key -> offset, for compression
};

}  // namespace

DnsName name_from_string(std::string_view dotted) {
  DnsName out;
  if (!dotted.empty() && dotted.back() == '.') dotted.remove_suffix(1);
  while (!dotted.empty()) {
    auto dot = dotted.find('.');
    out.emplace_back(dotted.substr(0, dot));
    if (dot == std::string_view::npos) break;
    dotted.remove_prefix(dot + 1);
  }
  return out;
}

std::string name_to_string(const DnsName& name) {
  std::string out;
  for (const auto& label : name) {
    if (!out.empty()) out.push_back('.');
    out += label;
  }
  return out;
}

bool labels_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool names_equal(const DnsName& a, const DnsName& b) {
  return name_has_suffix(a, b, 0);
}

bool name_has_suffix(const DnsName& name, const DnsName& suffix, size_t extra) {
  if (name.size() != suffix.size() + extra) return false;
  for (size_t i = 0; i < suffix.size(); ++i)
    if (!labels_equal(name[extra + i], suffix[i])) return false;
  return true;
}

Result<Message> decode(BytesView wire, const DnsLimits& limits) {
  if (wire.size() > limits.max_message_size)
    return fail(Errc::limit_exceeded,
                "dns: message larger than " + std::to_string(limits.max_message_size) + " bytes");
  if (wire.size() < kHeaderSize) return fail(Errc::invalid_input, "dns: truncated header");
  Reader r(wire, limits);
  Message m;
  uint16_t counts[4];
  m.id = *r.u16(kHeaderSize);
  m.flags = *r.u16(kHeaderSize);
  for (auto& c : counts) c = *r.u16(kHeaderSize);
  const size_t records = size_t{counts[1]} + counts[2] + counts[3];
  if (counts[0] > limits.max_questions)
    return fail(Errc::limit_exceeded, "dns: too many questions");
  if (records > limits.max_records) return fail(Errc::limit_exceeded, "dns: too many records");
  if (counts[0] * kMinQuestionSize + records * kMinRecordSize > wire.size() - kHeaderSize)
    return fail(Errc::invalid_input, "dns: counts exceed the message size");
  m.questions.reserve(counts[0]);
  for (size_t i = 0; i < counts[0]; ++i) {
    auto q = r.question();
    if (!q) return tl::unexpected(q.error());
    m.questions.push_back(std::move(*q));
  }
  std::vector<ResourceRecord>* sections[3] = {&m.answers, &m.authorities, &m.additionals};
  for (size_t s = 0; s < 3; ++s) {
    sections[s]->reserve(counts[s + 1]);
    for (size_t i = 0; i < counts[s + 1]; ++i) {
      auto rr = r.record();
      if (!rr) return tl::unexpected(rr.error());
      sections[s]->push_back(std::move(*rr));
    }
  }
  // Trailing bytes are ignored (some stacks pad).
  return m;
}

Result<Bytes> encode(const Message& m) {
  const size_t counts[4] = {m.questions.size(), m.answers.size(), m.authorities.size(),
                            m.additionals.size()};
  for (size_t c : counts)
    if (c > 0xffff) return fail(Errc::invalid_input, "dns: more than 65535 entries in a section");
  Writer w;
  w.u16(m.id);
  w.u16(m.flags);
  for (size_t c : counts) w.u16(static_cast<uint16_t>(c));
  for (const auto& q : m.questions)
    if (auto r = w.question(q); !r) return tl::unexpected(r.error());
  for (const auto* section : {&m.answers, &m.authorities, &m.additionals})
    for (const auto& rr : *section)
      if (auto r = w.record(rr); !r) return tl::unexpected(r.error());
  return w.take();
}

}  // namespace p2pmq::mdns
