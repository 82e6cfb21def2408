// agent_e2e: gRPC Publish -> Listen delivery through real p2pmq agents (docs/benchmarks.md,
// "gRPC API end to end").
//
// Spawns 1 or N `p2pmq agent` processes on loopback (ports 0; with N > 1 every agent dials every
// agent started before it, so the network is a full mesh), opens one Listen stream per agent and
// waits for its initial metadata, waits until the gossipsub meshes formed (Admin.Status), then
// publishes --messages messages of --size bytes through Messaging.Publish, round robin over the
// agents, from --publishers client threads with at most --inflight calls in flight each (gRPC
// callback API), either as fast as the window allows (--rate 0) or paced at --rate msg/s in
// total. Every payload starts with the steady_clock time taken just before the Publish call and
// the message's index; each listener takes the steady_clock time when Read returns, so latency is
// "Publish call started -> message read from a Listen stream", on one clock (this process).
//
// Reports publish throughput (acks/s), delivery throughput per listener and in total, latency
// p50/p99/max (end to end, and of the Publish call itself), Missed counts, duplicates, the
// delivery ratio, and the CPU time the agents used. Every child is killed by pid at the end,
// also on errors and on SIGINT/SIGTERM.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "p2pmq/v1/p2pmq.grpc.pb.h"

extern char** environ;

namespace {

namespace v1 = p2pmq::v1;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  std::string p2pmq;
  size_t agents = 1;
  size_t messages = 10000;
  double rate = 0;  // msg/s in total; 0 = as fast as the in-flight window allows
  size_t size = 256;
  size_t publishers = 1;
  size_t inflight = 32;  // per publisher
  size_t warmup = 200;
  uint32_t buffer = 0;     // ListenRequest.buffer_size; 0 = the agent's default
  double time_limit = 90;  // seconds for the publish phase
  std::string topic = "bench";
  std::string gossip = "heartbeat_interval=300ms";
  bool keep_logs = false;
};

[[noreturn]] void usage(const char* why) {
  std::cerr << "error: " << why << "\n"
            << "usage: agent_e2e --p2pmq PATH [--agents N] [--messages N] [--rate R (0 = max)]\n"
               "                 [--size BYTES] [--publishers P] [--inflight W per publisher]\n"
               "                 [--warmup N] [--buffer N] [--time-limit S] [--topic T]\n"
               "                 [--gossip K=V,...] [--keep-logs]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    try {
      if (a == "--p2pmq")
        o.p2pmq = value();
      else if (a == "--agents")
        o.agents = std::stoul(value());
      else if (a == "--messages")
        o.messages = std::stoul(value());
      else if (a == "--rate")
        o.rate = std::stod(value());
      else if (a == "--size")
        o.size = std::stoul(value());
      else if (a == "--publishers")
        o.publishers = std::stoul(value());
      else if (a == "--inflight")
        o.inflight = std::stoul(value());
      else if (a == "--warmup")
        o.warmup = std::stoul(value());
      else if (a == "--buffer")
        o.buffer = static_cast<uint32_t>(std::stoul(value()));
      else if (a == "--time-limit")
        o.time_limit = std::stod(value());
      else if (a == "--topic")
        o.topic = value();
      else if (a == "--gossip")
        o.gossip = value();
      else if (a == "--keep-logs")
        o.keep_logs = true;
      else
        usage(("unknown option " + a).c_str());
    } catch (const std::logic_error&) {
      usage(("bad value for " + a).c_str());
    }
  }
  if (o.p2pmq.empty()) usage("--p2pmq is required");
  if (o.agents < 1 || o.agents > 16) usage("--agents must be 1..16");
  if (o.messages < 1) usage("--messages must be >= 1");
  if (o.size < 16) usage("--size must be >= 16 (timestamp + index)");
  if (o.publishers < 1 || o.inflight < 1) usage("--publishers and --inflight must be >= 1");
  return o;
}

// ---------------------------------------------------------------------------------------------
// Child processes

struct Child {
  pid_t pid = -1;
  int out = -1;
  std::string multiaddr;
  std::string grpc;
  std::string log;
};

// Pids for the signal handler (async-signal-safe: a fixed array of atomics).
constexpr size_t kMaxChildren = 16;
std::atomic<pid_t> g_pids[kMaxChildren];

void on_fatal_signal(int sig) {
  for (auto& p : g_pids) {
    pid_t pid = p.load();
    if (pid > 0) ::kill(pid, SIGKILL);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

bool read_startup(Child& c, Clock::time_point deadline) {
  std::string buffer;
  while (Clock::now() < deadline && (c.multiaddr.empty() || c.grpc.empty())) {
    pollfd p{c.out, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char chunk[4096];
    ssize_t n = ::read(c.out, chunk, sizeof chunk);
    if (n <= 0) return false;  // the child exited
    buffer.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      if (line.rfind("listening ", 0) == 0 && c.multiaddr.empty()) c.multiaddr = line.substr(10);
      if (line.rfind("grpc ", 0) == 0) c.grpc = line.substr(5);
    }
  }
  return !c.multiaddr.empty() && !c.grpc.empty();
}

// Owns the children: the destructor stops them (SIGTERM, then SIGKILL after 5 s), so every
// return path and exception out of main ends them.
class Agents {
 public:
  ~Agents() { stop(); }

  std::optional<std::string> spawn(const Options& o, const std::string& dir, size_t index) {
    Child c;
    c.log = dir + "/agent" + std::to_string(index) + ".log";
    std::vector<std::string> args{
        o.p2pmq,  "--log-level", "warn",    "agent", "--listen", "/ip4/127.0.0.1/tcp/0",
        "--grpc", "127.0.0.1:0", "--topic", o.topic};
    if (!o.gossip.empty()) {
      args.push_back("--gossip");
      args.push_back(o.gossip);
    }
    for (const auto& prev : children_) {  // full mesh: dial every agent started before
      args.push_back("--bootstrap");
      args.push_back(prev.multiaddr);
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, c.log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    int rc = ::posix_spawn(&c.pid, o.p2pmq.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      return "spawn " + o.p2pmq + ": " + std::strerror(rc);
    }
    c.out = fds[0];
    g_pids[children_.size()] = c.pid;
    children_.push_back(c);
    if (!read_startup(children_.back(), Clock::now() + 30s))
      return "agent " + std::to_string(index) + " did not print its addresses within 30 s (see " +
             c.log + ")";
    return std::nullopt;
  }

  void stop() {
    for (auto& c : children_)
      if (c.pid > 0) ::kill(c.pid, SIGTERM);
    auto deadline = Clock::now() + 5s;
    for (size_t i = 0; i < children_.size(); ++i) {
      auto& c = children_[i];
      if (c.pid <= 0) continue;
      while (::waitpid(c.pid, nullptr, WNOHANG) == 0) {
        if (Clock::now() > deadline) {
          ::kill(c.pid, SIGKILL);
          ::waitpid(c.pid, nullptr, 0);
          break;
        }
        std::this_thread::sleep_for(10ms);
      }
      g_pids[i] = 0;
      c.pid = -1;
      if (c.out >= 0) ::close(c.out);
      c.out = -1;
    }
  }

  std::vector<Child>& children() { return children_; }

 private:
  std::vector<Child> children_;
};

// utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15).
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stod(field);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// A channel of its own (a distinct channel argument keeps gRPC from sharing the TCP connection
// between the listeners' and the publishers' channels).
std::shared_ptr<grpc::Channel> channel(const std::string& target, const std::string& tag) {
  grpc::ChannelArguments args;
  args.SetString("p2pmq.bench.channel", tag);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------------------------
// Listeners

constexpr uint64_t kWarmupBit = uint64_t{1} << 63;

struct Listener {
  size_t index = 0;
  std::unique_ptr<grpc::ClientContext> ctx;
  std::thread thread;
  std::atomic<bool> ready{false};
  std::atomic<bool> failed{false};
  // Written by the listener thread only; read after it is joined (or for progress, atomics).
  std::vector<uint8_t> seen;           // per measured message
  std::vector<int64_t> latency_ns;     // one per first delivery of a measured message
  std::atomic<uint64_t> delivered{0};  // measured messages, first copies
  std::atomic<uint64_t> warmup_delivered{0};
  uint64_t duplicates = 0;
  uint64_t missed = 0;
  uint64_t missed_events = 0;
  uint64_t foreign = 0;
  int64_t first_ns = 0, last_ns = 0;
  std::string error;
};

void listen_loop(Listener& l, const std::string& target, const Options& o) {
  auto stub = v1::Messaging::NewStub(channel(target, "listen" + std::to_string(l.index)));
  v1::ListenRequest req;
  req.add_topics(o.topic);
  req.set_buffer_size(o.buffer);
  auto reader = stub->Listen(l.ctx.get(), req);
  reader->WaitForInitialMetadata();
  l.ready = true;
  v1::ListenEvent event;
  while (reader->Read(&event)) {
    int64_t t = now_ns();
    if (event.has_missed()) {
      l.missed += event.missed().count();
      ++l.missed_events;
      continue;
    }
    const auto& data = event.message().data();
    if (data.size() < 16) {
      ++l.foreign;
      continue;
    }
    int64_t sent;
    uint64_t k;
    std::memcpy(&sent, data.data(), 8);
    std::memcpy(&k, data.data() + 8, 8);
    if (k & kWarmupBit) {
      ++l.warmup_delivered;
      continue;
    }
    if (k >= l.seen.size()) {
      ++l.foreign;
      continue;
    }
    if (l.seen[k]) {
      ++l.duplicates;
      continue;
    }
    l.seen[k] = 1;
    l.latency_ns.push_back(t - sent);
    if (l.first_ns == 0) l.first_ns = t;
    l.last_ns = t;
    ++l.delivered;
  }
  auto status = reader->Finish();
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    l.error = status.error_message();
    l.failed = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Publishers

struct PublishStats {
  std::mutex mu;
  std::vector<int64_t> ack_ns;  // Publish call latency
  uint64_t ok = 0, failed = 0;
  int64_t last_ack_ns = 0;
  std::string first_error;
};

// One publisher: messages k = p, p + P, p + 2P, ... through agent k % agents, at most `inflight`
// calls outstanding (callback API; the completions run on gRPC's threads).
class Publisher {
 public:
  Publisher(size_t id, std::vector<std::unique_ptr<v1::Messaging::Stub>> stubs, const Options& o,
            PublishStats& stats)
      : id_(id), stubs_(std::move(stubs)), o_(o), stats_(stats) {}

  // Publishes messages [first, end) of its share; `warmup` sets the warm-up bit in the index.
  // Returns false if the deadline passed first.
  bool run(uint64_t first, uint64_t end, bool warmup, double rate, Clock::time_point start,
           Clock::time_point deadline) {
    uint64_t j = 0;  // how many this publisher sent, for pacing
    for (uint64_t k = first + id_; k < end; k += o_.publishers, ++j) {
      if (rate > 0) {
        auto due = start + std::chrono::nanoseconds(
                               static_cast<int64_t>(static_cast<double>(k - first) * 1e9 / rate));
        std::this_thread::sleep_until(due);
      }
      {
        std::unique_lock lock(mu_);
        if (!cv_.wait_until(lock, deadline, [&] { return outstanding_ < o_.inflight; }))
          return false;
        ++outstanding_;
      }
      if (Clock::now() > deadline) return false;
      send(k, warmup);
    }
    return true;
  }

  // Waits for the outstanding calls (each has its own 10 s deadline).
  void drain() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return outstanding_ == 0; });
  }

 private:
  struct Call {
    grpc::ClientContext ctx;
    v1::PublishRequest req;
    v1::PublishResponse resp;
  };

  void send(uint64_t k, bool warmup) {
    auto* call = new Call;
    call->ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    call->req.set_topic(o_.topic);
    std::string data(o_.size, '\0');
    for (size_t i = 16; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
    uint64_t index = warmup ? (k | kWarmupBit) : k;
    std::memcpy(data.data() + 8, &index, 8);
    int64_t sent = now_ns();
    std::memcpy(data.data(), &sent, 8);
    call->req.set_data(std::move(data));
    auto& stub = stubs_[k % stubs_.size()];
    stub->async()->Publish(&call->ctx, &call->req, &call->resp,
                           [this, call, sent, warmup](grpc::Status status) {
                             int64_t t = now_ns();
                             {
                               std::lock_guard lock(stats_.mu);
                               if (status.ok()) {
                                 if (!warmup) {
                                   ++stats_.ok;
                                   stats_.ack_ns.push_back(t - sent);
                                   stats_.last_ack_ns = std::max(stats_.last_ack_ns, t);
                                 }
                               } else {
                                 ++stats_.failed;
                                 if (stats_.first_error.empty())
                                   stats_.first_error = status.error_message();
                               }
                             }
                             delete call;
                             std::lock_guard lock(mu_);
                             --outstanding_;
                             cv_.notify_all();
                           });
  }

  size_t id_;
  std::vector<std::unique_ptr<v1::Messaging::Stub>> stubs_;
  const Options& o_;
  PublishStats& stats_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t outstanding_ = 0;
};

// ---------------------------------------------------------------------------------------------

double percentile(std::vector<int64_t>& v, double p) {  // v sorted; nearest rank; in ms
  if (v.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return static_cast<double>(v[rank - 1]) / 1e6;
}

// Waits until every agent has every other agent in its mesh of the topic (or, after `limit`,
// at least one); returns the mesh sizes, or nullopt if some agent has none.
std::optional<std::vector<size_t>> wait_for_mesh(const std::vector<Child>& agents,
                                                 const std::string& topic,
                                                 std::chrono::seconds limit) {
  std::vector<std::unique_ptr<v1::Admin::Stub>> stubs;
  for (size_t i = 0; i < agents.size(); ++i)
    stubs.push_back(v1::Admin::NewStub(channel(agents[i].grpc, "admin" + std::to_string(i))));
  auto deadline = Clock::now() + limit;
  std::vector<size_t> sizes(agents.size());
  for (;;) {
    bool ok = true;
    for (size_t i = 0; i < agents.size(); ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 5s);
      v1::StatusRequest req;
      v1::StatusResponse resp;
      sizes[i] = 0;
      if (!stubs[i]->Status(&ctx, req, &resp).ok()) {
        ok = false;
        continue;
      }
      for (const auto& p : resp.peers())
        for (const auto& t : p.mesh_topics()) sizes[i] += t == topic;
    }
    bool full = ok && std::all_of(sizes.begin(), sizes.end(),
                                  [&](size_t s) { return s + 1 >= agents.size(); });
    if (full) return sizes;
    if (Clock::now() > deadline) {
      if (ok && std::all_of(sizes.begin(), sizes.end(), [](size_t s) { return s > 0; }))
        return sizes;
      return std::nullopt;
    }
    std::this_thread::sleep_for(100ms);
  }
}

int run(const Options& o) {
  auto wall_start = Clock::now();
  std::cout << "agent_e2e: agents=" << o.agents << " messages=" << o.messages
            << " rate=" << (o.rate > 0 ? std::to_string(static_cast<long>(o.rate)) : "max")
            << " size=" << o.size << " publishers=" << o.publishers << " inflight=" << o.inflight
            << " warmup=" << o.warmup << " loadavg_start=" << loadavg() << std::endl;

  char dir_template[] = "/tmp/agent-e2e-XXXXXX";
  if (!::mkdtemp(dir_template)) {
    std::cerr << "error: mkdtemp: " << std::strerror(errno) << std::endl;
    return 1;
  }
  std::string dir = dir_template;

  Agents agents;
  for (size_t i = 0; i < o.agents; ++i) {
    if (auto err = agents.spawn(o, dir, i)) {
      std::cerr << "error: " << *err << std::endl;
      return 1;
    }
  }
  auto& children = agents.children();

  // Listen on every agent; wait for the initial metadata of each.
  std::vector<std::unique_ptr<Listener>> listeners;
  for (size_t i = 0; i < children.size(); ++i) {
    auto l = std::make_unique<Listener>();
    l->index = i;
    l->ctx = std::make_unique<grpc::ClientContext>();
    l->seen.assign(o.messages, 0);
    l->latency_ns.reserve(o.messages);
    listeners.push_back(std::move(l));
  }
  for (size_t i = 0; i < children.size(); ++i)
    listeners[i]->thread =
        std::thread(listen_loop, std::ref(*listeners[i]), children[i].grpc, std::cref(o));
  auto cancel_listeners = [&] {
    for (auto& l : listeners) l->ctx->TryCancel();
    for (auto& l : listeners)
      if (l->thread.joinable()) l->thread.join();
  };
  struct JoinGuard {  // joins the listener threads on every return path
    std::function<void()> f;
    ~JoinGuard() { f(); }
  } join_guard{cancel_listeners};

  auto wait_until = [](auto done, std::chrono::milliseconds limit) {
    auto deadline = Clock::now() + limit;
    while (!done() && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    return done();
  };
  if (!wait_until(
          [&] {
            return std::all_of(listeners.begin(), listeners.end(),
                               [](auto& l) { return l->ready.load() || l->failed.load(); });
          },
          20s) ||
      std::any_of(listeners.begin(), listeners.end(), [](auto& l) { return l->failed.load(); })) {
    std::cerr << "error: a Listen stream did not start" << std::endl;
    return 1;
  }

  auto mesh_start = Clock::now();
  std::vector<size_t> mesh(children.size(), 0);
  if (children.size() > 1) {
    auto sizes = wait_for_mesh(children, o.topic, 20s);
    if (!sizes) {
      std::cerr << "error: the mesh did not form within 20 s" << std::endl;
      return 1;
    }
    mesh = *sizes;
  }
  double mesh_s = std::chrono::duration<double>(Clock::now() - mesh_start).count();
  std::cout << "setup: " << std::chrono::duration<double>(Clock::now() - wall_start).count()
            << " s (mesh " << mesh_s << " s), mesh peers per agent:";
  for (auto s : mesh) std::cout << " " << s;
  std::cout << std::endl;

  PublishStats stats;
  std::vector<std::unique_ptr<Publisher>> publishers;
  for (size_t p = 0; p < o.publishers; ++p) {
    std::vector<std::unique_ptr<v1::Messaging::Stub>> stubs;
    for (size_t i = 0; i < children.size(); ++i)
      stubs.push_back(v1::Messaging::NewStub(
          channel(children[i].grpc, "pub" + std::to_string(p) + "." + std::to_string(i))));
    publishers.push_back(std::make_unique<Publisher>(p, std::move(stubs), o, stats));
  }
  auto publish_all = [&](uint64_t end, bool warmup, double rate, double limit_s) {
    auto start = Clock::now();
    auto deadline = start + std::chrono::milliseconds(static_cast<int64_t>(limit_s * 1000));
    std::vector<std::thread> threads;
    std::atomic<bool> all_sent{true};
    for (auto& p : publishers)
      threads.emplace_back([&, pub = p.get()] {
        if (!pub->run(0, end, warmup, rate, start, deadline)) all_sent = false;
        pub->drain();
      });
    for (auto& t : threads) t.join();
    return all_sent.load();
  };

  // Warm-up: opens the publishers' channels and warms caches; waits until every listener saw it.
  if (o.warmup > 0) {
    publish_all(o.warmup, true, o.rate > 0 ? std::min(o.rate, 1000.0) : 0, 30);
    bool warm = wait_until(
        [&] {
          return std::all_of(listeners.begin(), listeners.end(),
                             [&](auto& l) { return l->warmup_delivered.load() >= o.warmup; });
        },
        10s);
    if (!warm) std::cout << "warning: not every listener got every warm-up message" << std::endl;
    std::this_thread::sleep_for(200ms);
  }

  std::vector<double> cpu_before;
  for (auto& c : children) cpu_before.push_back(cpu_seconds(c.pid));
  double self_before = self_cpu_seconds();
  std::string load_before = loadavg();

  int64_t t0 = now_ns();
  bool all_sent = publish_all(o.messages, false, o.rate, o.time_limit);
  int64_t sent_done = now_ns();
  // Drain: until every listener has every acked message, or 2 s without progress (max 15 s).
  {
    auto deadline = Clock::now() + 15s;
    uint64_t last_total = 0;
    auto last_progress = Clock::now();
    for (;;) {
      uint64_t total = 0;
      bool complete = true;
      for (auto& l : listeners) {
        total += l->delivered.load();
        complete &= l->delivered.load() >= stats.ok;
      }
      if (complete || Clock::now() > deadline) break;
      if (total != last_total) {
        last_total = total;
        last_progress = Clock::now();
      } else if (Clock::now() - last_progress > 2s) {
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
  }
  std::vector<double> cpu_used;
  double agents_cpu = 0;
  for (size_t i = 0; i < children.size(); ++i) {
    cpu_used.push_back(cpu_seconds(children[i].pid) - cpu_before[i]);
    agents_cpu += cpu_used.back();
  }
  double self_cpu = self_cpu_seconds() - self_before;
  std::string load_after = loadavg();
  cancel_listeners();
  agents.stop();

  // Report.
  std::vector<int64_t> ack;
  uint64_t acked, pub_failed;
  int64_t last_ack;
  {
    std::lock_guard lock(stats.mu);
    ack = stats.ack_ns;
    acked = stats.ok;
    pub_failed = stats.failed;
    last_ack = stats.last_ack_ns;
    if (!stats.first_error.empty())
      std::cout << "publish errors: " << pub_failed << " (first: " << stats.first_error << ")"
                << std::endl;
  }
  std::sort(ack.begin(), ack.end());
  double publish_s = static_cast<double>(last_ack - t0) / 1e9;
  double publish_rate = publish_s > 0 ? static_cast<double>(acked) / publish_s : 0;
  std::vector<int64_t> all_latency;
  uint64_t delivered = 0, missed = 0, missed_events = 0, dups = 0, foreign = 0;
  int64_t last_delivery = t0;
  for (auto& l : listeners) {
    std::sort(l->latency_ns.begin(), l->latency_ns.end());
    all_latency.insert(all_latency.end(), l->latency_ns.begin(), l->latency_ns.end());
    delivered += l->delivered;
    missed += l->missed;
    missed_events += l->missed_events;
    dups += l->duplicates;
    foreign += l->foreign;
    last_delivery = std::max(last_delivery, l->last_ns);
    if (!l->error.empty()) std::cout << "listener " << l->index << " error: " << l->error << "\n";
  }
  std::sort(all_latency.begin(), all_latency.end());
  double deliver_s = static_cast<double>(last_delivery - t0) / 1e9;
  double deliver_rate = deliver_s > 0 ? static_cast<double>(delivered) / deliver_s : 0;
  double expected = static_cast<double>(acked) * static_cast<double>(listeners.size());
  double ratio = expected > 0 ? static_cast<double>(delivered) / expected : 0;

  std::printf(
      "publish: %llu acked, %llu failed%s in %.3f s -> %.0f acks/s; Publish call p50 %.3f "
      "p99 %.3f max %.3f ms\n",
      static_cast<unsigned long long>(acked), static_cast<unsigned long long>(pub_failed),
      all_sent ? "" : " (time limit hit)", publish_s, publish_rate, percentile(ack, 50),
      percentile(ack, 99), percentile(ack, 100));
  for (auto& l : listeners) {
    double s = static_cast<double>(l->last_ns - t0) / 1e9;
    std::printf(
        "listener %zu: %llu/%llu delivered, %.0f msg/s, latency p50 %.3f p99 %.3f max "
        "%.3f ms, missed %llu (%llu events), duplicates %llu; agent CPU %.2f s\n",
        l->index, static_cast<unsigned long long>(l->delivered.load()),
        static_cast<unsigned long long>(acked), s > 0 ? static_cast<double>(l->delivered) / s : 0.0,
        percentile(l->latency_ns, 50), percentile(l->latency_ns, 99),
        percentile(l->latency_ns, 100), static_cast<unsigned long long>(l->missed),
        static_cast<unsigned long long>(l->missed_events),
        static_cast<unsigned long long>(l->duplicates), cpu_used[l->index]);
  }
  std::printf(
      "total: %llu of %.0f deliveries (%.4f), %.0f deliveries/s over %.3f s; latency "
      "p50 %.3f p99 %.3f max %.3f ms; missed %llu; agents CPU %.2f s (%.0f us/delivery), "
      "client CPU %.2f s; publish phase %.3f s; load %s -> %s\n",
      static_cast<unsigned long long>(delivered), expected, ratio, deliver_rate, deliver_s,
      percentile(all_latency, 50), percentile(all_latency, 99), percentile(all_latency, 100),
      static_cast<unsigned long long>(missed), agents_cpu,
      delivered ? agents_cpu * 1e6 / static_cast<double>(delivered) : 0.0, self_cpu,
      static_cast<double>(sent_done - t0) / 1e9, load_before.c_str(), load_after.c_str());
  // One machine-readable line for aggregating runs.
  std::printf(
      "RESULT agents=%zu rate=%.0f size=%zu publishers=%zu inflight=%zu messages=%zu "
      "acked=%llu pub_failed=%llu acks_per_s=%.1f ack_p50_ms=%.3f ack_p99_ms=%.3f "
      "deliveries=%llu expected=%.0f ratio=%.5f deliveries_per_s=%.1f "
      "per_listener_per_s=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f missed=%llu "
      "duplicates=%llu agents_cpu_s=%.2f client_cpu_s=%.2f load1=%s\n",
      o.agents, o.rate, o.size, o.publishers, o.inflight, o.messages,
      static_cast<unsigned long long>(acked), static_cast<unsigned long long>(pub_failed),
      publish_rate, percentile(ack, 50), percentile(ack, 99),
      static_cast<unsigned long long>(delivered), expected, ratio, deliver_rate,
      deliver_rate / static_cast<double>(listeners.size()), percentile(all_latency, 50),
      percentile(all_latency, 99), percentile(all_latency, 100),
      static_cast<unsigned long long>(missed), static_cast<unsigned long long>(dups), agents_cpu,
      self_cpu, load_before.substr(0, load_before.find(' ')).c_str());
  std::fflush(stdout);
  if (foreign) std::cout << "note: " << foreign << " messages not from this run" << std::endl;

  if (!o.keep_logs) {
    for (auto& c : children) ::unlink(c.log.c_str());
    ::rmdir(dir.c_str());
  } else {
    std::cout << "logs in " << dir << std::endl;
  }
  return acked == o.messages && ratio >= 0.999 ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  ::signal(SIGINT, on_fatal_signal);
  ::signal(SIGTERM, on_fatal_signal);
  ::signal(SIGPIPE, SIG_IGN);
  try {
    return run(o);
  } catch (const std::exception& e) {  // the Agents destructor has stopped the children
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}
