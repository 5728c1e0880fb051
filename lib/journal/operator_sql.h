// The SQL pieces the operator's read models (reports.h) and moves (moves.h)
// share: timestamps, the WHERE clause of a dead-letter filter or console
// query on dead_letters alias l, and which work of a removed target the
// operator may act on. Internal to lib/journal.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.h"
#include "journal/queue.h"
#include "journal/reports.h"

namespace mews::journal::detail {

inline std::string iso(std::int64_t ms) {
  return formatIsoMillis(ms);
}

// WHERE clause and binds for a dead-letter filter on table alias l.
struct Where {
  std::string sql = " WHERE 1 = 1";
  std::vector<std::string> binds;
};

inline Where whereFor(const DeadLetterFilter& filter) {
  Where where;
  if (filter.target) {
    where.sql += " AND l.target = ?";
    where.binds.push_back(*filter.target);
  }
  if (filter.since_ms) {
    where.sql += " AND l.died_at >= ?";
    where.binds.push_back(iso(*filter.since_ms));
  }
  if (filter.until_ms) {
    where.sql += " AND l.died_at < ?";
    where.binds.push_back(iso(*filter.until_ms));
  }
  return where;
}

// WHERE clause and binds for a console query on dead_letters alias l: the
// CLI's filter (target, time window) plus the reason.
inline Where whereFor(const DeadLetterQuery& query) {
  Where where = whereFor(DeadLetterFilter{query.target, query.since_ms, query.until_ms});
  if (query.reason) {
    where.sql += " AND l.reason = ?";
    where.binds.push_back(*query.reason);
  }
  return where;
}

// Binds the clause's values from index 1; returns the next free index.
inline int bindWhere(Statement& statement, const Where& where) {
  int index = 1;
  for (const auto& value : where.binds) statement.bind(index++, value);
  return index;
}

// The work of a removed target that replay --from and purge --from act on:
// waiting and dead, never in flight (a relay may be sending it).
inline const std::string& removedTargetWork() {
  static const std::string sql =
      fmt::format(" FROM deliveries WHERE target = ?1 AND state IN {}",
                  sqlStates({DeliveryState::Pending, DeliveryState::RetryWait, DeliveryState::Dead}));
  return sql;
}

}  // namespace mews::journal::detail
