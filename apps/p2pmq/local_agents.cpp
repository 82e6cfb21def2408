#include "local_agents.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

extern char** environ;

namespace p2pmq::cli {

namespace {

using Clock = std::chrono::steady_clock;

// Pids of the running agents, for kill_started_agents() in a signal handler: a fixed array of
// lock-free atomics. Agents past the capacity are still stopped by stop_agents(), just not by
// the signal handler.
constexpr size_t kMaxTrackedAgents = 256;
std::atomic<pid_t> g_pids[kMaxTrackedAgents];

void track(pid_t pid) {
  for (auto& slot : g_pids) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, pid)) return;
  }
}

void untrack(pid_t pid) {
  for (auto& slot : g_pids) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

// Reads the child's stdout until it printed its listen address, gRPC port and metrics address.
bool read_startup(LocalAgent& a, std::chrono::seconds limit) {
  std::string buffer;
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline && (a.multiaddr.empty() || a.grpc.empty() || a.metrics.empty())) {
    pollfd p{a.out, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char chunk[4096];
    ssize_t n = ::read(a.out, chunk, sizeof chunk);
    if (n <= 0) return false;  // the child exited
    buffer.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      if (line.rfind("listening ", 0) == 0 && a.multiaddr.empty()) a.multiaddr = line.substr(10);
      if (line.rfind("grpc ", 0) == 0) a.grpc = line.substr(5);
      if (line.rfind("metrics ", 0) == 0) a.metrics = line.substr(8);
    }
  }
  return !a.multiaddr.empty() && !a.grpc.empty() && !a.metrics.empty();
}

}  // namespace

std::string self_binary() {
  char path[4096];
  ssize_t len = ::readlink("/proc/self/exe", path, sizeof path - 1);
  return len > 0 ? std::string(path, static_cast<size_t>(len)) : std::string();
}

Result<LocalAgent> spawn_agent(const std::string& self, const std::string& name,
                               const std::vector<std::string>& extra, const std::string& log_path,
                               std::chrono::seconds startup_limit) {
  int pipe_fds[2];
  // Close-on-exec: later children must not inherit this pipe (dup2 clears it on their stdout).
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
    return fail(Errc::io, "pipe: " + std::string(std::strerror(errno)));
  std::vector<std::string> args{
      self,     "--log-level", "warn",      "agent",       "--listen", "/ip4/127.0.0.1/tcp/0",
      "--grpc", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--gossip", "heartbeat_interval=300ms"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  LocalAgent a;
  a.name = name;
  a.log = log_path;
  int rc = ::posix_spawn(&a.pid, self.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    return fail(Errc::io, "spawn: " + std::string(std::strerror(rc)));
  }
  track(a.pid);
  a.out = pipe_fds[0];
  if (!read_startup(a, startup_limit)) {
    std::vector<LocalAgent> failed{a};
    stop_agents(failed, std::chrono::seconds(0));
    return fail(Errc::timeout, name + " did not start (see " + log_path + ")");
  }
  return a;
}

void stop_agents(std::vector<LocalAgent>& agents, std::chrono::seconds grace) {
  for (auto& a : agents)
    if (a.pid > 0) ::kill(a.pid, grace.count() > 0 ? SIGTERM : SIGKILL);
  auto deadline = Clock::now() + grace;
  for (auto& a : agents) {
    if (a.pid > 0) {
      while (::waitpid(a.pid, nullptr, WNOHANG) == 0) {
        if (Clock::now() >= deadline) {
          ::kill(a.pid, SIGKILL);
          ::waitpid(a.pid, nullptr, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      untrack(a.pid);
      a.pid = -1;
    }
    if (a.out >= 0) ::close(a.out);
    a.out = -1;
  }
}

// utime + stime in seconds (/proc/PID/stat fields 14 and 15, after the parenthesised name).
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = s.rfind(')');
  if (close == std::string::npos || close + 2 > s.size()) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::strtod(field.c_str(), nullptr);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Peak resident set size in bytes (/proc/PID/status VmHWM), 0 if unknown.
uint64_t peak_rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  return 0;
}

void kill_started_agents() {
  for (auto& slot : g_pids) {
    pid_t pid = slot.load();
    if (pid > 0) ::kill(pid, SIGKILL);
  }
}

}  // namespace p2pmq::cli
