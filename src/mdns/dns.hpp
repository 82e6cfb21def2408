#pragma once
// The DNS message format (RFC 1035 §4) as multicast DNS uses it (RFC 6762 §18): header,
// questions and resource records. PTR, TXT, A, AAAA and SRV data are decoded; any other type is
// kept as raw bytes so a record we do not understand never spoils a message. Names may be
// compressed (RFC 1035 §4.1.4): decoding follows pointers only backwards and a bounded number of
// times; encoding compresses owner names and PTR/SRV targets (same spelling only: case is kept).
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace p2pmq::mdns {

enum class RrType : uint16_t {
  a = 1,
  ptr = 12,
  txt = 16,
  aaaa = 28,
  srv = 33,
  any = 255,  // questions only
};

inline constexpr uint16_t kClassIn = 1;
inline constexpr uint16_t kClassAny = 255;

// Header flag bits.
inline constexpr uint16_t kFlagResponse = 0x8000;       // QR
inline constexpr uint16_t kFlagAuthoritative = 0x0400;  // AA
inline constexpr uint16_t kFlagTruncated = 0x0200;      // TC
inline uint16_t opcode_of(uint16_t flags) {
  return (flags >> 11) & 0x0f;
}
inline uint16_t rcode_of(uint16_t flags) {
  return flags & 0x0f;
}

inline constexpr size_t kMaxLabelSize = 63;
inline constexpr size_t kMaxNameWireSize = 255;  // length octets included
inline constexpr size_t kMaxTxtStringSize = 255;
inline constexpr size_t kHeaderSize = 12;

// A domain name as its labels, bytes as received. Compare with names_equal (ASCII case is not
// significant in DNS). The root is the empty list.
using DnsName = std::vector<std::string>;

// "a.b.c" (a trailing dot is allowed) into labels; for names we write ourselves (no escapes).
DnsName name_from_string(std::string_view dotted);
std::string name_to_string(const DnsName& name);
bool labels_equal(std::string_view a, std::string_view b);
bool names_equal(const DnsName& a, const DnsName& b);
// `name` is `suffix` preceded by exactly `extra` labels.
bool name_has_suffix(const DnsName& name, const DnsName& suffix, size_t extra);

struct Question {
  DnsName name;
  RrType type = RrType::ptr;
  uint16_t qclass = kClassIn;
  bool unicast_response = false;  // the QU bit (top bit of the class, RFC 6762 §5.4)
  bool operator==(const Question&) const = default;
};

struct PtrData {
  DnsName target;
  bool operator==(const PtrData&) const = default;
};
struct TxtData {
  std::vector<std::string> strings;  // each at most 255 bytes
  bool operator==(const TxtData&) const = default;
};
struct AData {
  std::array<uint8_t, 4> address{};
  bool operator==(const AData&) const = default;
};
struct AaaaData {
  std::array<uint8_t, 16> address{};
  bool operator==(const AaaaData&) const = default;
};
struct SrvData {
  uint16_t priority = 0;
  uint16_t weight = 0;
  uint16_t port = 0;
  DnsName target;
  bool operator==(const SrvData&) const = default;
};
struct RawData {  // a type this codec does not interpret
  Bytes bytes;
  bool operator==(const RawData&) const = default;
};
using RData = std::variant<RawData, PtrData, TxtData, AData, AaaaData, SrvData>;

struct ResourceRecord {
  DnsName name;
  RrType type = RrType::ptr;
  uint16_t rclass = kClassIn;
  bool cache_flush = false;  // top bit of the class (RFC 6762 §10.2)
  uint32_t ttl = 0;          // seconds
  RData data;
  bool operator==(const ResourceRecord&) const = default;
};

struct Message {
  uint16_t id = 0;
  uint16_t flags = 0;
  std::vector<Question> questions;
  std::vector<ResourceRecord> answers;
  std::vector<ResourceRecord> authorities;
  std::vector<ResourceRecord> additionals;
  bool is_response() const { return (flags & kFlagResponse) != 0; }
  bool operator==(const Message&) const = default;
};

// Bounds on untrusted messages.
struct DnsLimits {
  size_t max_message_size = 9000;  // RFC 6762 §17: the largest mDNS message
  size_t max_questions = 64;
  size_t max_records = 256;  // answers + authorities + additionals
  size_t max_pointer_jumps = 16;
  size_t max_txt_strings = 64;  // per TXT record
};

Result<Message> decode(BytesView wire, const DnsLimits& limits = {});
// Fails (invalid_input) on a label longer than 63 bytes, an empty label, a name over 255 bytes,
// a TXT string over 255 bytes, more than 65535 entries in a section or rdata over 65535 bytes, or
// a record whose data does not fit its type (an A record with PtrData...). RawData fits any type.
Result<Bytes> encode(const Message& message);

}  // namespace p2pmq::mdns
