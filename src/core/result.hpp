#pragma once
// Errors on every path that handles untrusted input.
// tl::expected (Debian's libexpected-dev) rather than std::expected: clang 14, which builds
// the libFuzzer targets, cannot compile libstdc++ 12's <expected>.
#include <string>
#include <tl/expected.hpp>
#include <utility>

namespace p2pmq {

enum class Errc {
  invalid_input,       // malformed bytes or text from a peer or user
  limit_exceeded,      // a configured bound refused it
  unsupported,         // a valid but unsupported protocol, key type, codec...
  crypto_failure,      // a signature, MAC or key check failed
  peer_id_mismatch,    // the remote proved a different identity than expected
  protocol_violation,  // a state machine received something its state forbids
  closed,              // the stream or connection is gone
  timeout,
  io,
  not_found,
};

const char* errc_name(Errc c);

struct Error {
  Errc code;
  std::string message;
  std::string to_string() const { return std::string(errc_name(code)) + ": " + message; }
};

template <class T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(Errc code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}

}  // namespace p2pmq
