// The operator's read models: per-target status, journal totals, the dead
// letters (listed, one whole, keyset pages for the console), deliveries and
// their attempts, the console's figures. SQL only, on a reader connection;
// the CLI formats, the admin listener and the console show. The changes an
// operator makes are moves.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "journal/journal.h"
#include "journal/queue.h"

namespace mews::journal {

struct TargetStatus {
  std::string target;
  std::int64_t pending = 0;  // pending + retry_wait
  std::int64_t in_flight = 0;
  std::int64_t delivered_24h = 0;
  std::int64_t dead = 0;
  std::optional<std::string> oldest_pending_at;
  std::string circuit = "closed";
  std::optional<std::string> last_error;
};

std::vector<TargetStatus> targetStatus(Journal& reader, const std::vector<std::string>& targets, std::int64_t now_ms);

struct JournalTotals {
  std::int64_t batches = 0;
  std::int64_t events = 0;
  std::int64_t deliveries = 0;
  std::int64_t dead_letters = 0;
  std::int64_t unrouted_batches = 0;  // journaled, but no target wanted them (batches.unrouted)
  int schema_version = 0;
};
JournalTotals journalTotals(Journal& reader);

struct DeadLetter {
  std::int64_t id = 0;
  std::int64_t delivery_id = 0;
  std::int64_t batch_id = 0;
  std::string target;
  std::string event_types;
  std::int64_t attempts = 0;
  std::optional<std::int64_t> last_status;
  std::optional<std::string> last_error;
  std::string reason;
  std::string received_at;
  std::string died_at;
  DeliveryState state = DeliveryState::Dead;  // of the delivery now: dead, or pending again after a replay
};

struct DeadLetterFilter {
  std::optional<std::string> target;
  std::optional<std::int64_t> since_ms;  // died at or after
  std::optional<std::int64_t> until_ms;  // died before
  int limit = -1;                        // newest first; -1: all
};
std::vector<DeadLetter> listDeadLetters(Journal& reader, const DeadLetterFilter& filter);

struct AttemptRow {
  std::string started_at;
  std::int64_t duration_ms = 0;
  std::optional<std::int64_t> status;
  std::optional<std::string> error;
  std::string outcome;
  std::string response_excerpt;
};

struct DeadLetterDetail {
  DeadLetter letter;
  std::string kind;
  std::optional<std::int64_t> event_seq;
  std::string payload;       // the batch as received
  std::string headers_sent;  // JSON object of the last attempt's request headers
  std::vector<AttemptRow> attempts;
};
std::optional<DeadLetterDetail> showDeadLetter(Journal& reader, std::int64_t id);

// Ids among `ids` that are not dead letters (for the error message).
std::vector<std::int64_t> unknownDeadLetters(Journal& journal, const std::vector<std::int64_t>& ids);

// --- a target removed from the configuration --------------------------------
// What the journal still holds for targets that are not in `configured`: work
// that stays, never dropped, until the target is re-added, the work is moved to
// another target (retargetWork) or purged (purgeTargetWork).
struct UnknownTargetWork {
  std::string target;
  std::int64_t waiting = 0;  // pending + retry_wait
  std::int64_t in_flight = 0;
  std::int64_t dead = 0;
};
std::vector<UnknownTargetWork> unknownTargets(Journal& reader, const std::vector<std::string>& configured);

// --- the console's reads (lib/console) --------------------------------------
// Reads take a read-only connection; every list is keyset-paginated (a
// hundred thousand dead letters page as fast as ten): never OFFSET, never all.

struct DeadLetterQuery {
  std::optional<std::string> target;
  std::optional<std::string> reason;     // rejected | max_attempts | max_age
  std::optional<std::int64_t> since_ms;  // died at or after
  std::optional<std::int64_t> until_ms;  // died before
};

// A position in the newest-first order (died_at DESC, id DESC).
struct DeadLetterCursor {
  std::string died_at;
  std::int64_t id = 0;
};

struct DeadLetterPage {
  std::vector<DeadLetter> letters;  // newest first
  bool has_newer = false;           // rows before the first one
  bool has_older = false;           // rows after the last one
};

// `limit` rows older than `older_than`, or newer than `newer_than`, or the
// newest when neither is given.
DeadLetterPage pageDeadLetters(Journal& reader, const DeadLetterQuery& query,
                               const std::optional<DeadLetterCursor>& older_than,
                               const std::optional<DeadLetterCursor>& newer_than, int limit);
std::int64_t countDeadLetters(Journal& reader, const DeadLetterQuery& query);
// Ids of the matching dead letters whose delivery is still dead, oldest first.
std::vector<std::int64_t> deadLetterIdsMatching(Journal& reader, const DeadLetterQuery& query);
std::optional<std::int64_t> deliveryOfDeadLetter(Journal& reader, std::int64_t dead_letter_id);

// The response excerpt of each delivery's last attempt (what the target answered).
std::vector<std::pair<std::int64_t, std::string>> lastResponses(Journal& reader,
                                                                const std::vector<std::int64_t>& delivery_ids);

struct AttemptDetail {
  AttemptRow row;
  std::string request_headers;  // JSON object, configured header values already masked
};

// One delivery whole: its row, its batch, every attempt, and its dead letter
// while it has one (a replayed letter leaves the table once delivered).
struct DeliveryDetail {
  std::int64_t id = 0;
  std::int64_t batch_id = 0;
  std::optional<std::int64_t> event_seq;
  std::string target;
  DeliveryState state = DeliveryState::Pending;
  std::int64_t attempts_spent = 0;
  std::string created_at;
  std::string due_at;
  std::string updated_at;
  std::optional<std::int64_t> last_status;
  std::optional<std::string> last_error;
  std::string kind;
  std::string received_at;
  std::string content_type;
  std::string payload;  // the batch as received
  std::optional<DeadLetter> dead_letter;
  std::vector<AttemptDetail> attempts;
};
std::optional<DeliveryDetail> deliveryDetail(Journal& reader, std::int64_t delivery_id);

// The current state of each delivery in `ids` that still exists.
std::vector<std::pair<std::int64_t, DeliveryState>> deliveryStates(Journal& reader,
                                                                   const std::vector<std::int64_t>& ids);

// What the overview shows per target besides the charts; each figure an index seek.
struct TargetQueue {
  std::string target;
  std::int64_t pending = 0;  // pending + retry_wait
  std::int64_t in_flight = 0;
  std::int64_t dead = 0;
  std::optional<std::string> oldest_pending_at;
  std::string circuit = "closed";
  std::int64_t consecutive_failures = 0;
  std::optional<std::string> last_error;
  std::optional<std::string> last_error_at;
  std::optional<std::string> last_success_at;
};
std::vector<TargetQueue> targetQueues(Journal& reader, const std::vector<std::string>& targets);

// Attempts per target in `buckets` consecutive buckets of `bucket_ms` starting
// at `since_ms` (index attempts_started_at): delivered, and every other outcome
// (retry, dead, probe failed) as failed.
struct ActivityBucket {
  std::int64_t delivered = 0;
  std::int64_t failed = 0;
};
std::vector<std::pair<std::string, std::vector<ActivityBucket>>> attemptActivity(Journal& reader, std::int64_t since_ms,
                                                                                 std::int64_t bucket_ms, int buckets);

// Batches received since `since_ms`: an index-only count (batches_received_events);
// the events would need each batch's row, 2 KB bodies and all.
std::int64_t batchesSince(Journal& reader, std::int64_t since_ms);

}  // namespace mews::journal
