#pragma once
// External validation, agent side: the agent dials the parent's validator(s) (MsgValidation,
// implemented by the parent application) and keeps one ValidationChannel open per endpoint,
// reconnecting with backoff. validate() sends a message to one connected validator (round robin)
// and calls back with its verdict; replies are matched by message id.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api/backend.hpp"

namespace p2pmq::api {

struct ValidationConfig {
  enum class Policy { ignore, accept };
  // A message without a verdict after this long gets the policy's verdict.
  std::chrono::milliseconds timeout{5000};
  // The verdict when no validator is connected, when one does not answer in time, or when its
  // channel breaks and no other validator can take the message.
  Policy no_validator_policy = Policy::ignore;
  // Reconnection backoff, doubling from initial to max; reset by the first reply on a channel.
  std::chrono::milliseconds reconnect_initial{100};
  std::chrono::milliseconds reconnect_max{10000};
  // Messages awaiting a verdict, in count, in bytes (api::footprint) and per source peer; beyond
  // any of them validate() answers IGNORE at once, whatever the policy: a flood must never be
  // accepted unvalidated.
  size_t max_pending = 4096;
  size_t max_pending_bytes = 64 << 20;
  size_t max_pending_per_peer = 512;
  // PEM root certificates: when set, validators are dialled over TLS.
  std::string tls_ca_file;
};

struct ValidationCounters {
  uint64_t sent = 0;      // messages written to a validator (re-sends included)
  uint64_t accepted = 0;  // verdicts received, by kind
  uint64_t rejected = 0;
  uint64_t ignored = 0;          // IGNORE and unset verdicts
  uint64_t unset = 0;            // of which VERDICT_UNSPECIFIED (or unknown numbers)
  uint64_t timeouts = 0;         // answered by policy after the timeout
  uint64_t no_validator = 0;     // answered by policy: no validator connected
  uint64_t overloaded = 0;       // answered IGNORE: max_pending or max_pending_bytes reached
  uint64_t over_peer_share = 0;  // answered IGNORE: the source's max_pending_per_peer reached
  uint64_t reconnects = 0;       // channels (re)opened after the first
};

class ValidationClient {
 public:
  ValidationClient(std::vector<std::string> endpoints, ValidationConfig config = {});
  // Answers what is pending with the policy's verdict, closes the channels and waits for them.
  ~ValidationClient();
  ValidationClient(const ValidationClient&) = delete;
  ValidationClient& operator=(const ValidationClient&) = delete;

  // Thread-safe. `done` is called exactly once, on a gRPC thread, the client's timer thread or
  // inline: with the validator's verdict, or with the policy's verdict on timeout, when no
  // validator is connected, or when the client is destroyed first; with IGNORE when over a
  // max_pending bound. It must not block. `source`: the peer the message came from (any stable
  // text; empty: not counted per peer).
  void validate(const AgentMessage& message, std::function<void(Verdict)> done,
                const std::string& source = {});

  // Whether some validator's channel is up.
  bool connected() const;
  size_t connected_count() const;
  ValidationCounters counters() const;

  struct Impl;  // opaque; public only so the channel reactors in the .cpp can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2pmq::api
