#include "journal/queue.h"

#include <fmt/format.h>

#include "common/clock.h"

namespace mews::journal {

std::string_view stateName(DeliveryState state) {
  switch (state) {
    case DeliveryState::Pending:
      return "pending";
    case DeliveryState::InFlight:
      return "in_flight";
    case DeliveryState::RetryWait:
      return "retry_wait";
    case DeliveryState::Delivered:
      return "delivered";
    case DeliveryState::Dead:
      break;
  }
  return "dead";
}

DeliveryState stateNamed(std::string_view name) {
  for (const auto state : {DeliveryState::Pending, DeliveryState::InFlight, DeliveryState::RetryWait,
                           DeliveryState::Delivered, DeliveryState::Dead})
    if (stateName(state) == name) return state;
  throw std::invalid_argument(fmt::format("no delivery state is named '{}'", name));
}

std::string sqlStates(std::initializer_list<DeliveryState> states) {
  std::string list;
  for (const auto state : states) list += fmt::format("{}'{}'", list.empty() ? "" : ", ", stateName(state));
  return "(" + list + ")";
}

std::string_view outcomeName(AttemptOutcome outcome) {
  switch (outcome) {
    case AttemptOutcome::Delivered:
      return "delivered";
    case AttemptOutcome::Retry:
      return "retry";
    case AttemptOutcome::Dead:
      return "dead";
    case AttemptOutcome::ProbeFailed:
      break;
  }
  return "probe_failed";
}

std::string_view deadReasonName(DeadReason reason) {
  switch (reason) {
    case DeadReason::Rejected:
      return "rejected";
    case DeadReason::MaxAttempts:
      return "max_attempts";
    case DeadReason::MaxAge:
      break;
  }
  return "max_age";
}

namespace {

using enum DeliveryState;

std::string iso(std::int64_t ms) {
  return formatIsoMillis(ms);
}

std::int64_t msOf(const std::string& text) {
  return parseIsoMillis(text).value_or(0);
}

// The state a recorded attempt moves its row to.
DeliveryState stateAfter(AttemptOutcome outcome) {
  switch (outcome) {
    case AttemptOutcome::Delivered:
      return Delivered;
    case AttemptOutcome::Retry:
      return RetryWait;
    case AttemptOutcome::ProbeFailed:
      return Pending;
    case AttemptOutcome::Dead:
      break;
  }
  return Dead;
}

// The event types of a dead letter of `delivery_id`, read from its stored batch by `types`.
std::string storedEventTypes(Journal& journal, std::int64_t delivery_id, const DeadLetterTypes& types) {
  if (!types) return {};
  Statement& read = journal.db().cached(
      "SELECT b.body, d.event_seq FROM deliveries d JOIN batches b ON b.id = d.batch_id WHERE d.id = ?");
  const ResetOnExit reset(read);
  read.bind(1, delivery_id);
  if (!read.step()) return {};
  return types(read.columnText(0),
               read.columnIsNull(1) ? std::nullopt : std::optional<std::int64_t>(read.columnInt(1)));
}

// The dead letter of a delivery that was just moved to dead.
void insertDeadLetter(Journal& journal, std::int64_t delivery_id, std::string_view reason, std::int64_t now_ms,
                      std::string_view event_types) {
  Connection& db = journal.db();
  db.cached(
        "INSERT INTO dead_letters (delivery_id, batch_id, target, event_types, attempts, last_status, last_error,"
        " reason, received_at, died_at)"
        " SELECT d.id, d.batch_id, d.target, ?4, d.attempts, d.last_status, d.last_error, ?1, b.received_at, ?2"
        " FROM deliveries d JOIN batches b ON b.id = d.batch_id WHERE d.id = ?3"
        " ON CONFLICT (delivery_id) DO UPDATE SET attempts = excluded.attempts,"
        "  last_status = excluded.last_status, last_error = excluded.last_error, reason = excluded.reason,"
        "  died_at = excluded.died_at")
      .bind(1, reason)
      .bind(2, iso(now_ms))
      .bind(3, delivery_id)
      .bind(4, event_types)
      .run();
}

}  // namespace

std::vector<DueDelivery> selectDue(Journal& reader, const std::string& target, std::int64_t now_ms, int limit) {
  static const std::string sql = fmt::format(
      "SELECT id, batch_id, event_seq, attempts, age_from, due_at FROM deliveries"
      " WHERE target = ? AND state IN {} AND due_at <= ? ORDER BY due_at, id LIMIT ?",
      sqlStates({Pending, RetryWait}));
  Statement& select = reader.db().cached(sql);
  const ResetOnExit reset(select);
  select.bind(1, target).bind(2, iso(now_ms)).bind(3, static_cast<std::int64_t>(limit));
  std::vector<DueDelivery> due;
  while (select.step()) {
    DueDelivery item;
    item.id = select.columnInt(0);
    item.batch_id = select.columnInt(1);
    if (!select.columnIsNull(2)) item.event_seq = select.columnInt(2);
    item.target = target;
    item.attempts = static_cast<int>(select.columnInt(3));
    item.age_from_ms = msOf(select.columnText(4));
    item.due_ms = msOf(select.columnText(5));
    due.push_back(std::move(item));
  }
  return due;
}

std::optional<std::int64_t> nextDueMs(Journal& reader, const std::string& target) {
  static const std::string sql = fmt::format("SELECT min(due_at) FROM deliveries WHERE target = ? AND state IN {}",
                                             sqlStates({Pending, RetryWait}));
  Statement& select = reader.db().cached(sql);
  const ResetOnExit reset(select);
  select.bind(1, target);
  if (!select.step() || select.columnIsNull(0)) return std::nullopt;
  return msOf(select.columnText(0));
}

StoredBatch loadBatch(Journal& reader, std::int64_t batch_id) {
  Statement& select = reader.db().cached("SELECT kind, body FROM batches WHERE id = ?");
  const ResetOnExit reset(select);
  select.bind(1, batch_id);
  if (!select.step()) throw std::runtime_error("batch " + std::to_string(batch_id) + " is not in the journal");
  return {kindFromName(select.columnText(0)), select.columnText(1)};
}

namespace {

// The fence (journal/leases.h): the row's claim must be the epoch of the lease
// the relay holds for the row's target. PostgreSQL only (fenced journals).
constexpr const char* kClaimIsMine =
    " AND claim = (SELECT epoch FROM target_leases l WHERE l.target = deliveries.target AND l.owner = ?)";

}  // namespace

bool claimDelivery(Journal& journal, std::int64_t delivery_id, std::int64_t now_ms,
                   std::optional<std::int64_t>* epoch) {
  static const std::string sql =
      fmt::format("UPDATE deliveries SET state = {}, updated_at = ? WHERE id = ? AND state IN {}",
                  sqlStates({InFlight}), sqlStates({Pending, RetryWait}));
  // Fenced: only under an unexpired lease of the row's target, stamped with its
  // epoch. The lease row is share-locked until this transaction ends, so that
  // another relay's acquisition (which releases the target's in_flight rows)
  // waits for this claim's COMMIT and then sees it: a claim can never land
  // after a takeover, in_flight under an epoch nobody holds.
  static const std::string fenced = fmt::format(
      "WITH l AS (SELECT target, epoch FROM target_leases WHERE owner = ?3 AND expires_at > clock_timestamp()"
      " FOR SHARE)"
      " UPDATE deliveries SET state = {}, updated_at = ?1, claim = l.epoch FROM l"
      " WHERE deliveries.id = ?2 AND deliveries.state IN {} AND l.target = deliveries.target RETURNING l.epoch",
      sqlStates({InFlight}), sqlStates({Pending, RetryWait}));
  const std::string& owner = journal.fenceOwner();
  if (owner.empty()) {
    journal.db().cached(sql).bind(1, iso(now_ms)).bind(2, delivery_id).run();
    return journal.db().changes() == 1;
  }
  Statement& update = journal.db().cached(fenced);
  const ResetOnExit reset(update);
  update.bind(1, iso(now_ms)).bind(2, delivery_id).bind(3, owner);
  if (!update.step()) return false;
  if (epoch) *epoch = update.columnInt(0);
  return true;
}

int releaseInFlight(Journal& journal, std::int64_t now_ms, const std::vector<std::int64_t>& ids,
                    std::optional<std::int64_t> claim) {
  static const std::string release_all = fmt::format(
      "UPDATE deliveries SET state = {}, due_at = CASE WHEN age_from < due_at THEN age_from ELSE due_at END, "
      "updated_at = ? WHERE state = {}",
      sqlStates({Pending}), sqlStates({InFlight}));
  static const std::string release_one = release_all + " AND id = ?";
  static const std::string fenced_all = release_all + kClaimIsMine;
  static const std::string fenced_one = release_one + kClaimIsMine;
  static const std::string fenced_exact = fenced_one + " AND claim = ?";
  const std::string& owner = journal.fenceOwner();
  if (ids.empty()) {
    Statement& update = journal.db().cached(owner.empty() ? release_all : fenced_all);
    update.bind(1, iso(now_ms));
    if (!owner.empty()) update.bind(2, owner);
    update.run();
    return journal.db().changes();
  }
  int released = 0;
  Statement& update = journal.db().cached(owner.empty() ? release_one : claim ? fenced_exact : fenced_one);
  for (const auto id : ids) {
    update.bind(1, iso(now_ms)).bind(2, id);
    if (!owner.empty()) update.bind(3, owner);
    if (!owner.empty() && claim) update.bind(4, *claim);
    update.run();
    released += journal.db().changes();
  }
  return released;
}

bool recordAttempt(Journal& journal, const AttemptRecord& record) {
  static const std::string move_row = fmt::format(
      "UPDATE deliveries SET state = ?, attempts = attempts + ?, due_at = coalesce(?, due_at),"
      " updated_at = ?, last_status = ?, last_error = ? WHERE id = ? AND state = {}",
      sqlStates({InFlight}));
  static const std::string fenced_move_row = move_row + kClaimIsMine;
  static const std::string fenced_exact = fenced_move_row + " AND claim = ?";
  Connection& db = journal.db();
  const std::string& owner = journal.fenceOwner();
  const std::optional<std::string> error = record.error.empty() ? std::nullopt : std::optional(record.error);
  Statement& update = db.cached(owner.empty() ? move_row : record.claim ? fenced_exact : fenced_move_row);
  update.bind(1, stateName(stateAfter(record.outcome)))
      .bind(2, static_cast<std::int64_t>(record.spends_attempt ? 1 : 0));
  if (record.outcome == AttemptOutcome::Retry || record.outcome == AttemptOutcome::ProbeFailed)
    update.bind(3, iso(record.next_due_ms));
  else
    update.bindNull(3);
  update.bind(4, iso(record.now_ms));
  if (record.status)
    update.bind(5, static_cast<std::int64_t>(*record.status));
  else
    update.bindNull(5);
  update.bindOptional(6, error).bind(7, record.delivery_id);
  if (!owner.empty()) update.bind(8, owner);
  if (!owner.empty() && record.claim) update.bind(9, *record.claim);
  update.run();
  if (db.changes() != 1) return false;

  Statement& insert = db.cached(
      "INSERT INTO attempts (delivery_id, started_at, duration_ms, status, error, response_excerpt,"
      " outcome, request_headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  insert.bind(1, record.delivery_id).bind(2, iso(record.started_ms)).bind(3, record.duration_ms);
  if (record.status)
    insert.bind(4, static_cast<std::int64_t>(*record.status));
  else
    insert.bindNull(4);
  insert.bindOptional(5, error)
      .bind(6, record.response_excerpt)
      .bind(7, outcomeName(record.outcome))
      .bind(8, record.request_headers_json)
      .run();

  if (record.outcome == AttemptOutcome::Dead)
    insertDeadLetter(journal, record.delivery_id, deadReasonName(record.dead_reason), record.now_ms,
                     record.dead_letter_event_types);
  if (record.outcome == AttemptOutcome::Delivered)
    // A replayed dead letter leaves the table once delivered; its attempts stay.
    db.cached("DELETE FROM dead_letters WHERE delivery_id = ?").bind(1, record.delivery_id).run();
  return true;
}

int expireOld(Journal& journal, const std::string& target, const DeadLetterTypes& dead_letter_types,
              std::int64_t age_cutoff_ms, std::int64_t now_ms, int limit) {
  static const std::string select_old =
      fmt::format("SELECT id FROM deliveries WHERE target = ? AND state IN {} AND age_from < ? LIMIT ?",
                  sqlStates({Pending, RetryWait}));
  static const std::string expire = fmt::format(
      "UPDATE deliveries SET state = {}, updated_at = ?,"
      " last_error = coalesce(last_error, 'not delivered within max_age') WHERE id = ? AND state IN {}",
      sqlStates({Dead}), sqlStates({Pending, RetryWait}));
  std::vector<std::int64_t> ids;
  {
    Statement select(journal.db(), select_old);
    select.bind(1, target).bind(2, iso(age_cutoff_ms)).bind(3, static_cast<std::int64_t>(limit));
    while (select.step()) ids.push_back(select.columnInt(0));
  }
  int expired = 0;
  for (const auto id : ids) {
    journal.db().cached(expire).bind(1, iso(now_ms)).bind(2, id).run();
    if (journal.db().changes() != 1) continue;
    insertDeadLetter(journal, id, deadReasonName(DeadReason::MaxAge), now_ms,
                     storedEventTypes(journal, id, dead_letter_types));
    ++expired;
  }
  return expired;
}

int requeueInReceiveOrder(Journal& journal, const std::string& target, std::int64_t now_ms) {
  static const std::string sql = fmt::format(
      "UPDATE deliveries SET due_at = CASE WHEN age_from < due_at THEN age_from ELSE due_at END, updated_at = ? WHERE "
      "target = ? AND state = {}",
      sqlStates({RetryWait}));
  journal.db().cached(sql).bind(1, iso(now_ms)).bind(2, target).run();
  return journal.db().changes();
}

void saveTargetState(Journal& journal, const TargetStateRecord& state) {
  const std::string now = iso(state.now_ms);
  journal.db()
      .cached(
          "INSERT INTO target_state (target, circuit, consecutive_failures, last_error, last_error_at,"
          " last_success_at, updated_at) VALUES (?1, ?2, ?3, ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?5 END,"
          " CASE WHEN ?6 = 1 THEN ?5 END, ?5)"
          " ON CONFLICT (target) DO UPDATE SET circuit = excluded.circuit,"
          " consecutive_failures = excluded.consecutive_failures,"
          " last_error = coalesce(excluded.last_error, target_state.last_error),"
          " last_error_at = coalesce(excluded.last_error_at, target_state.last_error_at),"
          " last_success_at = coalesce(excluded.last_success_at, target_state.last_success_at), updated_at = "
          "excluded.updated_at")
      .bind(1, state.target)
      .bind(2, state.circuit)
      .bind(3, static_cast<std::int64_t>(state.consecutive_failures))
      .bindOptional(4, state.last_error)
      .bind(5, now)
      .bind(6, static_cast<std::int64_t>(state.success ? 1 : 0))
      .run();
}

int pruneDelivered(Journal& journal, std::int64_t cutoff_ms, int limit) {
  // The state outside the subquery too: on PostgreSQL a replay from the CLI
  // (READ COMMITTED) may make a row pending while this waits for it, and the
  // new version is re-checked against the outer WHERE only.
  static const std::string delete_delivered = fmt::format(
      "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE state = {0} AND created_at < ? LIMIT ?)"
      " AND state = {0}",
      sqlStates({Delivered}));
  // Batches received before the cutoff with no delivery left that is not
  // delivered (a dead letter keeps its batch: it may be replayed).
  static const std::string delete_batches = fmt::format(
      "DELETE FROM batches WHERE id IN (SELECT b.id FROM batches b WHERE b.received_at < ?"
      " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.batch_id = b.id AND d.state != {})"
      " ORDER BY b.id LIMIT ?)",
      sqlStates({Delivered}));
  Connection& db = journal.db();
  db.prepare(delete_delivered).bind(1, iso(cutoff_ms)).bind(2, static_cast<std::int64_t>(limit)).run();
  const int deliveries = db.changes();
  db.prepare(delete_batches).bind(1, iso(cutoff_ms)).bind(2, static_cast<std::int64_t>(limit)).run();
  return deliveries + db.changes();
}

}  // namespace mews::journal
