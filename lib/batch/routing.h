// Which targets get what from a batch: decided once, at ingest, and written as
// pending delivery rows in the same transaction as the batch.
//
//   batch mode  one delivery of the whole batch when at least one event passes
//               the target's filter (the body is filtered when sent).
//   event mode  one delivery per passing event; an unknown batch counts as one
//               item and is sent whole.
//   unknown     kind `unknown` goes only to targets with `events = *`.
//   property    a target with `enterprises` / `integrations` lists gets only
//               batches whose EnterpriseId / IntegrationId is listed (both,
//               when it has both); a batch without that id (unknown shape) is
//               not theirs.
//   no match    no row, no request. A batch no target wants is still journaled,
//               marked unrouted (batches.unrouted) and counted.
#pragma once

#include <vector>

#include "config/config.h"
#include "journal/queue.h"
#include "journal/records.h"

namespace mews::batch {

std::vector<journal::PlannedDelivery> planDeliveries(const journal::BatchSummary& summary,
                                                     const std::vector<config::TargetSettings>& targets);

// What a dead letter of `target` names as its event types: in event mode the
// one event's, otherwise the distinct ones of the batch the target's filter
// passes, in order, comma-separated (read from `body`).
std::string deadLetterEventTypes(const config::TargetSettings& target, std::string_view body,
                                 std::optional<std::int64_t> event_seq);
// The same, bound to `target`, for the journal (expiry by max_age reads the stored batches).
journal::DeadLetterTypes deadLetterTypes(const config::TargetSettings& target);

}  // namespace mews::batch
