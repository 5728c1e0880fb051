// libFuzzer target: any bytes as a received body. parseBatch must never crash,
// and what it accepts must be deliverable: whatever ingest acknowledges,
// delivery builds in every mode, out of the received bytes.
//
// Invariants (each violation aborts):
//   - a refusal has a one-line reason; an acceptance is a JSON text by the scanner;
//   - routing: `*` takes every batch that carries an event, and every unknown one;
//   - buildBody succeeds for every target and every planned event; an unfiltered
//     body is the body itself;
//   - a filtered or per-event body reads back, by the same reader, as a General
//     batch holding exactly the chosen events, each with its original bytes, and
//     one Events member (a shadowed one could hold events not chosen); a filter
//     every event passes sends the body itself only when it has one Events.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_scan.h"
#include "config/config.h"
#include "batch/body.h"
#include "batch/routing.h"
#include "batch/payload.h"

namespace {

using mews::journal::BatchKind;

void require(bool condition) {
  if (!condition) std::abort();
}

std::size_t eventsMembers(const mews::batch::BatchOutline& outline) {
  return static_cast<std::size_t>(
      std::count_if(outline.members.begin(), outline.members.end(), [](const auto& m) { return m.is_events; }));
}

// `built` reads back as a General batch whose events are `chosen` of
// `outline`'s, in order, with the same bytes, discriminators and ids.
void requireEvents(const std::string& built, const mews::batch::BatchOutline& outline,
                   const std::vector<std::size_t>& chosen) {
  const auto reread = mews::batch::outlineBatch(built);
  require(reread.ok());
  const auto& back = reread.value();
  require(back.kind == BatchKind::General);
  require(eventsMembers(back) == 1);
  require(back.events.size() == chosen.size());
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    const auto& original = outline.events[chosen[i]];
    require(back.events[i].bytes == original.bytes);
    require(back.events[i].discriminator == original.discriminator);
    require(back.events[i].entity_id == original.entity_id);
  }
  require(back.enterprise_id == outline.enterprise_id);
  require(back.integration_id == outline.integration_id);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  const auto outlined = mews::batch::outlineBatch(body);
  const auto parsed = mews::batch::parseBatch(body);
  require(outlined.ok() == parsed.ok());
  if (!parsed.ok()) {
    require(!parsed.error().empty() && parsed.error().find('\n') == std::string::npos);
    return 0;
  }
  require(mews::json::isValid(body));
  const auto& outline = outlined.value();
  const auto& summary = parsed.value();
  require(summary.kind == outline.kind);
  if (summary.kind == BatchKind::Integration) require(summary.events.size() == 1);
  if (summary.kind == BatchKind::General) require(outline.events.size() == summary.events.size());

  static const std::vector<mews::config::TargetSettings> targets = [] {
    std::vector<mews::config::TargetSettings> list(3);
    list[0].name = "all";
    list[1].name = "filtered";
    list[1].events = {"ReservationUpdated", "IntegrationCreated", "A"};
    list[2].name = "per-event";
    list[2].mode = mews::config::DeliveryMode::Event;
    return list;
  }();
  const auto planned = mews::batch::planDeliveries(summary, targets);
  // `*` takes every batch that carries an event, and every unknown one (routing.h;
  // regressions/payload/general-no-events.json: a General webhook with no events plans nothing).
  const bool carries = !summary.events.empty() || summary.kind == BatchKind::Unknown;
  require(carries == (!planned.empty() && planned.front().target == "all"));

  for (const auto& delivery : planned) {
    const auto& target =
        *std::find_if(targets.begin(), targets.end(), [&](const auto& t) { return t.name == delivery.target; });
    const std::string built = mews::batch::buildBody(summary.kind, body, delivery.event_seq, target);
    if (summary.kind != BatchKind::General || (!delivery.event_seq && target.acceptsAllEvents())) {
      require(built == body);
      continue;
    }
    std::vector<std::size_t> chosen;
    if (delivery.event_seq) {
      chosen.push_back(static_cast<std::size_t>(*delivery.event_seq));
    } else {
      for (std::size_t e = 0; e < summary.events.size(); ++e)
        if (target.accepts(summary.events[e].discriminator)) chosen.push_back(e);
      if (chosen.size() == summary.events.size() && eventsMembers(outline) == 1) {
        require(built == body);  // nothing filtered out: the body itself
        continue;
      }
    }
    requireEvents(built, outline, chosen);
  }
  return 0;
}
