#include "agent/sync_batcher.hpp"

namespace p2pmq::agent {

SyncBatcher::SyncBatcher(std::function<Result<void>()> sync)
    : sync_(std::move(sync)), worker_([this] { run(); }) {}

SyncBatcher::~SyncBatcher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void SyncBatcher::request(Done done) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(done));
  }
  cv_.notify_all();
}

uint64_t SyncBatcher::syncs() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

void SyncBatcher::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    std::vector<Done> batch;
    batch.swap(queue_);
    ++syncs_;
    lock.unlock();
    Result<void> r = sync_();
    for (auto& done : batch) done(r);
    lock.lock();
  }
}

}  // namespace p2pmq::agent
