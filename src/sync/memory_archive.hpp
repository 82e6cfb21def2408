#pragma once
// An in-memory Archive with count retention: the reference the RocksDB store is compared to,
// and the fake behind server tests, the fuzz target and the simulator.
#include <map>
#include <string>
#include <utility>

#include "sync/archive.hpp"

namespace p2pmq::sync {

class MemoryArchive : public Archive {
 public:
  explicit MemoryArchive(Retention retention = {}) : retention_(retention) {}

  Result<bool> put(const TopicId& topic, BytesView origin, uint64_t seqno, BytesView message,
                   WallTime received) override;
  bool has_topic(const TopicId& topic) override;
  Result<QueryResult> latest(const TopicId& topic, uint64_t n, size_t max_bytes) override;
  Result<QueryResult> range(const TopicId& topic, BytesView origin, uint64_t from, uint64_t to,
                            size_t max_bytes) override;
  Result<QueryResult> since(const TopicId& topic, const std::vector<Watermark>& watermarks,
                            const std::optional<Position>& after, size_t max_bytes) override;

  size_t size(const TopicId& topic) const;

 private:
  struct KeyLess {
    bool operator()(const std::pair<Bytes, uint64_t>& a, const std::pair<Bytes, uint64_t>& b) const;
  };
  struct Topic {
    std::map<std::pair<Bytes, uint64_t>, StoredMessage, KeyLess> by_origin;
    std::map<uint64_t, std::pair<Bytes, uint64_t>> by_arrival;
    uint64_t next_arrival = 1;
    std::map<Bytes, uint64_t> per_origin;  // messages held
  };
  Retention retention_;
  std::map<TopicId, Topic> topics_;
};

}  // namespace p2pmq::sync
