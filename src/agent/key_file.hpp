#pragma once
// The agent's identity on disk: the libp2p PrivateKey protobuf, readable by its owner only.
// Written as ssh writes keys: a 0600 temporary file in the same directory, fsynced, renamed over
// the target (so a crash leaves the old key or the new one, never half of one) and the
// directory fsynced. Read only from a regular file that no group or other user can read or
// write; anything else is a clear error, never an exception.
#include <string>

#include "core/result.hpp"
#include "crypto/keys.hpp"

namespace p2pmq::agent {

// Errc::not_found when the file does not exist; Errc::invalid_input for a directory, a file
// that is not a key or has group/other permissions (the message says what to run); Errc::io
// when it cannot be read.
Result<crypto::PrivateKey> read_key_file(const std::string& path);
// Creates or replaces `path` (0600, write-then-rename, fsynced).
Result<void> write_key_file(const std::string& path, const crypto::PrivateKey& key);
// read_key_file, or a new key written with write_key_file (and missing parent directories
// created 0700) when the file does not exist. `created` tells which.
Result<crypto::PrivateKey> load_or_create_key_file(const std::string& path, bool& created);

}  // namespace p2pmq::agent
