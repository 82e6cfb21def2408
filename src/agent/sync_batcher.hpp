#pragma once
// Fsyncs off the io thread, batched: with `sync.durability: power_loss` each publish must reach
// the disk before its seqno is used, and an fsync costs milliseconds. The io thread writes
// (without fsync) and calls request(); a worker thread runs one `sync` for every request queued
// when it starts, so a burst of publishes shares one fsync. A request made while a sync runs
// waits for the next one (its write may have come after that sync began).
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/result.hpp"

namespace p2pmq::agent {

class SyncBatcher {
 public:
  using Done = std::function<void(Result<void>)>;
  explicit SyncBatcher(std::function<Result<void>()> sync);
  // Runs what is queued (one more sync), then stops the worker.
  ~SyncBatcher();
  SyncBatcher(const SyncBatcher&) = delete;
  SyncBatcher& operator=(const SyncBatcher&) = delete;

  // Thread-safe. `done` runs on the worker thread with the result of a sync that started after
  // this call; it must not block.
  void request(Done done);
  uint64_t syncs() const;

 private:
  void run();

  std::function<Result<void>()> sync_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Done> queue_;
  bool stopping_ = false;
  uint64_t syncs_ = 0;
  std::thread worker_;  // last: starts once the rest exists
};

}  // namespace p2pmq::agent
