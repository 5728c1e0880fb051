// The delivery queue: what a delivery row's state is, how it may change, and
// the SQL behind each change. The delivery engine, the operator's commands and
// the metrics page read and write the deliveries, attempts, dead_letters and
// target_state tables through this module, journal/moves.h and journal/reports.h only. Reads
// take a read-only Journal; writes run inside the writer's transaction
// (JournalWriter jobs).
//
// The life of one delivery (deliveries.state). Every arrow is one guarded
// UPDATE (`WHERE id = ? AND state = <from>`) applied by the journal's single
// writer: zero rows changed means someone else moved the row first, which is
// not an error.
//
//   (ingest: Journal::insertBatch)
//         |
//         v              claimDelivery
//      pending ---------------------------------> in_flight
//      retry_wait, once due ----------------------^   |
//                                                     | recordAttempt, as delivery/policy.h decides:
//        +------------------+---------------------+---+--------------------+
//        | Delivered        | Retry               | ProbeFailed            | Dead
//        v                  v                     v                        v
//    delivered          retry_wait             pending                  dead, + a dead_letters row:
//    (deleted by        (due at next_due_ms)   (the circuit is open:    rejected (a 4xx, a refused
//    pruneDelivered                            no attempt spent, its    redirect, a request that
//    after retention)                          place in receive order)  cannot be built) or max_attempts
//
//   The engine's other moves:
//    in_flight --releaseInFlight--> pending: at start-up (what a previous
//        process left), at stop (claimed but not sent, or an attempt abandoned),
//        and a claim held back because the circuit opened. Due at once, in
//        receive order; no attempt spent.
//    pending, retry_wait --expireOld--> dead: older than the target's max_age
//        (reason max_age).
//    retry_wait --requeueInReceiveOrder--> retry_wait, due at once in receive
//        order: the circuit opened, the probe paces them from here.
//
//   The operator's moves (journal/moves.h; through the serving relay's
//   writer, or the CLI's own connection when none runs):
//    dead --replayDeadLetters--> pending: `replay ID`, `replay --dead`; a fresh
//        attempt budget and max_age window, the same webhook-id.
//    any state but in_flight --replayReceived--> pending:
//        `replay --received-since T --target X`, delivered ones too.
//    dead --purgeDeadMatching--> deleted, with its dead letter: `dlq purge`.
//
// Several relays on one PostgreSQL journal (journal/leases.h): on the writer of
// a relay (Journal::fenceOwner() set), claimDelivery succeeds only under the
// relay's unexpired lease of the row's target and stamps the row with the
// lease's epoch; recordAttempt and releaseInFlight change a row only while
// that epoch is still the relay's. A relay that lost a lease changes nothing
// of that target's rows: its late record is dropped (returns false).
//
// No state or outcome is spelled anywhere else: SQL text is built once from
// stateName()/outcomeName() (as literals, so that the planner can use the
// partial index deliveries_ready on `state IN ('pending', 'retry_wait')`).
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "journal/journal.h"

namespace mews::journal {

enum class DeliveryState { Pending, InFlight, RetryWait, Delivered, Dead };
// The name stored in deliveries.state: pending, in_flight, retry_wait, delivered, dead.
std::string_view stateName(DeliveryState state);
// The state a deliveries.state value names. Throws std::invalid_argument for
// another text (the column's CHECK allows none).
DeliveryState stateNamed(std::string_view name);
// "('pending', 'retry_wait')": the states as an SQL list of literals, for SQL
// text built once.
std::string sqlStates(std::initializer_list<DeliveryState> states);

// What one recorded attempt came to (attempts.outcome, the log line, the
// metrics label): delivered, retry, dead, probe_failed.
enum class AttemptOutcome { Delivered, Retry, Dead, ProbeFailed };
inline constexpr std::size_t kAttemptOutcomeCount = 4;
std::string_view outcomeName(AttemptOutcome outcome);

// Why a delivery is in the dead letters (dead_letters.reason): rejected,
// max_attempts, max_age. `rejected` covers what no retry can fix: the target
// refused it (a 4xx other than 408/425/429, a redirect not followed) or no
// request could be built from the journaled batch (last_error says which).
enum class DeadReason { Rejected, MaxAttempts, MaxAge };
std::string_view deadReasonName(DeadReason reason);

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
// Fenced journals: `epoch`, when given, gets the lease epoch the row was claimed under.
bool claimDelivery(Journal& journal, std::int64_t delivery_id, std::int64_t now_ms,
                   std::optional<std::int64_t>* epoch = nullptr);
// in_flight -> pending for rows nobody is working on (start-up, shutdown, a
// claim held back by an opened circuit), due at once in receive order.
// Fenced journals: with `claim`, only rows claimed under exactly that epoch
// (an item claimed under an older lease of this relay is not this one's to
// release).
int releaseInFlight(Journal& journal, std::int64_t now_ms, const std::vector<std::int64_t>& ids = {},
                    std::optional<std::int64_t> claim = std::nullopt);

// The event types a dead letter names (dead_letters.event_types), from its
// stored batch: the one event's in event mode (`event_seq`), otherwise every
// distinct one the target's filter passes, comma-separated. Supplied by the
// delivery layer, which reads bodies (ingest/payload.h); the journal keeps no
// per-event rows. Empty (no function): the letter names none.
using DeadLetterTypes = std::function<std::string(std::string_view body, std::optional<std::int64_t> event_seq)>;

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
  // For outcome Dead: the event types its dead letter names, as
  // DeadLetterTypes would read them, named by the caller from the body it
  // built. Not read from the stored batch here: in event mode that is the
  // whole batch again for each of its events, on the writer thread.
  std::string dead_letter_event_types;
  std::int64_t now_ms = 0;
  // Fenced journals: the lease epoch the delivery was claimed under. The record
  // moves the row only while its claim is still exactly that, and that epoch
  // still this relay's: an attempt claimed under an older lease never
  // overwrites what a newer claim did.
  std::optional<std::int64_t> claim;
};

// Records the attempt and moves the row (guarded on in_flight): delivered,
// retry_wait at next_due_ms, pending again (probe failed), or dead with a
// dead_letters row. Returns false when the row was no longer in flight.
bool recordAttempt(Journal& journal, const AttemptRecord& record);

// Work older than max_age that is still waiting -> dead (reason max_age).
int expireOld(Journal& journal, const std::string& target, const DeadLetterTypes& dead_letter_types,
              std::int64_t age_cutoff_ms, std::int64_t now_ms, int limit);

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
