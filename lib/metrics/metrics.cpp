#include "metrics/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace mews::metrics {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double value) {
  const auto bucket =
      static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot out;
  out.bounds = bounds_;
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out.cumulative.push_back(running);
  }
  // The buckets are the truth for the count: _count must equal the +Inf bucket.
  out.count = running;
  out.sum = sum_.load(std::memory_order_relaxed);
  return out;
}

std::vector<double> latencyBounds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

namespace {

void appendEscaped(std::string& out, std::string_view value) {
  for (const char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

std::string formatValue(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  return fmt::format("{}", value);
}

}  // namespace

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(text_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void Exposition::line(std::string_view name, Labels labels, std::string_view extra_key, std::string_view extra_value,
                      double value) {
  text_ += name;
  if (labels.size() > 0 || !extra_key.empty()) {
    text_ += '{';
    bool first = true;
    auto label = [&](std::string_view key, std::string_view label_value) {
      if (!first) text_ += ',';
      first = false;
      text_ += key;
      text_ += "=\"";
      appendEscaped(text_, label_value);
      text_ += '"';
    };
    for (const auto& [key, label_value] : labels) label(key, label_value);
    if (!extra_key.empty()) label(extra_key, extra_value);
    text_ += '}';
  }
  text_ += ' ';
  text_ += formatValue(value);
  text_ += '\n';
}

void Exposition::sample(std::string_view name, Labels labels, double value) {
  line(name, labels, {}, {}, value);
}

void Exposition::histogram(std::string_view name, Labels labels, const Histogram::Snapshot& snapshot) {
  const std::string bucket = fmt::format("{}_bucket", name);
  for (std::size_t i = 0; i < snapshot.bounds.size(); ++i)
    line(bucket, labels, "le", formatValue(snapshot.bounds[i]), static_cast<double>(snapshot.cumulative[i]));
  line(bucket, labels, "le", "+Inf", static_cast<double>(snapshot.count));
  line(fmt::format("{}_sum", name), labels, {}, {}, snapshot.sum);
  line(fmt::format("{}_count", name), labels, {}, {}, static_cast<double>(snapshot.count));
}

}  // namespace mews::metrics
