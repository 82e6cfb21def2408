// `p2pmq bench`: a load generator and latency meter in the spirit of `nats bench`.
//
// Publishers call Messaging.Publish and subscribers read Messaging.Listen streams, against
// running agents (--agents, assigned round robin) or against agents it starts on loopback
// (--nodes, local_agents.hpp; every one is stopped by pid at the end, also on SIGINT). Every
// payload carries a header: the run's id, its publisher and index and the steady_clock time
// taken just before the Publish call (with --rate: the time it was due, so that a stalled window
// shows as latency); a subscriber takes the time when Read returns, so latency is "Publish
// called -> message read from Listen" on one clock (this process), and each subscriber counts
// what it missed and got twice per (publisher, index).
//
// Phases: Listen streams open; every publisher sends probes until every subscriber saw one of
// each publisher (the mesh formed, or at least a path exists); warm-up messages (not measured);
// the measured messages, paced at --rate in total or as fast as a window of --window calls in
// flight per publisher allows; then the deliveries drain until every subscriber has every acked
// message, or nothing arrived for a while. Every wait has a deadline; none is a fixed sleep.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_plot.hpp"
#include "commands.hpp"
#include "core/latency_histogram.hpp"
#include "local_agents.hpp"
#include "p2pmq/v1/p2pmq.grpc.pb.h"

namespace p2pmq::cli {

namespace {

namespace v1 = p2pmq::v1;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct BenchOptions {
  std::vector<std::string> agents;  // gRPC addresses of running agents
  size_t nodes = 0;                 // or: agents to start on loopback
  std::string topic = "p2pmq-bench";
  size_t publishers = 1;
  size_t subscribers = 1;
  size_t size = 128;  // payload bytes, header included
  double rate = 0;    // msg/s in total; 0: as fast as the window allows (--max)
  bool max = false;
  size_t window = 64;  // Publish calls in flight per publisher
  double duration = 0;
  uint64_t count = 0;  // measured messages in total (default 10,000 unless --duration)
  uint64_t warmup = 100;
  std::string json;
  std::string plot;
  bool quiet = false;
  double setup_timeout = 60;  // s: agents start, Listen streams open, probes arrive
  double drain_timeout = 30;  // s: after the last ack, the longest the deliveries may trickle in
  bool keep_logs = false;
};

// ---------------------------------------------------------------------------------------------
// Payload header (host byte order: this process writes and reads it).

enum class Kind : uint8_t { probe = 1, warmup = 2, measured = 3 };
constexpr uint32_t kMagic = 0x42514d50;  // "PMQB"

struct Header {
  uint32_t magic;
  uint32_t run;
  uint8_t kind;
  uint8_t pad[3];
  uint32_t publisher;
  uint64_t index;
  int64_t sent_ns;
};
constexpr size_t kHeaderSize = sizeof(Header);
static_assert(kHeaderSize == 32);

// The timeline's resolution, and its length (10 h) past which deliveries share the last bin.
constexpr int64_t kBinNs = 100'000'000;
constexpr size_t kMaxBins = 360'000;
// Each Publish call's deadline: a stuck call frees its window slot after this.
constexpr auto kPublishDeadline = 10s;
// Probes are re-sent this often until every subscriber saw one of every publisher.
constexpr auto kProbeInterval = 250ms;
// The drain stops when nothing was delivered for this long.
constexpr auto kDrainStall = 5s;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

size_t bin_of(int64_t t, int64_t t0) {
  if (t <= t0) return 0;
  return std::min(static_cast<size_t>((t - t0) / kBinNs), kMaxBins - 1);
}

// The first SIGINT/SIGTERM stops the run (the report covers what was measured); a second kills
// the agents this process started and ends it.
std::atomic<bool> g_stop{false};
void on_signal(int sig) {
  if (!g_stop.exchange(true)) return;
  kill_started_agents();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// A channel of its own: a distinct argument keeps gRPC from sharing one TCP connection between
// all publishers and subscribers of an agent.
std::shared_ptr<grpc::Channel> channel(const std::string& target, const std::string& tag) {
  grpc::ChannelArguments args;
  args.SetString("p2pmq.bench.channel", tag);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

// Wakes the main thread when a subscriber saw something (probe, warm-up, delivery).
struct Events {
  std::mutex mu;
  std::condition_variable cv;
  void notify() { cv.notify_all(); }
  // Waits until `done()`, the deadline or a stop; re-checks at least every `recheck`.
  template <class F>
  bool wait_until(F done, Clock::time_point deadline, std::chrono::milliseconds recheck = 100ms) {
    std::unique_lock lock(mu);
    while (!done() && !g_stop && Clock::now() < deadline)
      cv.wait_until(lock, std::min(deadline, Clock::now() + recheck));
    return done();
  }
};

struct RunInfo {
  uint32_t id = 0;  // random: messages of another bench on the topic are ignored
  size_t publishers = 0;
  std::atomic<int64_t> t0{0};  // start of the measured phase
  // Per publisher, how many measured messages it has sent: a subscriber takes no index at or
  // above it (so a forged header cannot make its seen flags grow).
  std::unique_ptr<std::atomic<uint64_t>[]> sent;
  Events events;
};

// ---------------------------------------------------------------------------------------------
// Subscribers

struct Subscriber {
  size_t id = 0;
  std::string agent;
  grpc::ClientContext ctx;
  std::thread thread;
  std::atomic<bool> ready{false};
  std::atomic<bool> failed{false};
  std::unique_ptr<std::atomic<bool>[]> probe_seen;  // per publisher
  std::atomic<uint64_t> warmup_received{0};
  std::atomic<uint64_t> delivered{0};  // distinct measured messages
  // Written by the subscriber's thread only, read after it is joined.
  std::vector<std::vector<uint8_t>> seen;  // [publisher][index]
  LatencyHistogram latency;
  std::vector<uint64_t> bins;  // deliveries per kBinNs since t0
  uint64_t duplicates = 0;
  uint64_t listen_missed = 0;  // dropped by the agent for a slow stream (Missed events)
  uint64_t foreign = 0;        // messages of the topic that are not this run's
  int64_t last_ns = 0;
  std::string error;
};

void listen_loop(Subscriber& s, RunInfo& run, const std::string& topic) {
  auto stub = v1::Messaging::NewStub(channel(s.agent, "sub" + std::to_string(s.id)));
  v1::ListenRequest req;
  req.add_topics(topic);
  auto reader = stub->Listen(&s.ctx, req);
  reader->WaitForInitialMetadata();
  s.ready = true;
  run.events.notify();
  v1::ListenEvent event;
  while (reader->Read(&event)) {
    int64_t t = now_ns();
    if (event.has_missed()) {
      s.listen_missed += event.missed().count();
      continue;
    }
    if (!event.has_message()) continue;
    const auto& data = event.message().data();
    Header h;
    if (data.size() < kHeaderSize) {
      ++s.foreign;
      continue;
    }
    std::memcpy(&h, data.data(), kHeaderSize);
    if (h.magic != kMagic || h.run != run.id || h.publisher >= run.publishers) {
      ++s.foreign;
      continue;
    }
    if (h.kind == static_cast<uint8_t>(Kind::probe)) {
      if (!s.probe_seen[h.publisher].exchange(true)) run.events.notify();
    } else if (h.kind == static_cast<uint8_t>(Kind::warmup)) {
      ++s.warmup_received;
      run.events.notify();
    } else if (h.kind == static_cast<uint8_t>(Kind::measured) &&
               h.index < run.sent[h.publisher].load()) {
      auto& seen = s.seen[h.publisher];
      if (h.index >= seen.size()) seen.resize(std::max<size_t>(h.index + 1, seen.size() * 2));
      if (seen[h.index]) {
        ++s.duplicates;
        continue;
      }
      seen[h.index] = 1;
      s.latency.record(static_cast<uint64_t>(std::max<int64_t>(t - h.sent_ns, 0)));
      size_t bin = bin_of(t, run.t0);
      if (bin >= s.bins.size()) s.bins.resize(bin + 1, 0);
      ++s.bins[bin];
      s.last_ns = t;
      ++s.delivered;
    } else {
      ++s.foreign;
    }
  }
  auto status = reader->Finish();
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    s.error = status.error_message();
    s.failed = true;
    run.events.notify();
  }
}

// ---------------------------------------------------------------------------------------------
// Publishers

// One publisher on one agent: Publish calls through gRPC's callback API, at most `window` in
// flight; the completions run on gRPC's threads.
class Publisher {
 public:
  Publisher(size_t id, std::string agent, const BenchOptions& o, RunInfo& run)
      : id_(id),
        agent_(std::move(agent)),
        stub_(v1::Messaging::NewStub(channel(agent_, "pub" + std::to_string(id)))),
        o_(o),
        run_(run),
        filler_(o.size, '\0') {
    for (size_t i = kHeaderSize; i < filler_.size(); ++i)
      filler_[i] = static_cast<char>('a' + i % 26);
  }

  const std::string& agent() const { return agent_; }

  // One probe through a blocking call; the error message if it failed.
  std::string probe(uint64_t attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    v1::PublishRequest req;
    req.set_topic(o_.topic);
    req.set_data(payload(Kind::probe, attempt));
    v1::PublishResponse resp;
    auto status = stub_->Publish(&ctx, req, &resp);
    return status.ok() ? std::string() : status.error_message();
  }

  // Sends up to `count` messages of `kind` before `until`, `rate` msg/s (0: the window only),
  // then waits for their acks (each call has its own deadline).
  void run(Kind kind, uint64_t count, Clock::time_point until, double rate) {
    auto start = Clock::now();
    for (uint64_t j = 0; j < count && !g_stop; ++j) {
      // Paced, a message's latency counts from when it was due, not from when the window let it
      // go: a stall then shows in the latency instead of hiding behind a lower offered rate
      // (coordinated omission, as wrk2 and HdrHistogram correct it).
      int64_t due_ns = 0;
      if (rate > 0) {
        auto due = start + std::chrono::nanoseconds(
                               static_cast<int64_t>(static_cast<double>(j) * 1e9 / rate));
        due_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(due.time_since_epoch()).count();
        // Pacing, in slices so that a stop is seen promptly at low rates.
        while (Clock::now() < std::min(due, until) && !g_stop)
          std::this_thread::sleep_until(std::min({due, until, Clock::now() + 100ms}));
      }
      if (Clock::now() >= until || g_stop) break;
      {
        std::unique_lock lock(mu_);
        while (outstanding_ >= o_.window && !g_stop) cv_.wait_for(lock, 100ms);
        if (g_stop) break;
        ++outstanding_;
        if (kind == Kind::measured && j >= acked_flags_.size())
          acked_flags_.resize(std::max<size_t>(j + 1, acked_flags_.size() * 2), 0);
      }
      if (kind == Kind::measured) run_.sent[id_] = j + 1;
      send(kind, j, due_ns);
    }
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return outstanding_ == 0; });
  }

  uint64_t acked_now() const { return acked_progress_.load(); }

  // Read after run() returned.
  uint64_t acked() const { return acked_; }
  uint64_t warmup_acked() const { return warmup_acked_; }
  uint64_t failed() const { return failed_; }
  const std::string& first_error() const { return first_error_; }
  const std::vector<uint8_t>& acked_flags() const { return acked_flags_; }
  const LatencyHistogram& ack_latency() const { return ack_latency_; }
  const std::vector<uint64_t>& ack_bins() const { return ack_bins_; }
  int64_t last_ack_ns() const { return last_ack_ns_; }

 private:
  struct Call {
    grpc::ClientContext ctx;
    v1::PublishRequest req;
    v1::PublishResponse resp;
  };

  // `sent_ns`: 0 for now.
  std::string payload(Kind kind, uint64_t index, int64_t sent_ns = 0) const {
    std::string data = filler_;
    Header h{};
    h.magic = kMagic;
    h.run = run_.id;
    h.kind = static_cast<uint8_t>(kind);
    h.publisher = static_cast<uint32_t>(id_);
    h.index = index;
    h.sent_ns = sent_ns != 0 ? sent_ns : now_ns();
    std::memcpy(data.data(), &h, kHeaderSize);
    return data;
  }

  void send(Kind kind, uint64_t index, int64_t due_ns) {
    auto* call = new Call;
    call->ctx.set_deadline(std::chrono::system_clock::now() + kPublishDeadline);
    call->req.set_topic(o_.topic);
    call->req.set_data(payload(kind, index, due_ns));
    int64_t sent;
    std::memcpy(&sent, call->req.data().data() + offsetof(Header, sent_ns), sizeof sent);
    stub_->async()->Publish(&call->ctx, &call->req, &call->resp,
                            [this, call, kind, index, sent](grpc::Status status) {
                              done(kind, index, sent, status);
                              delete call;
                            });
  }

  void done(Kind kind, uint64_t index, int64_t sent, const grpc::Status& status) {
    int64_t t = now_ns();
    std::lock_guard lock(mu_);
    if (status.ok() && kind == Kind::measured) {
      acked_flags_[index] = 1;
      ++acked_;
      ++acked_progress_;
      ack_latency_.record(static_cast<uint64_t>(std::max<int64_t>(t - sent, 0)));
      size_t bin = bin_of(t, run_.t0);
      if (bin >= ack_bins_.size()) ack_bins_.resize(bin + 1, 0);
      ++ack_bins_[bin];
      last_ack_ns_ = std::max(last_ack_ns_, t);
    } else if (status.ok()) {
      ++warmup_acked_;
    } else {
      ++failed_;
      if (first_error_.empty()) first_error_ = status.error_message();
    }
    --outstanding_;
    cv_.notify_all();
  }

  size_t id_;
  std::string agent_;
  std::unique_ptr<v1::Messaging::Stub> stub_;
  const BenchOptions& o_;
  RunInfo& run_;
  std::string filler_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t outstanding_ = 0;
  std::atomic<uint64_t> acked_progress_{0};
  // Guarded by mu_.
  std::vector<uint8_t> acked_flags_;
  uint64_t acked_ = 0;
  uint64_t warmup_acked_ = 0;
  uint64_t failed_ = 0;
  std::string first_error_;
  LatencyHistogram ack_latency_;
  std::vector<uint64_t> ack_bins_;
  int64_t last_ack_ns_ = 0;
};

// ---------------------------------------------------------------------------------------------
// This process's CPU (the agents' is in local_agents.hpp).

double self_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ---------------------------------------------------------------------------------------------
// Progress on stderr: a bar on a terminal, a line a second otherwise, nothing with --quiet.

class Progress {
 public:
  Progress(bool quiet, std::function<std::string(double* fraction)> status)
      : tty_(::isatty(STDERR_FILENO) == 1), status_(std::move(status)) {
    if (quiet) return;
    thread_ = std::thread([this] { loop(); });
  }
  ~Progress() { stop(); }

  void stop() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    std::unique_lock lock(mu_);
    auto period = tty_ ? 200ms : 1000ms;
    while (!cv_.wait_for(lock, period, [&] { return done_; })) print();
    print();
    if (tty_) std::cerr << "\n";
  }

  void print() {
    double fraction = -1;
    std::string text = status_(&fraction);
    if (!tty_) {
      std::cerr << "bench: " << text << std::endl;
      return;
    }
    constexpr int kWidth = 30;
    std::string bar;
    if (fraction >= 0) {
      int filled = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * kWidth);
      bar = "[" + std::string(static_cast<size_t>(filled), '#') +
            std::string(static_cast<size_t>(kWidth - filled), '.') + "] ";
    }
    std::cerr << "\r\x1b[K" << bar << text << std::flush;
  }

  bool tty_;
  std::function<std::string(double*)> status_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// Report

double ms(uint64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

nlohmann::json percentiles_json(const LatencyHistogram& h) {
  return {{"count", h.count()},
          {"min_ms", ms(h.min())},
          {"mean_ms", h.mean() / 1e6},
          {"p50_ms", ms(h.percentile(50))},
          {"p90_ms", ms(h.percentile(90))},
          {"p99_ms", ms(h.percentile(99))},
          {"p99_9_ms", ms(h.percentile(99.9))},
          {"max_ms", ms(h.max())}};
}

// Sums per-bin counts into `interval_bins`-wide bins, as rates per second.
std::vector<double> rates(const std::vector<uint64_t>& bins, size_t interval_bins, size_t n) {
  std::vector<double> out((n + interval_bins - 1) / interval_bins, 0.0);
  double seconds = static_cast<double>(interval_bins * kBinNs) / 1e9;
  for (size_t i = 0; i < bins.size() && i < n; ++i) out[i / interval_bins] += bins[i] / seconds;
  return out;
}

bool write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) std::cerr << "error: bench: cannot write " << path << std::endl;
  return static_cast<bool>(out);
}

// ---------------------------------------------------------------------------------------------

struct AgentUsage {
  std::string name, grpc;
  pid_t pid = 0;
  double cpu_total = 0, cpu_measured = 0;
  uint64_t peak_rss = 0;
};

int run_bench(const BenchOptions& o) {
  if (o.size < kHeaderSize) {
    std::cerr << "error: bench: --size must be at least " << kHeaderSize << " (the header)\n";
    return 2;
  }
  if (o.agents.empty() == (o.nodes == 0)) {
    std::cerr << "error: bench: give --agents HOST:PORT,... or --nodes N (one of them)\n";
    return 2;
  }
  if (o.publishers < 1 || o.window < 1) {
    std::cerr << "error: bench: --pub and --window must be at least 1\n";
    return 2;
  }
  g_stop = false;
  auto previous_int = std::signal(SIGINT, on_signal);
  auto previous_term = std::signal(SIGTERM, on_signal);
  struct RestoreSignals {
    decltype(previous_int) i, t;
    ~RestoreSignals() {
      std::signal(SIGINT, i);
      std::signal(SIGTERM, t);
    }
  } restore{previous_int, previous_term};
  auto say = [&](const std::string& line) {
    if (!o.quiet) std::cerr << "bench: " << line << std::endl;
  };
  auto setup_deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.setup_timeout * 1000));

  // Agents: the given ones, or started here (each dials up to kBootstrapPeers started before it,
  // so the network is connected without being a full mesh).
  std::vector<LocalAgent> started;
  struct StopAgents {
    std::vector<LocalAgent>& agents;
    ~StopAgents() { stop_agents(agents); }
  } stop_guard{started};
  std::string log_dir;
  std::vector<std::string> endpoints = o.agents;
  if (o.nodes > 0) {
    constexpr size_t kBootstrapPeers = 4;
    std::string self = self_binary();
    char dir_template[] = "/tmp/p2pmq-bench-XXXXXX";
    if (self.empty() || !::mkdtemp(dir_template)) {
      std::cerr << "error: bench: cannot find the p2pmq binary or make a log directory\n";
      return 1;
    }
    log_dir = dir_template;
    say("starting " + std::to_string(o.nodes) + " agents (logs in " + log_dir + ")");
    for (size_t i = 0; i < o.nodes && !g_stop; ++i) {
      std::vector<std::string> args{"--topic", o.topic};
      for (size_t k = i > kBootstrapPeers ? i - kBootstrapPeers : 0; k < i; ++k) {
        args.push_back("--bootstrap");
        args.push_back(started[k].multiaddr);
      }
      std::string name = "agent" + std::to_string(i);
      auto agent = spawn_agent(self, name, args, log_dir + "/" + name + ".log");
      if (!agent) {
        std::cerr << "error: bench: " << agent.error().message << std::endl;
        return 1;
      }
      started.push_back(*agent);
      endpoints.push_back(agent->grpc);
    }
    if (g_stop) return 130;
  }

  RunInfo run;
  run.id = static_cast<uint32_t>(std::random_device{}());
  run.publishers = o.publishers;
  run.sent = std::make_unique<std::atomic<uint64_t>[]>(o.publishers);

  // Round robin: publishers on the first agents, subscribers on the agents after them, so that
  // with as many agents as clients no subscriber shares its publisher's agent.
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (size_t i = 0; i < o.subscribers; ++i) {
    auto s = std::make_unique<Subscriber>();
    s->id = i;
    s->agent = endpoints[(o.publishers + i) % endpoints.size()];
    s->probe_seen = std::make_unique<std::atomic<bool>[]>(o.publishers);
    s->seen.resize(o.publishers);
    subs.push_back(std::move(s));
  }
  std::vector<std::unique_ptr<Publisher>> pubs;
  for (size_t p = 0; p < o.publishers; ++p)
    pubs.push_back(std::make_unique<Publisher>(p, endpoints[p % endpoints.size()], o, run));
  for (auto& s : subs)
    s->thread = std::thread(listen_loop, std::ref(*s), std::ref(run), std::cref(o.topic));
  struct JoinSubscribers {
    std::vector<std::unique_ptr<Subscriber>>& subs;
    void operator()() {
      for (auto& s : subs) s->ctx.TryCancel();
      for (auto& s : subs)
        if (s->thread.joinable()) s->thread.join();
    }
    ~JoinSubscribers() { (*this)(); }
  } join_subscribers{subs};

  auto any_failed = [&] {
    return std::any_of(subs.begin(), subs.end(), [](auto& s) { return s->failed.load(); });
  };
  auto fail_setup = [&](const std::string& why) {
    for (auto& s : subs)
      if (s->failed) std::cerr << "error: bench: subscriber " << s->id << ": " << s->error << "\n";
    std::cerr << "error: bench: " << why << std::endl;
    if (!log_dir.empty()) std::cerr << "bench: the agents' logs are in " << log_dir << std::endl;
    return g_stop ? 130 : 1;
  };
  if (!run.events.wait_until(
          [&] {
            return any_failed() ||
                   std::all_of(subs.begin(), subs.end(), [](auto& s) { return s->ready.load(); });
          },
          setup_deadline) ||
      any_failed())
    return fail_setup("the Listen streams did not open");

  // Probes until every subscriber saw one of every publisher.
  auto setup_start = Clock::now();
  say("waiting until every subscriber sees every publisher's probe");
  auto probes_arrived = [&] {
    for (auto& s : subs)
      for (size_t p = 0; p < o.publishers; ++p)
        if (!s->probe_seen[p]) return false;
    return true;
  };
  {
    std::vector<uint64_t> attempts(o.publishers, 0);
    std::vector<bool> acked(o.publishers, false);
    std::string last_error;
    auto all_acked = [&] {
      return std::all_of(acked.begin(), acked.end(), [](bool a) { return a; });
    };
    while ((!probes_arrived() || !all_acked()) && !any_failed() && !g_stop &&
           Clock::now() < setup_deadline) {
      for (size_t p = 0; p < o.publishers; ++p) {
        bool needed = !acked[p] || std::any_of(subs.begin(), subs.end(),
                                               [&](auto& s) { return !s->probe_seen[p]; });
        if (!needed) continue;
        auto error = pubs[p]->probe(attempts[p]++);
        if (error.empty())
          acked[p] = true;
        else
          last_error = error;
      }
      run.events.wait_until([&] { return probes_arrived() || any_failed(); },
                            std::min(setup_deadline, Clock::now() + kProbeInterval));
    }
    if (!probes_arrived() || !all_acked())
      return fail_setup("the probes did not arrive before the setup deadline" +
                        (last_error.empty() ? "" : " (last publish error: " + last_error + ")"));
  }
  double mesh_s = std::chrono::duration<double>(Clock::now() - setup_start).count();
  say("every subscriber saw every publisher after " + fmt("%.2f", mesh_s) + " s");

  // Warm-up: opens the publishers' call paths and the agents' caches; not measured.
  if (o.warmup > 0) {
    std::vector<std::thread> threads;
    for (size_t p = 0; p < o.publishers; ++p) {
      uint64_t share = o.warmup / o.publishers + (p < o.warmup % o.publishers ? 1 : 0);
      threads.emplace_back(
          [&, p, share] { pubs[p]->run(Kind::warmup, share, Clock::time_point::max(), 0); });
    }
    for (auto& t : threads) t.join();
    uint64_t acked = 0;
    for (auto& p : pubs) acked += p->warmup_acked();
    bool warm = run.events.wait_until(
        [&] {
          return std::all_of(subs.begin(), subs.end(),
                             [&](auto& s) { return s->warmup_received.load() >= acked; });
        },
        Clock::now() + 30s);
    if (!warm) say("warning: not every subscriber got every warm-up message within 30 s");
  }
  if (g_stop) return fail_setup("interrupted");

  // The measured phase.
  bool by_count = o.duration <= 0;
  uint64_t count = by_count ? (o.count > 0 ? o.count : 10'000) : UINT64_MAX;
  std::vector<double> cpu_before;
  for (auto& a : started) cpu_before.push_back(cpu_seconds(a.pid));
  double self_cpu_before = self_cpu_seconds();
  auto start = Clock::now();
  int64_t t0 = now_ns();
  run.t0 = t0;
  auto until = by_count
                   ? Clock::time_point::max()
                   : start + std::chrono::milliseconds(static_cast<int64_t>(o.duration * 1000));
  double rate = o.max ? 0 : o.rate;
  auto total_acked = [&] {
    uint64_t n = 0;
    for (auto& p : pubs) n += p->acked_now();
    return n;
  };
  auto total_delivered = [&] {
    uint64_t n = 0;
    for (auto& s : subs) n += s->delivered.load();
    return n;
  };
  std::atomic<bool> draining{false};
  Progress progress(o.quiet, [&](double* fraction) {
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    uint64_t acked = total_acked(), delivered = total_delivered();
    if (!draining) {
      *fraction =
          by_count ? static_cast<double>(acked) / static_cast<double>(count) : elapsed / o.duration;
    } else if (acked > 0 && !subs.empty()) {
      *fraction = static_cast<double>(delivered) / static_cast<double>(acked * subs.size());
    }
    std::ostringstream line;
    line << (draining ? "draining" : "publishing") << " " << fmt("%.1f", elapsed) << " s, " << acked
         << (by_count ? "/" + std::to_string(count) : std::string()) << " acked ("
         << fmt("%.0f", elapsed > 0 ? static_cast<double>(acked) / elapsed : 0) << " msg/s), "
         << delivered << " delivered";
    return line.str();
  });
  {
    std::vector<std::thread> threads;
    for (size_t p = 0; p < o.publishers; ++p) {
      uint64_t share =
          by_count ? count / o.publishers + (p < count % o.publishers ? 1 : 0) : UINT64_MAX;
      double share_rate = rate / static_cast<double>(o.publishers);
      threads.emplace_back(
          [&, p, share, share_rate] { pubs[p]->run(Kind::measured, share, until, share_rate); });
    }
    for (auto& t : threads) t.join();
  }
  // Drain: until every subscriber has every acked message, nothing arrived for kDrainStall, or
  // the drain timeout.
  draining = true;
  {
    uint64_t expected = total_acked() * subs.size();
    auto drain_deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.drain_timeout * 1000));
    uint64_t last = total_delivered();
    auto last_progress = Clock::now();
    while (!g_stop && Clock::now() < drain_deadline && Clock::now() - last_progress < kDrainStall) {
      if (run.events.wait_until([&] { return total_delivered() >= expected; },
                                std::min(drain_deadline, Clock::now() + 500ms)))
        break;
      if (uint64_t now = total_delivered(); now != last) {
        last = now;
        last_progress = Clock::now();
      }
    }
  }
  progress.stop();
  double self_cpu = self_cpu_seconds() - self_cpu_before;
  std::vector<AgentUsage> usage;
  for (size_t i = 0; i < started.size(); ++i) {
    AgentUsage u;
    u.name = started[i].name;
    u.grpc = started[i].grpc;
    u.pid = started[i].pid;
    u.cpu_total = cpu_seconds(u.pid);
    u.cpu_measured = u.cpu_total - cpu_before[i];
    u.peak_rss = peak_rss_bytes(u.pid);
    usage.push_back(u);
  }
  join_subscribers();
  stop_agents(started);

  // Results.
  uint64_t acked = 0, failed = 0;
  int64_t last_ack = t0;
  LatencyHistogram ack_latency;
  std::vector<uint64_t> ack_bins, delivered_bins;
  auto add_bins = [](std::vector<uint64_t>& into, const std::vector<uint64_t>& from) {
    if (from.size() > into.size()) into.resize(from.size(), 0);
    for (size_t i = 0; i < from.size(); ++i) into[i] += from[i];
  };
  std::string first_error;
  for (auto& p : pubs) {
    acked += p->acked();
    failed += p->failed();
    last_ack = std::max(last_ack, p->last_ack_ns());
    ack_latency.merge(p->ack_latency());
    add_bins(ack_bins, p->ack_bins());
    if (first_error.empty()) first_error = p->first_error();
  }
  LatencyHistogram latency;
  uint64_t delivered = 0, missed = 0, duplicates = 0, listen_missed = 0, unacked = 0, foreign = 0;
  int64_t last_delivery = t0;
  nlohmann::json per_sub = nlohmann::json::array();
  for (auto& s : subs) {
    uint64_t sub_delivered = 0, sub_missed = 0, sub_unacked = 0;
    for (size_t p = 0; p < pubs.size(); ++p) {
      const auto& flags = pubs[p]->acked_flags();
      const auto& seen = s->seen[p];
      for (size_t i = 0; i < std::max(flags.size(), seen.size()); ++i) {
        bool a = i < flags.size() && flags[i], d = i < seen.size() && seen[i];
        sub_delivered += a && d;
        sub_missed += a && !d;
        sub_unacked += !a && d;
      }
    }
    delivered += sub_delivered;
    missed += sub_missed;
    unacked += sub_unacked;
    duplicates += s->duplicates;
    listen_missed += s->listen_missed;
    foreign += s->foreign;
    last_delivery = std::max(last_delivery, s->last_ns);
    latency.merge(s->latency);
    add_bins(delivered_bins, s->bins);
    per_sub.push_back({{"subscriber", s->id},
                       {"agent", s->agent},
                       {"delivered", sub_delivered},
                       {"missed", sub_missed},
                       {"duplicates", s->duplicates},
                       {"delivered_unacked", sub_unacked},
                       {"listen_missed", s->listen_missed},
                       {"latency", percentiles_json(s->latency)},
                       {"error", s->error}});
  }
  uint64_t expected = acked * subs.size();
  double ratio = expected > 0 ? static_cast<double>(delivered) / static_cast<double>(expected) : 0;
  double publish_s = static_cast<double>(last_ack - t0) / 1e9;
  double deliver_s = static_cast<double>(last_delivery - t0) / 1e9;
  auto per_s = [](uint64_t n, double s) { return s > 0 ? static_cast<double>(n) / s : 0.0; };
  double mb = static_cast<double>(o.size) / 1e6;
  size_t nbins = std::max(delivered_bins.size(), ack_bins.size());
  size_t interval_bins = std::max<size_t>(1, (nbins + 299) / 300);  // at most 300 points
  double interval_s = static_cast<double>(interval_bins * kBinNs) / 1e9;
  auto delivered_rates = rates(delivered_bins, interval_bins, nbins);
  auto acked_rates = rates(ack_bins, interval_bins, nbins);

  std::string rate_text = rate > 0 ? fmt("%.0f", rate) + " msg/s" : "max";
  std::ostringstream report;
  report << "p2pmq bench: topic " << o.topic << ", " << endpoints.size() << " agents ("
         << (started.empty() ? "given" : "started") << "), " << o.publishers << " publishers, "
         << subs.size() << " subscribers, " << o.size << " B messages, rate " << rate_text
         << " (window " << o.window << ")\n"
         << "setup:    every subscriber saw every publisher after " << fmt("%.2f", mesh_s)
         << " s; warm-up " << o.warmup << " messages\n"
         << "publish:  " << acked << " acked, " << failed << " failed in " << fmt("%.2f", publish_s)
         << " s: " << fmt("%.0f", per_s(acked, publish_s)) << " msg/s, "
         << fmt("%.2f", per_s(acked, publish_s) * mb) << " MB/s; ack p50 "
         << fmt("%.2f", ms(ack_latency.percentile(50))) << " ms, p99 "
         << fmt("%.2f", ms(ack_latency.percentile(99))) << " ms\n"
         << "delivery: " << delivered << "/" << expected << " (ratio "
         << (expected > 0 ? fmt("%.4f", ratio) : "n/a") << ") in " << fmt("%.2f", deliver_s)
         << " s: " << fmt("%.0f", per_s(delivered, deliver_s)) << " msg/s, "
         << fmt("%.2f", per_s(delivered, deliver_s) * mb) << " MB/s; " << duplicates
         << " duplicates, " << missed << " missed (" << listen_missed
         << " dropped by agents for slow streams)\n"
         << "latency:  publish -> Listen p50 " << fmt("%.2f", ms(latency.percentile(50)))
         << " ms, p90 " << fmt("%.2f", ms(latency.percentile(90))) << " ms, p99 "
         << fmt("%.2f", ms(latency.percentile(99))) << " ms, p99.9 "
         << fmt("%.2f", ms(latency.percentile(99.9))) << " ms, max "
         << fmt("%.2f", ms(latency.max())) << " ms\n";
  for (const auto& s : per_sub)
    report << "  sub " << s["subscriber"] << " on " << s["agent"].get<std::string>() << ": "
           << s["delivered"] << " delivered, " << s["missed"] << " missed, " << s["duplicates"]
           << " duplicates, p50 " << fmt("%.2f", s["latency"]["p50_ms"].get<double>())
           << " ms, p99 " << fmt("%.2f", s["latency"]["p99_ms"].get<double>()) << " ms\n";
  for (const auto& u : usage)
    report << "  " << u.name << " (pid " << u.pid << "): cpu " << fmt("%.2f", u.cpu_measured)
           << " s measured (" << fmt("%.2f", u.cpu_total) << " s total), peak rss "
           << fmt("%.1f", static_cast<double>(u.peak_rss) / (1024.0 * 1024.0)) << " MiB\n";
  report << "  bench process cpu " << fmt("%.2f", self_cpu) << " s measured\n";
  if (!first_error.empty()) report << "  first publish error: " << first_error << "\n";
  if (g_stop) report << "  interrupted: the figures cover what was measured before\n";
  std::cout << report.str() << std::flush;

  bool ok = true;
  if (!o.json.empty()) {
    nlohmann::json j;
    j["config"] = {{"topic", o.topic},
                   {"agents", endpoints},
                   {"started_agents", started.size()},
                   {"publishers", o.publishers},
                   {"subscribers", subs.size()},
                   {"size", o.size},
                   {"rate", rate},
                   {"window", o.window},
                   {"count", by_count ? count : 0},
                   {"duration_s", by_count ? 0.0 : o.duration},
                   {"warmup", o.warmup}};
    j["setup_s"] = mesh_s;
    j["interrupted"] = g_stop.load();
    j["publish"] = {{"acked", acked},
                    {"failed", failed},
                    {"seconds", publish_s},
                    {"msgs_per_s", per_s(acked, publish_s)},
                    {"mb_per_s", per_s(acked, publish_s) * mb},
                    {"ack_latency", percentiles_json(ack_latency)},
                    {"first_error", first_error}};
    j["delivery"] = {{"expected", expected},
                     {"delivered", delivered},
                     {"ratio", expected > 0 ? nlohmann::json(ratio) : nlohmann::json()},
                     {"duplicates", duplicates},
                     {"missed", missed},
                     {"listen_missed", listen_missed},
                     {"delivered_unacked", unacked},
                     {"foreign", foreign},
                     {"seconds", deliver_s},
                     {"msgs_per_s", per_s(delivered, deliver_s)},
                     {"mb_per_s", per_s(delivered, deliver_s) * mb}};
    j["latency"] = percentiles_json(latency);
    nlohmann::json cdf = nlohmann::json::array();
    for (const auto& [v, f] : latency.cdf()) cdf.push_back({ms(v), f});
    j["latency_cdf"] = cdf;  // [ms, fraction of deliveries at or below]
    j["subscribers"] = per_sub;
    j["timeline"] = {{"interval_s", interval_s},
                     {"delivered_per_s", delivered_rates},
                     {"acked_per_s", acked_rates}};
    j["agents"] = nlohmann::json::array();
    for (const auto& u : usage)
      j["agents"].push_back({{"name", u.name},
                             {"grpc", u.grpc},
                             {"pid", u.pid},
                             {"cpu_seconds_measured", u.cpu_measured},
                             {"cpu_seconds_total", u.cpu_total},
                             {"peak_rss_bytes", u.peak_rss}});
    j["bench_cpu_seconds"] = self_cpu;
    ok &= write_file(o.json, j.dump(2) + "\n");
  }
  if (!o.plot.empty()) {
    std::string title = "p2pmq bench: " + std::to_string(o.publishers) + " pub, " +
                        std::to_string(subs.size()) + " sub, " + std::to_string(o.size) + " B, " +
                        rate_text + ", " + std::to_string(endpoints.size()) + " agents; p50 " +
                        fmt("%.2f", ms(latency.percentile(50))) + " ms, p99 " +
                        fmt("%.2f", ms(latency.percentile(99))) + " ms, ratio " +
                        fmt("%.4f", ratio);
    ok &= write_file(o.plot, bench_svg(title, latency, delivered_rates, acked_rates, interval_s));
  }
  if (!log_dir.empty() && !o.keep_logs) {
    std::error_code ec;
    std::filesystem::remove_all(log_dir, ec);
  }
  if (g_stop) return 130;
  return ok ? 0 : 1;
}

}  // namespace

void add_bench_command(CLI::App& app, int& exit_status) {
  static BenchOptions o;
  auto* cmd = app.add_subcommand(
      "bench", "measure publish and delivery throughput and latency (like `nats bench`)");
  auto* agents =
      cmd->add_option("--agents", o.agents, "gRPC addresses of running agents")->delimiter(',');
  auto* nodes = cmd->add_option("--nodes", o.nodes, "start this many agents on loopback instead");
  agents->excludes(nodes);
  cmd->add_option("--topic", o.topic, "topic")->capture_default_str();
  cmd->add_option("--pub", o.publishers, "publishers")->capture_default_str();
  cmd->add_option("--sub", o.subscribers, "subscribers (0: publish only)")->capture_default_str();
  cmd->add_option("--size", o.size, "message size in bytes (at least 32)")->capture_default_str();
  auto* rate = cmd->add_option("--rate", o.rate, "messages per second, all publishers together");
  auto* max = cmd->add_flag("--max", o.max, "as fast as acks allow (the default)");
  rate->excludes(max);
  cmd->add_option("--window", o.window, "Publish calls in flight per publisher")
      ->capture_default_str();
  auto* duration = cmd->add_option("--duration", o.duration, "seconds to publish for");
  auto* count = cmd->add_option("--count", o.count, "messages to publish (default 10000)");
  duration->excludes(count);
  cmd->add_option("--warmup", o.warmup, "unmeasured messages first")->capture_default_str();
  cmd->add_option("--json", o.json, "write the full report as JSON to FILE");
  cmd->add_option("--plot", o.plot, "write the latency CDF and rate over time as SVG to FILE");
  cmd->add_flag("--quiet", o.quiet, "no progress on stderr");
  cmd->add_option("--setup-timeout", o.setup_timeout,
                  "seconds for the agents, streams and first probes")
      ->capture_default_str();
  cmd->add_option("--drain-timeout", o.drain_timeout,
                  "seconds deliveries may take after the last publish")
      ->capture_default_str();
  cmd->add_flag("--keep-logs", o.keep_logs, "keep the started agents' logs");
  cmd->callback([&exit_status] { exit_status = run_bench(o); });
}

}  // namespace p2pmq::cli
