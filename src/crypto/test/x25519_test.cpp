#include "crypto/x25519.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace p2pmq::crypto {
namespace {

using test::hex_array;

// RFC 7748 section 6.1.
TEST(X25519, Rfc7748) {
  auto alice = hex_array<32>("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  auto alice_pub =
      hex_array<32>("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  auto bob = hex_array<32>("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  auto bob_pub = hex_array<32>("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  auto shared = hex_array<32>("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  auto ab = x25519(alice, bob_pub);
  auto ba = x25519(bob, alice_pub);
  ASSERT_TRUE(ab && ba);
  EXPECT_EQ(*ab, shared);
  EXPECT_EQ(*ba, shared);
  // The public key is the scalar times the base point 9.
  X25519Key nine{9};
  EXPECT_EQ(*x25519(alice, nine), alice_pub);
}

TEST(X25519, GeneratedKeypairsAgree) {
  auto a = X25519Keypair::generate();
  auto b = X25519Keypair::generate();
  EXPECT_NE(a.secret, b.secret);
  auto ab = x25519(a.secret, b.public_key);
  auto ba = x25519(b.secret, a.public_key);
  ASSERT_TRUE(ab && ba);
  EXPECT_EQ(*ab, *ba);
}

TEST(X25519, RejectsLowOrderPoints) {
  auto kp = X25519Keypair::generate();
  X25519Key zero{};
  X25519Key one{1};
  for (const auto& p : {zero, one}) {
    auto r = x25519(kp.secret, p);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::crypto_failure);
  }
}

}  // namespace
}  // namespace p2pmq::crypto
