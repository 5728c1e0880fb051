#include "journal/moves.h"

#include <fmt/format.h>

#include <algorithm>

#include "journal/operator_sql.h"
#include "journal/queue.h"

namespace mews::journal {
namespace {

using enum DeliveryState;
using detail::bindWhere;
using detail::iso;
using detail::removedTargetWork;
using detail::Where;
using detail::whereFor;

std::int64_t requeue(Journal& journal, const std::vector<std::int64_t>& delivery_ids, std::int64_t now_ms) {
  static const std::string sql = fmt::format(
      "UPDATE deliveries SET state = {}, attempts = 0, due_at = ?1, age_from = ?1, updated_at = ?1"
      " WHERE id = ?2 AND state = {}",
      sqlStates({Pending}), sqlStates({Dead}));
  Statement update(journal.db(), sql);
  std::int64_t moved = 0;
  for (const auto id : delivery_ids) {
    update.bind(1, iso(now_ms)).bind(2, id).run();
    moved += journal.db().changes();
  }
  return moved;
}

}  // namespace

std::int64_t replayDeadLetters(Journal& journal, const std::vector<std::int64_t>& ids, std::int64_t now_ms,
                               bool dry_run) {
  std::vector<std::int64_t> deliveries;
  static const std::string sql = fmt::format(
      "SELECT l.delivery_id FROM dead_letters l JOIN deliveries d ON d.id = l.delivery_id WHERE l.id = ? AND d.state = "
      "{}",
      sqlStates({Dead}));
  Statement select(journal.db(), sql);
  for (const auto id : ids) {
    select.bind(1, id);
    if (select.step()) deliveries.push_back(select.columnInt(0));
    select.reset();
  }
  if (dry_run) return static_cast<std::int64_t>(deliveries.size());
  return requeue(journal, deliveries, now_ms);
}
std::int64_t replayReceived(Journal& journal, const std::string& target, std::int64_t since_ms,
                            std::optional<std::int64_t> until_ms, std::int64_t now_ms, bool dry_run) {
  static const std::string window = fmt::format(
      " FROM deliveries d JOIN batches b ON b.id = d.batch_id WHERE d.target = ?1 AND b.received_at >= ?2"
      " AND b.received_at < ?3 AND d.state != {}",
      sqlStates({InFlight}));
  // The state again outside the subquery: on PostgreSQL the CLI writes beside
  // the relay (READ COMMITTED), and a row the relay claimed meanwhile is
  // re-checked against the outer WHERE only (its new version is in_flight).
  static const std::string requeue_window = fmt::format(
      "UPDATE deliveries SET state = {}, attempts = 0, due_at = ?4, age_from = ?4, updated_at = ?4"
      " WHERE id IN (SELECT d.id{}) AND state != {}",
      sqlStates({Pending}), window, sqlStates({InFlight}));
  const std::string until = until_ms ? iso(*until_ms) : std::string("9999");
  if (dry_run) {
    Statement count(journal.db(), "SELECT count(*)" + window);
    count.bind(1, target).bind(2, iso(since_ms)).bind(3, until);
    return count.step() ? count.columnInt(0) : 0;
  }
  journal.db().prepare(requeue_window).bind(1, target).bind(2, iso(since_ms)).bind(3, until).bind(4, iso(now_ms)).run();
  return journal.db().changes();
}
std::int64_t retargetDeadLetters(Journal& journal, const std::vector<std::int64_t>& ids, const std::string& to,
                                 std::int64_t now_ms, bool dry_run) {
  static const std::string select_sql = fmt::format(
      "SELECT l.delivery_id FROM dead_letters l JOIN deliveries d ON d.id = l.delivery_id"
      " WHERE l.id = ? AND d.state = {}",
      sqlStates({Dead}));
  static const std::string move_sql = fmt::format(
      "UPDATE deliveries SET target = ?1, state = {}, attempts = 0, due_at = ?2, age_from = ?2,"
      " updated_at = ?2 WHERE id = ?3 AND state = {}",
      sqlStates({Pending}), sqlStates({Dead}));
  Statement select(journal.db(), select_sql);
  Statement move(journal.db(), move_sql);
  Statement letter(journal.db(), "UPDATE dead_letters SET target = ?1 WHERE delivery_id = ?2");
  std::int64_t moved = 0;
  for (const auto id : ids) {
    select.bind(1, id);
    const bool dead = select.step();
    const std::int64_t delivery = dead ? select.columnInt(0) : 0;
    select.reset();
    if (!dead) continue;
    if (dry_run) {
      ++moved;
      continue;
    }
    move.bind(1, to).bind(2, iso(now_ms)).bind(3, delivery).run();
    if (journal.db().changes() == 0) continue;
    letter.bind(1, to).bind(2, delivery).run();
    ++moved;
  }
  return moved;
}
std::int64_t retargetWork(Journal& journal, const std::string& from, const std::string& to, std::int64_t now_ms,
                          bool dry_run) {
  const std::string& which = removedTargetWork();
  if (dry_run) {
    Statement count(journal.db(), "SELECT count(*)" + which);
    count.bind(1, from);
    return count.step() ? count.columnInt(0) : 0;
  }
  journal.db()
      .prepare("UPDATE dead_letters SET target = ?2 WHERE delivery_id IN (SELECT id" + which + ")")
      .bind(1, from)
      .bind(2, to)
      .run();
  journal.db()
      .prepare(fmt::format("UPDATE deliveries SET target = ?2, state = {}, attempts = 0, due_at = ?3, age_from = ?3,"
                           " updated_at = ?3 WHERE id IN (SELECT id{}) AND state IN {}",
                           sqlStates({Pending}), which, sqlStates({Pending, RetryWait, Dead})))
      .bind(1, from)
      .bind(2, to)
      .bind(3, iso(now_ms))
      .run();
  return journal.db().changes();
}
std::int64_t purgeTargetWork(Journal& journal, const std::string& from, bool dry_run) {
  const std::string& which = removedTargetWork();
  if (dry_run) {
    Statement count(journal.db(), "SELECT count(*)" + which);
    count.bind(1, from);
    return count.step() ? count.columnInt(0) : 0;
  }
  // Dead letters and attempts cascade with their deliveries.
  // The states outside the subquery too (see replayReceived): never a row claimed meanwhile.
  journal.db()
      .prepare(fmt::format("DELETE FROM deliveries WHERE id IN (SELECT id{}) AND state IN {}", which,
                           sqlStates({Pending, RetryWait, Dead})))
      .bind(1, from)
      .run();
  return journal.db().changes();
}
std::int64_t purgeDeadMatching(Journal& journal, const DeadLetterQuery& query, std::int64_t as_of_ms, bool dry_run) {
  Where where = whereFor(query);
  where.sql += " AND l.died_at <= ?";
  where.binds.push_back(iso(as_of_ms));
  Statement count(journal.db(), "SELECT count(*) FROM dead_letters l" + where.sql);
  bindWhere(count, where);
  const std::int64_t letters = count.step() ? count.columnInt(0) : 0;
  if (dry_run) return letters;
  // The dead deliveries go (their attempts and letters cascade); a letter
  // already replayed keeps its delivery, which is live work.
  Statement deliveries(journal.db(), "DELETE FROM deliveries WHERE state = " + sqlStates({Dead}) +
                                         " AND id IN (SELECT l.delivery_id FROM dead_letters l" + where.sql + ")");
  bindWhere(deliveries, where);
  deliveries.run();
  Statement rest(journal.db(),
                 "DELETE FROM dead_letters WHERE id IN (SELECT l.id FROM dead_letters l" + where.sql + ")");
  bindWhere(rest, where);
  rest.run();
  return letters;
}

}  // namespace mews::journal
