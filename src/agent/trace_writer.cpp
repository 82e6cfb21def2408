#include "agent/trace_writer.hpp"

#include <filesystem>
#include <system_error>
#include <vector>

namespace p2pmq::agent {

Result<std::unique_ptr<TraceWriter>> TraceWriter::open(TraceFileConfig config) {
  std::unique_ptr<TraceWriter> w(new TraceWriter(std::move(config)));
  w->out_.open(w->config_.path, std::ios::app | std::ios::binary);
  if (!w->out_) return fail(Errc::io, "trace file " + w->config_.path + ": cannot be opened");
  std::error_code ec;
  auto size = std::filesystem::file_size(w->config_.path, ec);
  w->size_ = ec ? 0 : size;
  w->thread_ = std::thread([raw = w.get()] { raw->run(); });
  return w;
}

TraceWriter::TraceWriter(TraceFileConfig config) : config_(std::move(config)) {}

TraceWriter::~TraceWriter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

bool TraceWriter::push(std::string line) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= config_.max_pending || stopping_) {
      ++dropped_;
      ++dropped_unreported_;
      return false;
    }
    queue_.push_back(std::move(line));
  }
  wake_.notify_one();
  return true;
}

void TraceWriter::flush() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [&] { return queue_.empty() && !busy_; });
}

uint64_t TraceWriter::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

uint64_t TraceWriter::written() const {
  std::lock_guard lock(mu_);
  return written_;
}

void TraceWriter::run() {
  std::vector<std::string> batch;
  for (;;) {
    uint64_t report = 0;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) break;
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
      queue_.clear();
      report = dropped_unreported_;
      dropped_unreported_ = 0;
      busy_ = true;
    }
    for (const auto& line : batch) write_line(line);
    // After the lines that did fit: how many were lost before this batch was taken.
    if (report > 0)
      write_line("{\"type\":\"TRACE_DROPPED\",\"dropped\":" + std::to_string(report) + "}");
    out_.flush();
    {
      std::lock_guard lock(mu_);
      written_ += batch.size();
      busy_ = false;
    }
    batch.clear();
    idle_.notify_all();
  }
  out_.flush();
  idle_.notify_all();
}

void TraceWriter::write_line(const std::string& line) {
  uint64_t n = line.size() + 1;
  if (size_ > 0 && size_ + n > config_.max_bytes) rotate();
  out_ << line << '\n';
  size_ += n;
}

void TraceWriter::rotate() {
  out_.close();
  std::error_code ec;
  const std::string& p = config_.path;
  if (config_.files <= 1) {
    std::filesystem::remove(p, ec);
  } else {
    // path.<files-2> -> path.<files-1> (replacing the oldest), ..., path -> path.1
    for (size_t i = config_.files - 1; i >= 1; --i) {
      std::string from = i == 1 ? p : p + "." + std::to_string(i - 1);
      std::filesystem::rename(from, p + "." + std::to_string(i), ec);
    }
  }
  out_.open(p, std::ios::trunc | std::ios::binary);
  size_ = 0;
}

}  // namespace p2pmq::agent
