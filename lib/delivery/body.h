// The request body one delivery sends, from the batch as journaled.
//
//   batch mode, every event wanted (or not a General batch): the exact bytes received.
//   batch mode, filtered: the same top-level members, `Events` holding only the
//     matching events (re-encoded compactly; member order kept).
//   event mode, General: {"EnterpriseId":…,"IntegrationId":…,"Events":[<the event>]}
//     — the shape of a General webhook with one event, so one parser serves both modes.
//   event mode, Integration or unknown: the exact bytes received.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "config/config.h"
#include "journal/records.h"

namespace mews::delivery {

// Throws std::runtime_error when the stored body no longer parses (it did at
// ingest; this would mean a corrupted journal row).
std::string buildBody(journal::BatchKind kind, const std::string& stored_body, std::optional<std::int64_t> event_seq,
                      const config::TargetSettings& target);

}  // namespace mews::delivery
