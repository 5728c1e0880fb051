// libFuzzer target: any bytes as a received body. parseBatch must never crash,
// and what it accepts must be self-consistent: the routing of its events to
// targets with filters is exercised too.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/config.h"
#include "delivery/routing.h"
#include "ingest/payload.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const auto parsed = mews::ingest::parseBatch(body);
  if (!parsed.ok()) {
    if (parsed.error().empty()) std::abort();  // every refusal has a reason
    return 0;
  }
  const auto& summary = parsed.value();
  if (summary.kind == mews::journal::BatchKind::Integration && summary.events.size() != 1) std::abort();
  static const std::vector<mews::config::TargetSettings> targets = [] {
    std::vector<mews::config::TargetSettings> list(3);
    list[0].name = "all";
    list[1].name = "filtered";
    list[1].events = {"ReservationUpdated", "IntegrationCreated"};
    list[2].name = "per-event";
    list[2].mode = mews::config::DeliveryMode::Event;
    return list;
  }();
  const auto planned = mews::delivery::planDeliveries(summary, targets);
  // `*` takes every batch that carries an event, and every unknown one (routing.h;
  // regressions/payload/general-no-events.json: a General webhook with no events plans nothing).
  const bool carries = !summary.events.empty() || summary.kind == mews::journal::BatchKind::Unknown;
  if (carries != (!planned.empty() && planned.front().target == "all")) std::abort();
  return 0;
}
