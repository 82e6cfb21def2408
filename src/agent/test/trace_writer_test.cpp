#include "agent/trace_writer.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace p2pmq::agent {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("p2pmq-trace-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  static inline int counter = 0;
};

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string line(int i) {
  // ~100 bytes, numbered.
  return "{\"type\":\"DELIVER_MESSAGE\",\"n\":" + std::to_string(i) + ",\"pad\":\"" +
         std::string(60, 'x') + "\"}";
}

TEST(TraceWriter, RotatesBySizeAndKeepsAtMostFilesFiles) {
  TempDir dir;
  TraceFileConfig c{(dir.path / "trace.ndjson").string(), 1000, 3, 100000};
  {
    auto w = TraceWriter::open(c);
    ASSERT_TRUE(w) << w.error().message;
    for (int i = 0; i < 500; ++i) ASSERT_TRUE((*w)->push(line(i)));
    (*w)->flush();
    EXPECT_EQ((*w)->written(), 500u);
    EXPECT_EQ((*w)->dropped(), 0u);
  }
  EXPECT_TRUE(fs::exists(c.path));
  EXPECT_TRUE(fs::exists(c.path + ".1"));
  EXPECT_TRUE(fs::exists(c.path + ".2"));
  EXPECT_FALSE(fs::exists(c.path + ".3"));
  // Oldest first: .2, .1, then the current file; consecutive, whole lines, the newest last.
  std::vector<std::string> kept;
  for (auto p : {c.path + ".2", c.path + ".1", c.path}) {
    EXPECT_LE(fs::file_size(p), c.max_bytes) << p;
    auto l = lines_of(p);
    kept.insert(kept.end(), l.begin(), l.end());
  }
  ASSERT_FALSE(kept.empty());
  int first = 500 - static_cast<int>(kept.size());
  for (size_t i = 0; i < kept.size(); ++i) EXPECT_EQ(kept[i], line(first + static_cast<int>(i)));
}

TEST(TraceWriter, OneFileIsStartedAfreshAtTheLimit) {
  TempDir dir;
  TraceFileConfig c{(dir.path / "t").string(), 1000, 1, 100000};
  {
    auto w = TraceWriter::open(c);
    ASSERT_TRUE(w);
    for (int i = 0; i < 50; ++i) (*w)->push(line(i));
  }  // the destructor writes what is queued
  EXPECT_LE(fs::file_size(c.path), c.max_bytes);
  EXPECT_FALSE(fs::exists(c.path + ".1"));
  EXPECT_EQ(lines_of(c.path).back(), line(49));
}

// However far behind the writer falls, memory stays at max_pending lines, and every line is
// accounted for: written to the file, or dropped and reported in a TRACE_DROPPED line.
TEST(TraceWriter, BoundedQueueDropsAndCountsWhatItCannotHold) {
  TempDir dir;
  TraceFileConfig c{(dir.path / "t").string(), uint64_t{1} << 30, 2, 2};
  const int pushed = 20000;
  uint64_t refused = 0, written = 0, dropped = 0;
  {
    auto w = TraceWriter::open(c);
    ASSERT_TRUE(w);
    for (int i = 0; i < pushed; ++i) refused += (*w)->push(line(i)) ? 0 : 1;
    (*w)->flush();
    written = (*w)->written();
    dropped = (*w)->dropped();
  }
  EXPECT_EQ(dropped, refused);
  EXPECT_EQ(written + dropped, static_cast<uint64_t>(pushed));
  uint64_t in_file = 0, reported = 0;
  std::regex report(R"(\{"type":"TRACE_DROPPED","dropped":(\d+)\})");
  for (const auto& l : lines_of(c.path)) {
    std::smatch m;
    if (std::regex_match(l, m, report))
      reported += std::stoull(m[1]);
    else
      ++in_file;
  }
  EXPECT_EQ(in_file, written);
  EXPECT_EQ(reported, dropped);
}

TEST(TraceWriter, UnwritablePathIsAnError) {
  auto w = TraceWriter::open({"/nonexistent-dir/trace.ndjson", 1000, 2, 10});
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message.find("/nonexistent-dir/trace.ndjson"), std::string::npos);
}

}  // namespace
}  // namespace p2pmq::agent
