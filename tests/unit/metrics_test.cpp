// metrics/metrics.h: counters, histograms (Prometheus's cumulative `le`
// buckets, _count equal to the +Inf bucket) and the text exposition format
// 0.0.4 as the admin listener serves it, label values escaped.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "metrics/metrics.h"

using namespace mews::metrics;

TEST_CASE("counter: starts at zero, adds one by default or n, from many threads without losing any") {
  Counter counter;
  CHECK(counter.value() == 0);
  counter.add();
  counter.add(41);
  CHECK(counter.value() == 42);

  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&counter] {
      for (int i = 0; i < 10'000; ++i) counter.add();
    });
  for (auto& thread : threads) thread.join();
  CHECK(counter.value() == 42 + 40'000);
}

TEST_CASE("histogram: a value equal to a bound counts in that bound's bucket; buckets are cumulative") {
  Histogram histogram({0.1, 1, 10});
  histogram.observe(0.05);
  histogram.observe(0.1);  // le="0.1" means <= 0.1
  histogram.observe(0.5);
  histogram.observe(10);
  histogram.observe(11);  // only in +Inf

  const Histogram::Snapshot snapshot = histogram.snapshot();
  CHECK(snapshot.bounds == std::vector<double>{0.1, 1, 10});
  REQUIRE(snapshot.cumulative.size() == 4);
  CHECK(snapshot.cumulative[0] == 2);
  CHECK(snapshot.cumulative[1] == 3);
  CHECK(snapshot.cumulative[2] == 4);
  CHECK(snapshot.cumulative[3] == 5);
  CHECK(snapshot.count == 5);
  CHECK(snapshot.sum == doctest::Approx(21.65));
}

TEST_CASE("histogram: empty, every bucket and the sum are zero") {
  const Histogram::Snapshot snapshot = Histogram(latencyBounds()).snapshot();
  CHECK(snapshot.count == 0);
  CHECK(snapshot.sum == 0);
  CHECK(snapshot.cumulative.size() == latencyBounds().size() + 1);
  for (const auto bucket : snapshot.cumulative) CHECK(bucket == 0);
}

TEST_CASE("latency bounds: ascending, from half a millisecond to 30 seconds") {
  const std::vector<double> bounds = latencyBounds();
  REQUIRE(!bounds.empty());
  CHECK(bounds.front() == 0.0005);
  CHECK(bounds.back() == 30);
  for (std::size_t i = 1; i < bounds.size(); ++i) CHECK(bounds[i - 1] < bounds[i]);
}

TEST_CASE("exposition: HELP and TYPE, then samples with and without labels") {
  Exposition out;
  out.family("mews_ingest_requests_total", "counter", "Requests to the ingest endpoint.");
  out.sample("mews_ingest_requests_total", {{"status", "202"}}, 7);
  out.sample("mews_ingest_requests_total", {{"status", "503"}, {"reason", "journal"}}, 0);
  out.family("mews_up", "gauge", "1 while serving.");
  out.sample("mews_up", {}, 1);
  CHECK(out.text() ==
        "# HELP mews_ingest_requests_total Requests to the ingest endpoint.\n"
        "# TYPE mews_ingest_requests_total counter\n"
        "mews_ingest_requests_total{status=\"202\"} 7\n"
        "mews_ingest_requests_total{status=\"503\",reason=\"journal\"} 0\n"
        "# HELP mews_up 1 while serving.\n"
        "# TYPE mews_up gauge\n"
        "mews_up 1\n");
}

TEST_CASE("exposition: label values escaped per the format (backslash, quote, newline)") {
  Exposition out;
  out.sample("m", {{"target", "a\\b\"c\nd"}}, 1);
  CHECK(out.text() == "m{target=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST_CASE("exposition: values as Prometheus reads them (fractions, +Inf, -Inf, NaN)") {
  Exposition out;
  out.sample("a", {}, 0.25);
  out.sample("b", {}, std::numeric_limits<double>::infinity());
  out.sample("c", {}, -std::numeric_limits<double>::infinity());
  out.sample("d", {}, std::nan(""));
  out.sample("e", {}, 1234567);
  CHECK(out.text() == "a 0.25\nb +Inf\nc -Inf\nd NaN\ne 1234567\n");
}

TEST_CASE("exposition: a histogram's buckets (le last among the labels), +Inf, _sum and _count") {
  Histogram histogram({0.5, 2});
  histogram.observe(0.5);
  histogram.observe(1);
  histogram.observe(3);
  Exposition out;
  out.histogram("mews_commit_seconds", {{"journal", "sqlite"}}, histogram.snapshot());
  CHECK(out.text() ==
        "mews_commit_seconds_bucket{journal=\"sqlite\",le=\"0.5\"} 1\n"
        "mews_commit_seconds_bucket{journal=\"sqlite\",le=\"2\"} 2\n"
        "mews_commit_seconds_bucket{journal=\"sqlite\",le=\"+Inf\"} 3\n"
        "mews_commit_seconds_sum{journal=\"sqlite\"} 4.5\n"
        "mews_commit_seconds_count{journal=\"sqlite\"} 3\n");
}

TEST_CASE("exposition: a histogram without labels has le alone") {
  Histogram histogram({1});
  Exposition out;
  out.histogram("h", {}, histogram.snapshot());
  CHECK(out.text() == "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
}
