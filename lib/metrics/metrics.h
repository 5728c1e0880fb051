// Metric primitives and the Prometheus text exposition format (version 0.0.4).
//
// The parts of the relay own their metrics (the ingest server its counters, the
// journal writer its commit histograms, the delivery engine its per-target
// outcomes); the admin listener renders them on GET /metrics. Recording is
// lock-free (relaxed atomics: a scrape may see one counter a moment ahead of
// another, never a torn value). Label values are escaped per the format; no
// caller passes a token, secret or header value as a label.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mews::metrics {

class Counter {
 public:
  void add(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// Fixed upper bounds, ascending; +Inf is implied.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0;
    std::uint64_t count = 0;
  };
  [[nodiscard]] Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // per bucket, not cumulative; last is +Inf
  std::atomic<double> sum_{0};
  std::atomic<std::uint64_t> count_{0};
};

// Latencies in seconds from 0.5 ms to 30 s.
std::vector<double> latencyBounds();

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// Builds one exposition: each family's HELP and TYPE once, then its samples.
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, Labels labels, double value);
  void histogram(std::string_view name, Labels labels, const Histogram::Snapshot& snapshot);
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  void line(std::string_view name, Labels labels, std::string_view extra_key, std::string_view extra_value,
            double value);
  std::string text_;
};

}  // namespace mews::metrics
