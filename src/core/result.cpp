#include "core/result.hpp"

namespace p2pmq {

const char* errc_name(Errc c) {
  switch (c) {
    case Errc::invalid_input:
      return "invalid input";
    case Errc::limit_exceeded:
      return "limit exceeded";
    case Errc::unsupported:
      return "unsupported";
    case Errc::crypto_failure:
      return "crypto failure";
    case Errc::peer_id_mismatch:
      return "peer id mismatch";
    case Errc::protocol_violation:
      return "protocol violation";
    case Errc::closed:
      return "closed";
    case Errc::timeout:
      return "timeout";
    case Errc::io:
      return "io error";
    case Errc::not_found:
      return "not found";
  }
  return "unknown error";
}

}  // namespace p2pmq
