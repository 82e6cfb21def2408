#pragma once
// Test vocabulary: peer ids and a byte writer for hand-built DNS messages.
#include <string>
#include <string_view>

#include "core/bytes.hpp"
#include "crypto/keys.hpp"
#include "crypto/peer_id.hpp"

namespace p2pmq::mdns::test {

inline crypto::PeerId peer(uint8_t i) {
  crypto::PrivateKey::Seed seed{};
  seed[0] = i;
  seed[1] = 0x5a;
  return crypto::PeerId::from_public_key(crypto::PrivateKey::from_seed(seed).public_key());
}

// Writes a DNS message field by field, so tests control every byte (pointers included).
struct Wire {
  Bytes b;
  size_t size() const { return b.size(); }
  Wire& u8(uint8_t v) {
    b.push_back(v);
    return *this;
  }
  Wire& u16(uint16_t v) { return u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v)); }
  Wire& u32(uint32_t v) {
    return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v));
  }
  Wire& raw(std::string_view s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Wire& label(std::string_view s) { return u8(static_cast<uint8_t>(s.size())).raw(s); }
  Wire& ptr(size_t offset) { return u16(static_cast<uint16_t>(0xc000 | offset)); }
  Wire& root() { return u8(0); }
  Wire& header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar) {
    return u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
  }
  // Type, class, ttl and a placeholder rdlength; returns where the length goes.
  size_t rr_fixed(uint16_t type, uint16_t cls, uint32_t ttl) {
    u16(type).u16(cls).u32(ttl);
    size_t at = b.size();
    u16(0);
    return at;
  }
  void end_rdata(size_t length_at) {
    size_t len = b.size() - length_at - 2;
    b[length_at] = static_cast<uint8_t>(len >> 8);
    b[length_at + 1] = static_cast<uint8_t>(len);
  }
  Wire& txt_string(std::string_view s) { return label(s); }
};

}  // namespace p2pmq::mdns::test
