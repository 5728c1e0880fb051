// The rows the journal stores, as plain values shared by ingest (which builds
// them from a request), delivery (which reads them back) and the CLI.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mews::journal {

enum class BatchKind { General, Integration, Unknown };

std::string_view kindName(BatchKind kind);
// The inverse of kindName; any other text is Unknown.
BatchKind kindFromName(std::string_view name);

struct EventRecord {
  std::string discriminator;  // Discriminator, or Action of an integration webhook
  std::optional<std::string> entity_id;
};

// What a received body says about itself; filled by the ingest parser.
struct BatchSummary {
  BatchKind kind = BatchKind::Unknown;
  std::optional<std::string> enterprise_id;
  std::optional<std::string> integration_id;
  std::vector<EventRecord> events;
};

// One pending delivery to create with the batch: `event_seq` set in event mode.
struct PlannedDelivery {
  std::string target;
  std::optional<std::int64_t> event_seq;
};

struct IncomingBatch {
  std::int64_t received_at_ms = 0;
  std::string content_type;
  std::string body;  // the exact bytes received
  BatchSummary summary;
  std::vector<PlannedDelivery> deliveries;
};

}  // namespace mews::journal
