#include "batch/routing.h"

#include <algorithm>

#include "batch/payload.h"
#include "common/text.h"

namespace mews::batch {

std::vector<journal::PlannedDelivery> planDeliveries(const journal::BatchSummary& summary,
                                                     const std::vector<config::TargetSettings>& targets) {
  std::vector<journal::PlannedDelivery> planned;
  for (const auto& target : targets) {
    if (!target.acceptsProperty(summary.enterprise_id, summary.integration_id)) continue;
    if (summary.kind == journal::BatchKind::Unknown) {
      if (target.acceptsAllEvents()) planned.push_back({target.name, std::nullopt});
      continue;
    }
    if (target.mode == config::DeliveryMode::Batch) {
      const bool any = std::any_of(summary.events.begin(), summary.events.end(),
                                   [&](const auto& event) { return target.accepts(event.discriminator); });
      if (any) planned.push_back({target.name, std::nullopt});
      continue;
    }
    for (std::size_t seq = 0; seq < summary.events.size(); ++seq)
      if (target.accepts(summary.events[seq].discriminator))
        planned.push_back({target.name, static_cast<std::int64_t>(seq)});
  }
  return planned;
}

std::string deadLetterEventTypes(const config::TargetSettings& target, std::string_view body,
                                 std::optional<std::int64_t> event_seq) {
  std::vector<std::string> named;
  for (auto& type : batch::eventTypes(body, event_seq))
    if (target.accepts(type) && std::find(named.begin(), named.end(), type) == named.end())
      named.push_back(std::move(type));
  return text::joinList(named);
}

journal::DeadLetterTypes deadLetterTypes(const config::TargetSettings& target) {
  return [target](std::string_view body, std::optional<std::int64_t> event_seq) {
    return deadLetterEventTypes(target, body, event_seq);
  };
}

}  // namespace mews::batch
