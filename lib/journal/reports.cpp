#include "journal/reports.h"

#include <fmt/format.h>

#include <algorithm>

#include "journal/migrations.h"
#include "journal/operator_sql.h"
#include "journal/queue.h"

namespace mews::journal {
namespace {

using enum DeliveryState;
using detail::bindWhere;
using detail::iso;
using detail::Where;
using detail::whereFor;

std::optional<std::int64_t> optionalInt(const Statement& statement, int column) {
  if (statement.columnIsNull(column)) return std::nullopt;
  return statement.columnInt(column);
}

DeadLetter readLetter(const Statement& row) {
  DeadLetter letter;
  letter.id = row.columnInt(0);
  letter.delivery_id = row.columnInt(1);
  letter.batch_id = row.columnInt(2);
  letter.target = row.columnText(3);
  letter.event_types = row.columnText(4);
  letter.attempts = row.columnInt(5);
  letter.last_status = optionalInt(row, 6);
  letter.last_error = row.columnOptionalText(7);
  letter.reason = row.columnText(8);
  letter.received_at = row.columnText(9);
  letter.died_at = row.columnText(10);
  letter.state = stateNamed(row.columnText(11));
  return letter;
}

// Every attempt of a delivery, oldest first.
std::vector<AttemptDetail> attemptsOf(Journal& reader, std::int64_t delivery_id) {
  Statement select(reader.db(),
                   "SELECT started_at, duration_ms, status, error, outcome, coalesce(response_excerpt, ''),"
                   " coalesce(request_headers, '{}') FROM attempts WHERE delivery_id = ? ORDER BY id");
  select.bind(1, delivery_id);
  std::vector<AttemptDetail> attempts;
  while (select.step())
    attempts.push_back({{select.columnText(0), select.columnInt(1), optionalInt(select, 2),
                         select.columnOptionalText(3), select.columnText(4), select.columnText(5)},
                        select.columnText(6)});
  return attempts;
}

const std::string& letterColumns() {
  static const std::string sql = fmt::format(
      "SELECT l.id, l.delivery_id, l.batch_id, l.target, l.event_types, l.attempts, l.last_status, l.last_error,"
      " l.reason, l.received_at, l.died_at, coalesce(d.state, '{}')"
      " FROM dead_letters l LEFT JOIN deliveries d ON d.id = l.delivery_id",
      stateName(Dead));
  return sql;
}

constexpr const char* kOlderThan = " AND l.died_at <= ? AND (l.died_at < ? OR l.id < ?)";
constexpr const char* kNewerThan = " AND l.died_at >= ? AND (l.died_at > ? OR l.id > ?)";

int bindCursor(Statement& statement, int index, const DeadLetterCursor& cursor) {
  statement.bind(index, cursor.died_at).bind(index + 1, cursor.died_at).bind(index + 2, cursor.id);
  return index + 3;
}

bool anyBeyond(Journal& reader, const Where& where, const DeadLetterCursor& cursor, bool newer) {
  Statement exists(reader.db(),
                   fmt::format("SELECT 1 FROM dead_letters l{}{} LIMIT 1", where.sql, newer ? kNewerThan : kOlderThan));
  bindCursor(exists, bindWhere(exists, where), cursor);
  return exists.step();
}

}  // namespace

std::vector<TargetStatus> targetStatus(Journal& reader, const std::vector<std::string>& targets, std::int64_t now_ms) {
  std::vector<TargetStatus> out;
  static const std::string sql = fmt::format(
      "SELECT"
      " (SELECT count(*) FROM deliveries WHERE target = ?1 AND state IN {}),"
      " (SELECT count(*) FROM deliveries WHERE target = ?1 AND state = {}),"
      " (SELECT count(*) FROM deliveries WHERE target = ?1 AND state = {} AND updated_at >= ?2),"
      " (SELECT count(*) FROM deliveries WHERE target = ?1 AND state = {}),"
      " (SELECT min(created_at) FROM deliveries WHERE target = ?1 AND state IN {}),"
      " (SELECT circuit FROM target_state WHERE target = ?1),"
      " (SELECT last_error FROM target_state WHERE target = ?1)",
      sqlStates({Pending, RetryWait}), sqlStates({InFlight}), sqlStates({Delivered}), sqlStates({Dead}),
      sqlStates({Pending, RetryWait, InFlight}));
  Statement counts(reader.db(), sql);
  for (const auto& target : targets) {
    counts.bind(1, target).bind(2, iso(now_ms - 86'400'000));
    if (!counts.step()) continue;
    TargetStatus status;
    status.target = target;
    status.pending = counts.columnInt(0);
    status.in_flight = counts.columnInt(1);
    status.delivered_24h = counts.columnInt(2);
    status.dead = counts.columnInt(3);
    status.oldest_pending_at = counts.columnOptionalText(4);
    status.circuit = counts.columnOptionalText(5).value_or("closed");
    status.last_error = counts.columnOptionalText(6);
    counts.reset();
    out.push_back(std::move(status));
  }
  return out;
}
JournalTotals journalTotals(Journal& reader) {
  JournalTotals totals;
  totals.batches = reader.count("batches");
  // A sum over the covering index batches_received_events: the events are
  // not rows (migrations/0005_lean_ack.sql).
  totals.events = reader.db().queryInt("SELECT coalesce(sum(event_count), 0) FROM batches");
  totals.deliveries = reader.count("deliveries");
  totals.dead_letters = reader.count("dead_letters");
  totals.unrouted_batches = reader.db().queryInt("SELECT count(*) FROM batches WHERE unrouted = 1");
  totals.schema_version = schemaVersion(reader.db());
  return totals;
}
std::vector<DeadLetter> listDeadLetters(Journal& reader, const DeadLetterFilter& filter) {
  const Where where = whereFor(filter);
  // No LIMIT for all: PostgreSQL refuses SQLite's LIMIT -1.
  Statement select(reader.db(), fmt::format("{}{} ORDER BY l.died_at DESC, l.id DESC{}", letterColumns(), where.sql,
                                            filter.limit < 0 ? "" : " LIMIT ?"));
  int index = 1;
  for (const auto& value : where.binds) select.bind(index++, value);
  if (filter.limit >= 0) select.bind(index, static_cast<std::int64_t>(filter.limit));
  std::vector<DeadLetter> letters;
  while (select.step()) letters.push_back(readLetter(select));
  return letters;
}
std::optional<DeadLetterDetail> showDeadLetter(Journal& reader, std::int64_t id) {
  Statement select(reader.db(), fmt::format("{} WHERE l.id = ?", letterColumns()));
  select.bind(1, id);
  if (!select.step()) return std::nullopt;
  DeadLetterDetail detail;
  detail.letter = readLetter(select);
  Statement batch(reader.db(),
                  "SELECT b.kind, b.body, d.event_seq FROM batches b JOIN deliveries d ON d.batch_id = b.id"
                  " WHERE d.id = ?");
  batch.bind(1, detail.letter.delivery_id);
  if (batch.step()) {
    detail.kind = batch.columnText(0);
    detail.payload = batch.columnText(1);
    detail.event_seq = optionalInt(batch, 2);
  }
  for (auto& attempt : attemptsOf(reader, detail.letter.delivery_id)) {
    detail.attempts.push_back(std::move(attempt.row));
    detail.headers_sent = std::move(attempt.request_headers);  // the last attempt's
  }
  return detail;
}
std::vector<std::int64_t> unknownDeadLetters(Journal& journal, const std::vector<std::int64_t>& ids) {
  std::vector<std::int64_t> unknown;
  Statement select(journal.db(), "SELECT 1 FROM dead_letters WHERE id = ?");
  for (const auto id : ids) {
    select.bind(1, id);
    if (!select.step()) unknown.push_back(id);
    select.reset();
  }
  return unknown;
}
std::vector<UnknownTargetWork> unknownTargets(Journal& reader, const std::vector<std::string>& configured) {
  // The distinct targets one index seek at a time (deliveries_queue leads with
  // target): a handful of targets, however many deliveries.
  Statement next(reader.db(), "SELECT min(target) FROM deliveries WHERE target > ?");
  static const std::string sql = fmt::format(
      "SELECT"
      " (SELECT count(*) FROM deliveries WHERE target = ?1 AND state IN {}),"
      " (SELECT count(*) FROM deliveries WHERE target = ?1 AND state = {}),"
      " (SELECT count(*) FROM deliveries WHERE target = ?1 AND state = {})",
      sqlStates({Pending, RetryWait}), sqlStates({InFlight}), sqlStates({Dead}));
  Statement counts(reader.db(), sql);
  std::vector<UnknownTargetWork> found;
  std::string after;
  for (;;) {
    next.bind(1, after);
    if (!next.step() || next.columnIsNull(0)) break;
    after = next.columnText(0);
    next.reset();
    if (std::find(configured.begin(), configured.end(), after) != configured.end()) continue;
    counts.bind(1, after);
    if (counts.step()) {
      UnknownTargetWork work{after, counts.columnInt(0), counts.columnInt(1), counts.columnInt(2)};
      if (work.waiting + work.in_flight + work.dead > 0) found.push_back(std::move(work));
    }
    counts.reset();
  }
  return found;
}
DeadLetterPage pageDeadLetters(Journal& reader, const DeadLetterQuery& query,
                               const std::optional<DeadLetterCursor>& older_than,
                               const std::optional<DeadLetterCursor>& newer_than, int limit) {
  const Where where = whereFor(query);
  const bool backwards = newer_than.has_value() && !older_than.has_value();
  std::string sql = std::string(letterColumns()) + where.sql;
  if (older_than) sql += kOlderThan;
  if (backwards) sql += kNewerThan;
  sql += backwards ? " ORDER BY l.died_at ASC, l.id ASC LIMIT ?" : " ORDER BY l.died_at DESC, l.id DESC LIMIT ?";
  Statement select(reader.db(), sql);
  int index = bindWhere(select, where);
  if (older_than) index = bindCursor(select, index, *older_than);
  if (backwards) index = bindCursor(select, index, *newer_than);
  select.bind(index, static_cast<std::int64_t>(limit) + 1);
  DeadLetterPage page;
  while (select.step()) page.letters.push_back(readLetter(select));
  const bool more = page.letters.size() > static_cast<std::size_t>(limit);
  if (more) page.letters.pop_back();
  if (backwards) std::reverse(page.letters.begin(), page.letters.end());
  if (page.letters.empty()) return page;
  const DeadLetterCursor first{page.letters.front().died_at, page.letters.front().id};
  const DeadLetterCursor last{page.letters.back().died_at, page.letters.back().id};
  page.has_older = backwards ? anyBeyond(reader, where, last, false) : more;
  page.has_newer = backwards ? more : (older_than.has_value() && anyBeyond(reader, where, first, true));
  return page;
}
std::int64_t countDeadLetters(Journal& reader, const DeadLetterQuery& query) {
  const Where where = whereFor(query);
  Statement count(reader.db(), "SELECT count(*) FROM dead_letters l" + where.sql);
  bindWhere(count, where);
  return count.step() ? count.columnInt(0) : 0;
}
std::vector<std::int64_t> deadLetterIdsMatching(Journal& reader, const DeadLetterQuery& query) {
  const Where where = whereFor(query);
  Statement select(reader.db(), "SELECT l.id FROM dead_letters l JOIN deliveries d ON d.id = l.delivery_id" +
                                    where.sql + " AND d.state = " + sqlStates({Dead}) + " ORDER BY l.id");
  bindWhere(select, where);
  std::vector<std::int64_t> ids;
  while (select.step()) ids.push_back(select.columnInt(0));
  return ids;
}
std::optional<std::int64_t> deliveryOfDeadLetter(Journal& reader, std::int64_t dead_letter_id) {
  Statement select(reader.db(), "SELECT delivery_id FROM dead_letters WHERE id = ?");
  select.bind(1, dead_letter_id);
  if (!select.step()) return std::nullopt;
  return select.columnInt(0);
}
std::vector<std::pair<std::int64_t, std::string>> lastResponses(Journal& reader,
                                                                const std::vector<std::int64_t>& delivery_ids) {
  // The newest attempt of a delivery: the largest id in its attempts_delivery range.
  Statement select(reader.db(),
                   "SELECT coalesce(response_excerpt, '') FROM attempts WHERE id ="
                   " (SELECT max(id) FROM attempts WHERE delivery_id = ?)");
  std::vector<std::pair<std::int64_t, std::string>> out;
  for (const auto id : delivery_ids) {
    select.bind(1, id);
    if (select.step()) out.emplace_back(id, select.columnText(0));
    select.reset();
  }
  return out;
}
std::optional<DeliveryDetail> deliveryDetail(Journal& reader, std::int64_t delivery_id) {
  Statement select(reader.db(),
                   "SELECT d.id, d.batch_id, d.event_seq, d.target, d.state, d.attempts, d.created_at, d.due_at,"
                   " d.updated_at, d.last_status, d.last_error, b.kind, b.received_at, coalesce(b.content_type, ''),"
                   " b.body FROM deliveries d JOIN batches b ON b.id = d.batch_id WHERE d.id = ?");
  select.bind(1, delivery_id);
  if (!select.step()) return std::nullopt;
  DeliveryDetail detail;
  detail.id = select.columnInt(0);
  detail.batch_id = select.columnInt(1);
  detail.event_seq = optionalInt(select, 2);
  detail.target = select.columnText(3);
  detail.state = stateNamed(select.columnText(4));
  detail.attempts_spent = select.columnInt(5);
  detail.created_at = select.columnText(6);
  detail.due_at = select.columnText(7);
  detail.updated_at = select.columnText(8);
  detail.last_status = optionalInt(select, 9);
  detail.last_error = select.columnOptionalText(10);
  detail.kind = select.columnText(11);
  detail.received_at = select.columnText(12);
  detail.content_type = select.columnText(13);
  detail.payload = select.columnText(14);

  Statement letter(reader.db(), std::string(letterColumns()) + " WHERE l.delivery_id = ?");
  letter.bind(1, delivery_id);
  if (letter.step()) detail.dead_letter = readLetter(letter);

  detail.attempts = attemptsOf(reader, delivery_id);
  return detail;
}
std::vector<std::pair<std::int64_t, DeliveryState>> deliveryStates(Journal& reader,
                                                                   const std::vector<std::int64_t>& ids) {
  constexpr std::size_t kChunk = 500;
  std::vector<std::pair<std::int64_t, DeliveryState>> states;
  for (std::size_t start = 0; start < ids.size(); start += kChunk) {
    const std::size_t count = std::min(kChunk, ids.size() - start);
    std::string marks;
    for (std::size_t i = 0; i < count; ++i) marks += i ? ",?" : "?";
    Statement select(reader.db(), fmt::format("SELECT id, state FROM deliveries WHERE id IN ({})", marks));
    for (std::size_t i = 0; i < count; ++i) select.bind(static_cast<int>(i) + 1, ids[start + i]);
    while (select.step()) states.emplace_back(select.columnInt(0), stateNamed(select.columnText(1)));
  }
  return states;
}
std::vector<TargetQueue> targetQueues(Journal& reader, const std::vector<std::string>& targets) {
  // Counts are ranges of deliveries_queue (target, state, id); the oldest
  // waiting row is the smallest id of three ranges (ids grow with created_at).
  Statement select(reader.db(),
                   fmt::format("SELECT"
                               " (SELECT count(*) FROM deliveries WHERE target = ?1 AND state = {0})"
                               " + (SELECT count(*) FROM deliveries WHERE target = ?1 AND state = {1}),"
                               " (SELECT count(*) FROM deliveries WHERE target = ?1 AND state = {2}),"
                               " (SELECT count(*) FROM deliveries WHERE target = ?1 AND state = {3}),"
                               " (SELECT created_at FROM deliveries WHERE id = (SELECT min(m) FROM ("
                               "   SELECT min(id) AS m FROM deliveries WHERE target = ?1 AND state = {0}"
                               "   UNION ALL SELECT min(id) FROM deliveries WHERE target = ?1 AND state = {1}"
                               "   UNION ALL SELECT min(id) FROM deliveries WHERE target = ?1 AND state = {2}) AS waiting)),",
                               sqlStates({Pending}), sqlStates({RetryWait}), sqlStates({InFlight}), sqlStates({Dead})) +
                       " t.circuit, t.consecutive_failures, t.last_error, t.last_error_at, t.last_success_at"
                       " FROM (SELECT 1) AS one LEFT JOIN target_state t ON t.target = ?1");
  std::vector<TargetQueue> out;
  for (const auto& target : targets) {
    select.bind(1, target);
    if (select.step()) {
      TargetQueue queue;
      queue.target = target;
      queue.pending = select.columnInt(0);
      queue.in_flight = select.columnInt(1);
      queue.dead = select.columnInt(2);
      queue.oldest_pending_at = select.columnOptionalText(3);
      queue.circuit = select.columnOptionalText(4).value_or("closed");
      queue.consecutive_failures = select.columnIsNull(5) ? 0 : select.columnInt(5);
      queue.last_error = select.columnOptionalText(6);
      queue.last_error_at = select.columnOptionalText(7);
      queue.last_success_at = select.columnOptionalText(8);
      out.push_back(std::move(queue));
    }
    select.reset();
  }
  return out;
}
std::vector<std::pair<std::string, std::vector<ActivityBucket>>> attemptActivity(Journal& reader, std::int64_t since_ms,
                                                                                 std::int64_t bucket_ms, int buckets) {
  Statement select(reader.db(),
                   fmt::format("SELECT d.target, ({} * 1000 - ?2) / ?3,"
                               " CASE WHEN a.outcome = '{}' THEN 1 ELSE 0 END, count(*)"
                               " FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
                               " WHERE a.started_at >= ?1 GROUP BY 1, 2, 3",
                               reader.db().epochSeconds("a.started_at"), outcomeName(AttemptOutcome::Delivered)));
  select.bind(1, iso(since_ms)).bind(2, since_ms).bind(3, bucket_ms);
  std::vector<std::pair<std::string, std::vector<ActivityBucket>>> out;
  while (select.step()) {
    const std::string target = select.columnText(0);
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& entry) { return entry.first == target; });
    if (it == out.end()) {
      out.emplace_back(target, std::vector<ActivityBucket>(static_cast<std::size_t>(buckets)));
      it = out.end() - 1;
    }
    // A row stamped after now (a clock step) counts in the last bucket.
    const auto slot = std::clamp<std::int64_t>(select.columnInt(1), 0, buckets - 1);
    auto& bucket = it->second[static_cast<std::size_t>(slot)];
    (select.columnInt(2) != 0 ? bucket.delivered : bucket.failed) += select.columnInt(3);
  }
  return out;
}
std::int64_t batchesSince(Journal& reader, std::int64_t since_ms) {
  Statement select(reader.db(), "SELECT count(*) FROM batches WHERE received_at >= ?");
  select.bind(1, iso(since_ms));
  return select.step() ? select.columnInt(0) : 0;
}

}  // namespace mews::journal
