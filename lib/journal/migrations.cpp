#include "journal/migrations.h"

#include <fmt/format.h>

#include <optional>
#include <string_view>

#include "common/clock.h"
#include "journal/sqlite.h"

namespace mews::journal {

namespace {

// pg_advisory_xact_lock's first key for migrations ("migr"); the second is
// the schema migrated.
constexpr std::int32_t kMigrationLock = 0x6d696772;

// A SQLite step that rebuilds a table (SQLite cannot alter a column's
// definition) starts with this line: foreign keys are off while it runs, or
// dropping the old table would cascade its deletes into the tables that refer
// to it, and PRAGMA foreign_keys cannot change inside a transaction.
constexpr std::string_view kForeignKeysOff = "-- mews-relay: foreign_keys off\n";

// Foreign keys off for one SQLite step, back as they were afterwards, however
// the step ends.
class ForeignKeysOff {
 public:
  explicit ForeignKeysOff(Connection& db) : db_(db), were_on_(db.queryInt("PRAGMA foreign_keys") != 0) {
    db_.exec("PRAGMA foreign_keys = OFF");
  }
  ~ForeignKeysOff() {
    try {
      if (were_on_) db_.exec("PRAGMA foreign_keys = ON");
    } catch (const StorageError&) {
      // The connection failed under us: whoever opens the next one turns them on.
    }
  }
  ForeignKeysOff(const ForeignKeysOff&) = delete;
  ForeignKeysOff& operator=(const ForeignKeysOff&) = delete;

  // Before the step: a row whose parent is gone already (written with
  // foreign keys off: a DELETE in the sqlite3 shell) would be blamed on the
  // step, which keeps every row. Refused, saying where and what to do.
  void checkBefore(const Migration& migration) {
    Statement violations(db_, "PRAGMA foreign_key_check");
    if (!violations.step()) return;
    const std::string table = violations.columnText(0);
    std::int64_t rows = 1;
    while (violations.step()) ++rows;
    throw std::runtime_error(fmt::format(
        "journal {}: {} row(s) (the first in {}) refer to a row that is gone, from before schema step {} ({}), which "
        "keeps every row and cannot start with them; nothing changed. With the relay stopped, `sqlite3 {} 'PRAGMA "
        "foreign_key_check'` lists them: delete them or restore what they refer to",
        db_.where(), rows, table, migration.version, migration.name, db_.where()));
  }

  // Before the COMMIT: the rebuilt tables still satisfy every foreign key.
  void check() {
    Statement violations(db_, "PRAGMA foreign_key_check");
    if (violations.step())
      throw std::runtime_error(
          fmt::format("journal {}: a migration left a row in {} without its parent; nothing changed", db_.where(),
                      violations.columnText(0)));
  }

 private:
  Connection& db_;
  bool were_on_;
};

}  // namespace

const std::vector<Migration>& migrationsFor(Backend backend) {
  return backend == Backend::Postgres ? embeddedPostgresMigrations() : embeddedMigrations();
}

int latestSchemaVersion(Backend backend) {
  const auto& all = migrationsFor(backend);
  return all.empty() ? 0 : all.back().version;
}

int schemaVersion(Connection& db) {
  if (db.backend() == Backend::Sqlite) return static_cast<int>(db.queryInt("PRAGMA user_version"));
  if (db.queryInt("SELECT count(*) FROM pg_tables WHERE tablename = 'schema_migrations'"
                  " AND schemaname = current_schema()") == 0)
    return 0;
  return static_cast<int>(db.queryInt("SELECT coalesce(max(version), 0) FROM schema_migrations"));
}

int migrate(Connection& db) {
  return migrate(db, migrationsFor(db.backend()));
}

int migrate(Connection& db, const std::vector<Migration>& migrations) {
  const int latest = migrations.empty() ? 0 : migrations.back().version;
  const bool postgres = db.backend() == Backend::Postgres;
  int current = schemaVersion(db);
  if (current > latest)
    throw std::runtime_error(
        fmt::format("journal {} has schema version {}, newer than this binary's {}; run a newer mews-relay", db.where(),
                    current, latest));
  for (const auto& migration : migrations) {
    if (migration.version <= current) continue;
    std::optional<ForeignKeysOff> rebuild;
    if (!postgres && migration.sql.substr(0, kForeignKeysOff.size()) == kForeignKeysOff) {
      rebuild.emplace(db);
      rebuild->checkBefore(migration);
    }
    Transaction transaction(db);
    if (postgres) {
      // Another process may have applied it while this one waited for the lock.
      db.exec(fmt::format("SELECT pg_advisory_xact_lock({}, hashtext(current_schema()))", kMigrationLock));
      if (schemaVersion(db) >= migration.version) continue;
    }
    db.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)");
    try {
      db.exec(migration.sql);
    } catch (const SqliteError& e) {
      // Named by its step, not by the first bytes of its SQL (a comment).
      const std::string what = e.what();
      const auto failed = what.rfind(" failed: ");
      throw SqliteError(e.code(), fmt::format("journal {}: schema step {} ({}) failed, nothing changed: {}", db.where(),
                                              migration.version, migration.name,
                                              failed == std::string::npos ? what : what.substr(failed + 9)));
    }
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
        .bind(1, std::int64_t{migration.version})
        .bind(2, migration.name)
        .bind(3, formatIsoMillis(SystemClock::instance().wallMillis()))
        .run();
    if (!postgres) db.exec(fmt::format("PRAGMA user_version = {}", migration.version));
    if (rebuild) rebuild->check();
    transaction.commit();
    current = migration.version;
  }
  return current;
}

}  // namespace mews::journal
