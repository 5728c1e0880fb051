#include "journal/resends.h"

#include "common/clock.h"

namespace mews::journal {

void recordLateCommit(Journal& journal, std::int64_t batch_id, std::string_view body_sha256, std::int64_t answered_ms) {
  journal.db()
      .cached("INSERT INTO late_commits (batch_id, body_sha256, answered_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
      .bind(1, batch_id)
      .bind(2, body_sha256)
      .bind(3, formatIsoMillis(answered_ms))
      .run();
}

std::optional<std::int64_t> consumeLateCommit(Journal& journal, std::string_view body_sha256,
                                              const std::optional<std::string>& integration_id, std::string_view body,
                                              std::int64_t since_ms) {
  // IS NOT DISTINCT FROM, not SQLite's `IS ?`: PostgreSQL takes only NULL or
  // a boolean after IS, and refuses the whole statement otherwise.
  Statement consume(journal.db(),
                    "DELETE FROM late_commits WHERE batch_id = (SELECT b.id FROM late_commits l"
                    " JOIN batches b ON b.id = l.batch_id"
                    " WHERE l.body_sha256 = ?1 AND b.integration_id IS NOT DISTINCT FROM ?2 AND b.received_at >= ?3"
                    " AND b.body = ?4 ORDER BY b.id LIMIT 1) RETURNING batch_id");
  consume.bind(1, body_sha256).bindOptional(2, integration_id).bind(3, formatIsoMillis(since_ms)).bindBlob(4, body);
  if (!consume.step()) return std::nullopt;
  const std::int64_t batch_id = consume.columnInt(0);
  while (consume.step()) {
  }
  return batch_id;
}

std::vector<LateCommit> lateCommitsSince(Journal& reader, std::int64_t since_ms) {
  Statement select(reader.db(),
                   "SELECT l.body_sha256, b.received_at FROM late_commits l JOIN batches b ON b.id = l.batch_id"
                   " WHERE b.received_at >= ?");
  select.bind(1, formatIsoMillis(since_ms));
  std::vector<LateCommit> found;
  while (select.step())
    found.push_back({select.columnText(0), parseIsoMillis(select.columnText(1)).value_or(since_ms)});
  return found;
}

}  // namespace mews::journal
