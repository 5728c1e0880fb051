// Server-rendered SVG charts for the console's overview (console/chart.*):
// per target, deliveries above the axis and failures below it, one bar per
// time bucket, each half on its own scale, so the shape of an outage shows even
// when failures are few beside many deliveries. No script, no external file;
// every bar has a <title> (hover, screen readers) and the whole a summary.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "journal/reports.h"

namespace mews::console {

// `buckets` consecutive buckets of `bucket_ms` from `start_ms`. `target` is
// escaped here; the result is markup to embed as it is.
std::string activityChart(std::string_view target, const std::vector<journal::ActivityBucket>& buckets,
                          std::int64_t start_ms, std::int64_t bucket_ms);

}  // namespace mews::console
