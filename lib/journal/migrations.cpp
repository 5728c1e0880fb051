#include "journal/migrations.h"

#include <fmt/format.h>

#include "common/clock.h"
#include "journal/sqlite.h"

namespace mews::journal {

int latestSchemaVersion() {
  const auto& all = embeddedMigrations();
  return all.empty() ? 0 : all.back().version;
}

int schemaVersion(Database& db) {
  return static_cast<int>(db.queryInt("PRAGMA user_version"));
}

int migrate(Database& db, const std::vector<Migration>& migrations) {
  const int latest = migrations.empty() ? 0 : migrations.back().version;
  int current = schemaVersion(db);
  if (current > latest)
    throw std::runtime_error(
        fmt::format("journal {} has schema version {}, newer than this binary's {}; run a newer mews-relay", db.path(),
                    current, latest));
  for (const auto& migration : migrations) {
    if (migration.version <= current) continue;
    Transaction transaction(db);
    db.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)");
    db.exec(migration.sql);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
        .bind(1, migration.version)
        .bind(2, migration.name)
        .bind(3, formatIsoMillis(SystemClock::instance().wallMillis()))
        .run();
    db.exec(fmt::format("PRAGMA user_version = {}", migration.version));
    transaction.commit();
    current = migration.version;
  }
  return current;
}

}  // namespace mews::journal
