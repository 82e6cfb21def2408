// The metrics module's sans-IO parts: the exposition format, the request-head parser, the
// bounded rate history. The listener itself is exercised end to end by tests/agent/test_metrics.py.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/histogram.hpp"
#include "metrics/collector.hpp"
#include "metrics/http_server.hpp"
#include "metrics/rate_history.hpp"

namespace p2pmq::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(Histogram, AValueOnABoundCountsInThatBucket) {
  const double bounds[] = {1, 2};
  Histogram h(bounds);
  h.observe(1);
  h.observe(1.5);
  h.observe(7);
  EXPECT_EQ(h.counts(), (std::vector<uint64_t>{1, 1, 1}));
  EXPECT_EQ(h.count(), 3u);
  EXPECT_DOUBLE_EQ(h.sum(), 9.5);
}

TEST(Collector, SeriesOfOneNameShareAFamilyInTheTextFormat) {
  Collector c;
  c.counter("p2pmq_x_total", "X.", 3, {{"topic", "a"}});
  c.counter("p2pmq_x_total", "X.", 4, {{"topic", "b"}});
  c.gauge("p2pmq_y", "Y.", 1.5);
  ASSERT_EQ(c.families().size(), 2u);
  std::string text = c.text();
  EXPECT_THAT(text, HasSubstr("# TYPE p2pmq_x_total counter\n"));
  EXPECT_THAT(text, HasSubstr("p2pmq_x_total{topic=\"a\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("p2pmq_x_total{topic=\"b\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE p2pmq_y gauge\np2pmq_y 1.5\n"));
}

TEST(Collector, HistogramBucketsAreCumulativeWithInf) {
  const double bounds[] = {0.1, 1};
  Histogram h(bounds);
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  Collector c;
  c.histogram("p2pmq_d_seconds", "D.", h);
  std::string text = c.text();
  EXPECT_THAT(text, HasSubstr("p2pmq_d_seconds_bucket{le=\"0.1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("p2pmq_d_seconds_bucket{le=\"1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("p2pmq_d_seconds_bucket{le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("p2pmq_d_seconds_count 3\n"));
  auto j = c.json();
  EXPECT_EQ(j["p2pmq_d_seconds"][0]["count"], 3);
}

TEST(Collector, LabelValuesAreEscaped) {
  Collector c;
  c.gauge("p2pmq_z", "Z.", 1, {{"topic", "a\"b\\c\nd"}});
  EXPECT_THAT(c.text(), HasSubstr("p2pmq_z{topic=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST(HttpRequestHead, GetGivesThePathWithoutQuery) {
  auto r = parse_request_head("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->method, "GET");
  EXPECT_EQ(r->path, "/metrics");
}

TEST(HttpRequestHead, OtherMethodsAreRefusedAsUnsupported) {
  auto r = parse_request_head("POST / HTTP/1.1\r\n\r\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unsupported);
}

TEST(HttpRequestHead, GarbageIsInvalid) {
  for (std::string_view head : {"\r\n\r\n", "GET\r\n\r\n", "GET / SPDY/3\r\n\r\n",
                                "GET metrics HTTP/1.1\r\n\r\n", "no line end"}) {
    auto r = parse_request_head(head);
    ASSERT_FALSE(r) << head;
    EXPECT_EQ(r.error().code, Errc::invalid_input) << head;
  }
}

TEST(HttpResponse, HeadKeepsTheLengthAndDropsTheBody) {
  HttpResponse r{200, "text/plain", "hello"};
  std::string get = format_response(r, false), head = format_response(r, true);
  EXPECT_THAT(get, HasSubstr("Content-Length: 5\r\n"));
  EXPECT_THAT(get, HasSubstr("Connection: close\r\n\r\nhello"));
  EXPECT_THAT(head, HasSubstr("Content-Length: 5\r\n"));
  EXPECT_THAT(head, Not(HasSubstr("hello")));
}

Collector topics(std::initializer_list<std::pair<std::string, double>> delivered) {
  Collector c;
  for (const auto& [topic, n] : delivered) c.counter("d_total", "D.", n, {{"topic", topic}});
  c.counter("other_total", "O.", 1, {{"topic", "x"}});
  return c;
}

TEST(RateHistory, KeepsTheLastCapacitySamples) {
  RateHistory h({"d_total"}, 3, 8);
  for (int i = 0; i < 5; ++i) h.sample(i, topics({{"a", double(10 * i)}}));
  EXPECT_EQ(h.size(), 3u);
  auto j = h.json();
  EXPECT_EQ(j["t"], nlohmann::json({2.0, 3.0, 4.0}));
  EXPECT_EQ(j["topics"]["a"]["d_total"], nlohmann::json({20.0, 30.0, 40.0}));
  EXPECT_FALSE(j["topics"].contains("x"));  // a family it does not follow
}

TEST(RateHistory, FollowsAtMostMaxTopicsTheFirstByName) {
  RateHistory h({"d_total"}, 4, 2);
  h.sample(0, topics({{"c", 1}, {"b", 2}, {"a", 3}}));
  auto j = h.json();
  EXPECT_EQ(j["topics"].size(), 2u);
  EXPECT_TRUE(j["topics"].contains("a"));
  EXPECT_TRUE(j["topics"].contains("b"));
}

TEST(RateHistory, ATopicMissingFromASampleIsNull) {
  RateHistory h({"d_total"}, 4, 8);
  h.sample(0, topics({}));
  h.sample(1, topics({{"a", 5}}));
  EXPECT_EQ(h.json()["topics"]["a"]["d_total"], nlohmann::json({nullptr, 5.0}));
}

}  // namespace
}  // namespace p2pmq::metrics
