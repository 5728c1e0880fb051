#include "console/chart.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/clock.h"
#include "console/web.h"

namespace mews::console {
namespace {

constexpr double kWidth = 720;
constexpr double kLeft = 44;  // room for the scale labels
constexpr double kRight = 6;
constexpr double kTop = 6;
constexpr double kAxis = 70;     // the baseline: deliveries above, failures below
constexpr double kBottom = 124;  // lowest point of a failure bar
constexpr double kHeight = 144;

// "HH:MM" of an ISO time, UTC.
std::string clockText(std::int64_t ms) {
  return formatIsoMillis(ms).substr(11, 5);
}

}  // namespace

std::string activityChart(std::string_view target, const std::vector<journal::ActivityBucket>& buckets,
                          std::int64_t start_ms, std::int64_t bucket_ms) {
  std::int64_t max_delivered = 0;
  std::int64_t max_failed = 0;
  std::int64_t total_delivered = 0;
  std::int64_t total_failed = 0;
  for (const auto& bucket : buckets) {
    max_delivered = std::max(max_delivered, bucket.delivered);
    max_failed = std::max(max_failed, bucket.failed);
    total_delivered += bucket.delivered;
    total_failed += bucket.failed;
  }
  const std::int64_t span_ms = bucket_ms * static_cast<std::int64_t>(buckets.size());
  const std::string name = web::escape(target);
  std::string svg = fmt::format(
      R"(<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}: {} delivered, {} failed in the last {}">)",
      kWidth, kHeight, name, total_delivered, total_failed, web::ageText(span_ms));
  svg += fmt::format(R"(<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>)", kLeft, kAxis, kWidth - kRight, kAxis);
  svg += fmt::format(R"(<text class="scale" x="{}" y="{}" text-anchor="end">{}</text>)", kLeft - 4, kTop + 8,
                     max_delivered);
  svg +=
      fmt::format(R"(<text class="scale ok-text" x="{}" y="{}" text-anchor="end">sent</text>)", kLeft - 4, kAxis - 4);
  svg += fmt::format(R"(<text class="scale bad-text" x="{}" y="{}" text-anchor="end">failed</text>)", kLeft - 4,
                     kAxis + 12);
  svg +=
      fmt::format(R"(<text class="scale" x="{}" y="{}" text-anchor="end">{}</text>)", kLeft - 4, kBottom, max_failed);
  const double slot = (kWidth - kLeft - kRight) / static_cast<double>(std::max<std::size_t>(buckets.size(), 1));
  const double bar = std::max(1.0, slot - 1);
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    const auto& bucket = buckets[i];
    const double x = kLeft + slot * static_cast<double>(i);
    const std::int64_t from = start_ms + bucket_ms * static_cast<std::int64_t>(i);
    svg += fmt::format(R"(<g><title>{}–{} UTC: {} delivered, {} failed</title>)", clockText(from),
                       clockText(from + bucket_ms), bucket.delivered, bucket.failed);
    svg += fmt::format(R"(<rect class="hit" x="{:.1f}" y="{}" width="{:.1f}" height="{}"/>)", x, kTop, slot,
                       kBottom - kTop);
    if (bucket.delivered > 0) {
      const double h =
          std::max(1.5, (kAxis - kTop) * static_cast<double>(bucket.delivered) / static_cast<double>(max_delivered));
      svg += fmt::format(R"(<rect class="ok" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}"/>)", x, kAxis - h,
                         bar, h);
    }
    if (bucket.failed > 0) {
      const double h =
          std::max(1.5, (kBottom - kAxis) * static_cast<double>(bucket.failed) / static_cast<double>(max_failed));
      svg += fmt::format(R"(<rect class="bad" x="{:.1f}" y="{}" width="{:.1f}" height="{:.1f}"/>)", x, kAxis, bar, h);
    }
    svg += "</g>";
  }
  // Time labels: the start, the middle and the end of the window.
  const std::int64_t end_ms = start_ms + span_ms;
  svg += fmt::format(R"(<text class="scale" x="{}" y="{}">{} UTC</text>)", kLeft, kHeight - 4, clockText(start_ms));
  svg += fmt::format(R"(<text class="scale" x="{}" y="{}" text-anchor="middle">{}</text>)",
                     (kLeft + kWidth - kRight) / 2, kHeight - 4, clockText(start_ms + span_ms / 2));
  svg += fmt::format(R"(<text class="scale" x="{}" y="{}" text-anchor="end">{} (now)</text>)", kWidth - kRight,
                     kHeight - 4, clockText(end_ms));
  svg += "</svg>";
  return svg;
}

}  // namespace mews::console
