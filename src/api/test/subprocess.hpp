#pragma once
// A child process for the tests that run the examples: stdout is captured line by line with
// deadlines; the child is killed and reaped on destruction.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace p2pmq::api::test {

class Subprocess {
 public:
  explicit Subprocess(std::vector<std::string> argv) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fds[0];
  }
  ~Subprocess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  bool started() const { return pid_ > 0; }

  // The next line of stdout, or nullopt on EOF or when `limit` passes first.
  std::optional<std::string> read_line(std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      ssize_t n = read(out_, chunk, sizeof chunk);
      if (n <= 0) {
        if (buf_.empty()) return std::nullopt;
        std::string line = std::move(buf_);
        buf_.clear();
        return line;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  // Waits for the exit status (-1 if the child did not exit within `limit` or died by a signal).
  int wait_exit(std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      pollfd p{out_, POLLIN, 0};  // drain stdout while waiting, so the child never blocks on it
      if (poll(&p, 1, 10) > 0) {
        char chunk[4096];
        ssize_t n = read(out_, chunk, sizeof chunk);
        if (n > 0) {
          buf_.append(chunk, static_cast<size_t>(n));
        } else {  // EOF: the child is exiting
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
    }
    return -1;
  }

  // Everything read but not yet returned by read_line.
  const std::string& pending_output() const { return buf_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool exited_ = false;
  std::string buf_;
};

// Whether `python` can import the modules the examples need.
inline bool python_has_grpc(const std::string& python) {
  std::string cmd = python + " -c 'import grpc, grpc_tools' >/dev/null 2>&1";
  return access(python.c_str(), X_OK) == 0 && std::system(cmd.c_str()) == 0;
}

}  // namespace p2pmq::api::test
