#pragma once
// An in-memory Backend for the API tests: one worker thread plays the agent's io thread, so
// callbacks and sinks arrive on it, as they would from the agent.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "api/backend.hpp"

namespace p2pmq::api::test {

class FakeBackend final : public Backend {
 public:
  FakeBackend() : io_([this] { run(); }) {}
  ~FakeBackend() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    io_.join();
  }

  void subscribe(const std::string& topic, std::function<void(Result<void>)> done) override {
    post([this, topic, done = std::move(done)] {
      ++subscribe_calls_;
      topics_.insert(topic);
      done({});
    });
  }
  void unsubscribe(const std::string& topic, std::function<void(Result<void>)> done) override {
    post([this, topic, done = std::move(done)] {
      topics_.erase(topic);
      done({});
    });
  }
  void publish(const std::string& topic, Bytes data,
               std::function<void(Result<PublishResult>)> done) override {
    post([this, topic, data = std::move(data), done = std::move(done)]() mutable {
      if (hold_publish_) {  // answered by release_publishes()
        held_publishes_.push_back(std::move(done));
        return;
      }
      if (fail_publish_) {
        done(fail(Errc::limit_exceeded, "publish refused by the test"));
        return;
      }
      topics_.insert(topic);
      AgentMessage m;
      m.topic = topic;
      m.seqno = ++seqnos_[topic];
      m.id = to_bytes(topic + "/" + std::to_string(m.seqno));
      m.data = std::move(data);
      m.origin = "12D3KooWSelf";
      m.received = std::chrono::system_clock::now();
      deliver_on_io(m);
      done(PublishResult{m.id, m.seqno});
    });
  }
  uint64_t add_listener(const std::string& topic, ListenOptions options,
                        std::function<void(const SharedListenItem&)> sink,
                        std::function<void(const Error&)>) override {
    uint64_t h = next_handle_++;
    post([this, h, topic, options, sink = std::move(sink)] {
      topics_.insert(topic);
      listeners_[h] = {topic, options, sink};
    });
    return h;
  }
  void remove_listener(uint64_t handle) override {
    post([this, handle] { listeners_.erase(handle); });
  }
  void status(std::function<void(AgentStatus)> done) override {
    post([this, done = std::move(done)] {
      AgentStatus s;
      s.peer_id = "12D3KooWSelf";
      s.listen_addrs = {"/ip4/127.0.0.1/tcp/4001"};
      s.topics.assign(topics_.begin(), topics_.end());
      PeerStatus p;
      p.peer_id = "12D3KooWOther";
      p.addrs = {"/ip4/127.0.0.1/tcp/4002"};
      p.topics = {"t"};
      p.mesh_topics = {"t"};
      p.score = 1.5;
      p.agent_version = "p2pmq/test";
      s.peers.push_back(p);
      s.connected_peers = 1;
      if (extend_status_) extend_status_(s);
      done(std::move(s));
    });
  }

  // Test helpers, callable from any thread; they wait for the io thread.
  void deliver(AgentMessage m) {
    run_sync([&] { deliver_on_io(m); });
  }
  // To every listener of the topic, ordered or not.
  void deliver_gap(GapNotice g) {
    run_sync([&] {
      auto item = std::make_shared<const ListenItem>(g);
      for (auto& [_, l] : listeners_) {
        if (l.topic == g.topic) l.sink(item);
      }
    });
  }
  size_t listeners(const std::string& topic) {
    return run_sync([&] {
      size_t n = 0;
      for (auto& [_, l] : listeners_) n += l.topic == topic;
      return n;
    });
  }
  // Listeners of `topic` that asked for ordered delivery.
  size_t ordered_listeners(const std::string& topic) {
    return run_sync([&] {
      size_t n = 0;
      for (auto& [_, l] : listeners_) n += l.topic == topic && l.options.ordered;
      return n;
    });
  }
  // Runs on the io thread on every status() before it is returned.
  void set_status_extender(std::function<void(AgentStatus&)> f) {
    run_sync([&] { extend_status_ = std::move(f); });
  }
  size_t listeners() {
    return run_sync([&] { return listeners_.size(); });
  }
  std::set<std::string> topics() {
    return run_sync([&] { return topics_; });
  }
  int subscribe_calls() {
    return run_sync([&] { return subscribe_calls_; });
  }
  void set_fail_publish(bool f) {
    run_sync([&] { fail_publish_ = f; });
  }
  // While set, publishes stay unanswered (a busy io thread); release answers them.
  void set_hold_publish(bool h) {
    run_sync([&] { hold_publish_ = h; });
  }
  size_t held_publishes() {
    return run_sync([&] { return held_publishes_.size(); });
  }
  void release_publishes() {
    run_sync([&] {
      hold_publish_ = false;
      for (auto& done : held_publishes_) done(PublishResult{to_bytes("id"), 1});
      held_publishes_.clear();
    });
  }

 private:
  void deliver_on_io(const AgentMessage& m) {
    auto item = std::make_shared<const ListenItem>(m);
    for (auto& [_, l] : listeners_) {
      if (l.topic == m.topic) l.sink(item);
    }
  }

  template <class F>
  std::invoke_result_t<F> run_sync(F f) {
    std::packaged_task<std::invoke_result_t<F>()> task(f);
    auto fut = task.get_future();
    post([&task] { task(); });
    return fut.get();
  }

  void post(std::function<void()> f) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(f));
    }
    cv_.notify_one();
  }

  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      auto f = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      f();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::atomic<uint64_t> next_handle_{1};
  // io-thread state
  std::set<std::string> topics_;
  struct Listener {
    std::string topic;
    ListenOptions options;
    std::function<void(const SharedListenItem&)> sink;
  };
  std::map<uint64_t, Listener> listeners_;
  std::function<void(AgentStatus&)> extend_status_;
  std::map<std::string, uint64_t> seqnos_;
  int subscribe_calls_ = 0;
  bool fail_publish_ = false;
  bool hold_publish_ = false;
  std::vector<std::function<void(Result<PublishResult>)>> held_publishes_;
  std::thread io_;  // last: starts after the state above exists
};

// Polls `pred` until it holds or `limit` passes (tests wait on conditions, never on time).
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

}  // namespace p2pmq::api::test
