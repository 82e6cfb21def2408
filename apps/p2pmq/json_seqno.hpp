#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace p2pmq::cli {

// The largest integer a JSON reader that uses doubles (JavaScript) reads exactly: 2^53 - 1.
inline constexpr uint64_t kMaxExactJsonInteger = (uint64_t{1} << 53) - 1;

// A seqno in the JSON we print (stdio events, `--json` output): a number up to 2^53 - 1, a
// decimal string above, as the go, rust and js reference peers print theirs. Seqnos of other
// implementations (go and rust count from the Unix time in ns) and `stock` seqnos of topic
// numbers from 2^13 on exceed 2^53, and a JavaScript reader would round them as numbers.
inline nlohmann::json json_seqno(uint64_t seqno) {
  if (seqno <= kMaxExactJsonInteger) return seqno;
  return std::to_string(seqno);
}

}  // namespace p2pmq::cli
