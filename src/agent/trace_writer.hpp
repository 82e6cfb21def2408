#pragma once
// The event trace's file (trace.file): NDJSON lines written by a thread of its own, so the io
// thread never waits on the disk. The queue between them is bounded (max_pending lines): when
// the writer falls behind, new lines are dropped and counted, and a {"type":"TRACE_DROPPED"}
// line says how many once it catches up. The file is rotated by size: at most `files` files of
// about max_bytes each (path, path.1, ... path.<files-1>, oldest last) exist at any time.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/result.hpp"

namespace p2pmq::agent {

struct TraceFileConfig {
  std::string path;
  uint64_t max_bytes = uint64_t{64} << 20;  // one file; a line never straddles two
  size_t files = 4;                         // kept, the current one included
  size_t max_pending = 65536;               // lines queued for the writer thread
};

class TraceWriter {
 public:
  // Opens (appends to) the file and starts the writer thread.
  static Result<std::unique_ptr<TraceWriter>> open(TraceFileConfig config);
  ~TraceWriter();  // writes what is queued, then stops
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // One line (without its newline). Never blocks on IO; false when the queue is full (dropped).
  bool push(std::string line);
  // Waits until every line pushed so far is written and flushed (tests, shutdown).
  void flush();

  uint64_t dropped() const;
  uint64_t written() const;

 private:
  explicit TraceWriter(TraceFileConfig config);
  void run();
  void write_line(const std::string& line);
  void rotate();

  TraceFileConfig config_;
  std::ofstream out_;
  uint64_t size_ = 0;  // of the current file (writer thread only)

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  bool busy_ = false;     // the writer holds lines taken from the queue
  uint64_t dropped_ = 0;  // in total
  uint64_t dropped_unreported_ = 0;
  uint64_t written_ = 0;
  std::thread thread_;
};

}  // namespace p2pmq::agent
