// The request body one delivery sends, from the batch as journaled. Every body
// is made of the bytes received: nothing is re-encoded, so every number,
// escape, name order and white space inside an event reaches the target as
// Mews sent it.
//
//   batch mode, every event wanted (or not a General batch): the exact bytes received.
//     With a filter, only when `Events` appears once: an earlier, shadowed
//     `Events` may hold any events, so such a body is built as filtered.
//   batch mode, filtered: {<each top-level member>,…} in the order received, each
//     as `<name as received>:<value as received>`, with `Events` holding only the
//     matching events' bytes, comma-separated. White space between members and
//     between events is not kept; a repeated `Events` name is sent once (the last,
//     the one every reader of the JSON uses).
//   event mode, General: {"EnterpriseId":<bytes>,"IntegrationId":<bytes>,"Events":[<the event's bytes>]}
//     — the shape of a General webhook with one event, so one parser serves both
//     modes; EnterpriseId and IntegrationId only when the batch has them.
//   event mode, Integration or unknown: the exact bytes received.
//
// The stored body is read with ingest's reader (ingest/payload.h), so a body
// ingest accepted always builds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "config/config.h"
#include "journal/records.h"

namespace mews::batch {

// Throws std::runtime_error when the stored body no longer reads as it did at
// ingest (a corrupted journal row) or has no event at `event_seq`.
std::string buildBody(journal::BatchKind kind, const std::string& stored_body, std::optional<std::int64_t> event_seq,
                      const config::TargetSettings& target);

}  // namespace mews::batch
