// The delivery queue's SQL: what the delivery engine and the CLI read from and
// write to the deliveries, attempts, dead_letters and target_state tables.
// Reads take a read-only Journal; writes run inside the writer's transaction
// (JournalWriter jobs), each state change one guarded UPDATE: zero rows
// changed means someone else moved the row first, which is not an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "journal/journal.h"

namespace mews::journal {

struct DueDelivery {
  std::int64_t id = 0;
  std::int64_t batch_id = 0;
  std::optional<std::int64_t> event_seq;
  std::string target;
  int attempts = 0;
  std::int64_t age_from_ms = 0;
  std::int64_t due_ms = 0;
};

struct StoredBatch {
  BatchKind kind = BatchKind::Unknown;
  std::string body;
};

// --- reads -----------------------------------------------------------------
std::vector<DueDelivery> selectDue(Journal& reader, const std::string& target, std::int64_t now_ms, int limit);
// Earliest due time of the target's waiting work, if any.
std::optional<std::int64_t> nextDueMs(Journal& reader, const std::string& target);
StoredBatch loadBatch(Journal& reader, std::int64_t batch_id);

// --- writes (inside a writer transaction) ----------------------------------
// pending|retry_wait -> in_flight. True when this call moved the row.
bool claimDelivery(Journal& journal, std::int64_t delivery_id, std::int64_t now_ms);
// in_flight -> pending for rows nobody is working on (start-up, shutdown, a
// claim held back by an opened circuit), due at once in receive order.
int releaseInFlight(Journal& journal, std::int64_t now_ms, const std::vector<std::int64_t>& ids = {});

enum class AttemptOutcome { Delivered, Retry, Dead, ProbeFailed };
enum class DeadReason { Rejected, MaxAttempts, MaxAge };

struct AttemptRecord {
  std::int64_t delivery_id = 0;
  std::string target;
  std::int64_t started_ms = 0;
  std::int64_t duration_ms = 0;
  std::optional<int> status;
  std::string error;
  std::string response_excerpt;
  std::string request_headers_json;
  AttemptOutcome outcome = AttemptOutcome::Retry;
  bool spends_attempt = true;    // false for a probe while the circuit is open
  std::int64_t next_due_ms = 0;  // Retry / ProbeFailed
  DeadReason dead_reason = DeadReason::Rejected;
  std::string event_filter;  // the target's event types, comma-separated; empty for *
  std::int64_t now_ms = 0;
};

// Records the attempt and moves the row (guarded on in_flight): delivered,
// retry_wait at next_due_ms, pending again (probe failed), or dead with a
// dead_letters row. Returns false when the row was no longer in flight.
bool recordAttempt(Journal& journal, const AttemptRecord& record);

// Work older than max_age that is still waiting -> dead (reason max_age).
// `event_filter`: the target's event types, comma-separated, empty for *
// (only those are named in the dead letter).
int expireOld(Journal& journal, const std::string& target, const std::string& event_filter, std::int64_t age_cutoff_ms,
              std::int64_t now_ms, int limit);

// When a target's circuit opens, its waiting work goes back to receive order
// (due now, oldest first): the probe paces it from here, and the drain after the
// outage then follows the order the batches arrived in.
int requeueInReceiveOrder(Journal& journal, const std::string& target, std::int64_t now_ms);

struct TargetStateRecord {
  std::string target;
  std::string circuit;
  int consecutive_failures = 0;
  std::optional<std::string> last_error;
  bool success = false;
  bool opened = false;  // the circuit opened with this attempt
  std::int64_t now_ms = 0;
};
void saveTargetState(Journal& journal, const TargetStateRecord& state);

// Deletes at most `limit` delivered deliveries received before `cutoff_ms`, and
// then the batches left with nothing undelivered. Returns rows deleted.
int pruneDelivered(Journal& journal, std::int64_t cutoff_ms, int limit);

}  // namespace mews::journal
