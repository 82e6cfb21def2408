#include "crypto/aead.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "test_util.hpp"

namespace p2pmq::crypto {
namespace {

using test::hex;
using test::hex_array;

// RFC 8439 section 2.8.2.
struct Rfc8439 {
  AeadKey key = hex_array<32>("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  AeadNonce nonce = hex_array<12>("070000004041424344454647");
  Bytes ad = hex("50515253c0c1c2c3c4c5c6c7");
  Bytes plaintext = to_bytes(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
      "future, sunscreen would be it.");
  Bytes sealed = hex(
      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da"
      "92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad6759455"
      "85808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
      "1ae10b594f09e26a7e902ecbd0600691");
};

TEST(Aead, Rfc8439Seal) {
  Rfc8439 v;
  Bytes out(v.plaintext.size() + kAeadTag);
  aead_seal(v.key, v.nonce, v.ad, v.plaintext, out.data());
  EXPECT_EQ(out, v.sealed);
}

TEST(Aead, Rfc8439Open) {
  Rfc8439 v;
  Bytes out(v.sealed.size() - kAeadTag);
  ASSERT_TRUE(aead_open(v.key, v.nonce, v.ad, v.sealed, out.data()));
  EXPECT_EQ(out, v.plaintext);
}

TEST(Aead, InPlace) {
  Rfc8439 v;
  Bytes buf = v.plaintext;
  buf.resize(buf.size() + kAeadTag);
  aead_seal(v.key, v.nonce, v.ad, BytesView(buf).first(v.plaintext.size()), buf.data());
  EXPECT_EQ(buf, v.sealed);
  ASSERT_TRUE(aead_open(v.key, v.nonce, v.ad, buf, buf.data()));
  EXPECT_EQ(Bytes(buf.begin(), buf.end() - kAeadTag), v.plaintext);
}

TEST(Aead, RejectsTampering) {
  Rfc8439 v;
  Bytes out(v.sealed.size() - kAeadTag, 0xee);
  for (size_t i : {size_t{0}, v.sealed.size() - 1}) {  // a ciphertext byte, a tag byte
    Bytes bad = v.sealed;
    bad[i] ^= 1;
    EXPECT_FALSE(aead_open(v.key, v.nonce, v.ad, bad, out.data()));
    EXPECT_EQ(out, Bytes(out.size(), 0));  // no unauthenticated plaintext leaks out
  }
  Bytes bad_ad = v.ad;
  bad_ad[0] ^= 1;
  EXPECT_FALSE(aead_open(v.key, v.nonce, bad_ad, v.sealed, out.data()));
  AeadNonce bad_nonce = v.nonce;
  bad_nonce[11] ^= 1;
  EXPECT_FALSE(aead_open(v.key, bad_nonce, v.ad, v.sealed, out.data()));
  uint8_t small[1];
  EXPECT_FALSE(aead_open(v.key, v.nonce, v.ad, BytesView(v.sealed).first(kAeadTag - 1), small));
}

// Small messages go through libsodium, large ones through OpenSSL. ChaCha20's keystream does
// not depend on the length, so a short message's ciphertext is a prefix of a long one's.
TEST(Aead, BackendsAgree) {
  Rfc8439 v;
  Bytes pt(4096);
  for (size_t i = 0; i < pt.size(); ++i) pt[i] = static_cast<uint8_t>(i * 13 + 1);
  Bytes small(100 + kAeadTag), large(pt.size() + kAeadTag);
  aead_seal(v.key, v.nonce, v.ad, BytesView(pt).first(100), small.data());
  aead_seal(v.key, v.nonce, v.ad, pt, large.data());
  EXPECT_TRUE(std::equal(small.begin(), small.begin() + 100, large.begin()));
  for (size_t n : {size_t{510}, size_t{511}, size_t{512}, size_t{513}, size_t{4096}}) {
    Bytes ct(n + kAeadTag);
    aead_seal(v.key, v.nonce, v.ad, BytesView(pt).first(n), ct.data());
    EXPECT_TRUE(std::equal(ct.begin(), ct.begin() + n, large.begin())) << n;
    Bytes out(n);
    ASSERT_TRUE(aead_open(v.key, v.nonce, v.ad, ct, out.data())) << n;
    EXPECT_EQ(out, Bytes(pt.begin(), pt.begin() + n));
    ct[n] ^= 1;  // the tag
    EXPECT_FALSE(aead_open(v.key, v.nonce, v.ad, ct, out.data())) << n;
    EXPECT_EQ(out, Bytes(n, 0)) << n;
  }
}

TEST(Aead, EmptyAndLargeRoundTrip) {
  AeadKey key{};
  AeadNonce nonce{};
  for (size_t n : {size_t{0}, size_t{1}, size_t{65535}, size_t{1} << 20}) {
    Bytes pt(n);
    for (size_t i = 0; i < n; ++i) pt[i] = static_cast<uint8_t>(i * 7);
    Bytes ct(n + kAeadTag);
    aead_seal(key, nonce, {}, pt, ct.data());
    Bytes back(n);
    ASSERT_TRUE(aead_open(key, nonce, {}, ct, back.data()));
    EXPECT_EQ(back, pt);
  }
}

}  // namespace
}  // namespace p2pmq::crypto
