// Schema migrations, one list per backend: migrations/NNNN_name.sql for SQLite
// and migrations/postgresql/NNNN_name.sql for PostgreSQL (the same tables,
// columns and states in each dialect). The SQL is embedded into the binary at
// build time (cmake/EmbedFiles.cmake), so an installed binary needs no source
// tree.
//
// Each migration runs in its own transaction together with its row in
// schema_migrations (and, on SQLite, the `user_version` bump), so a crash
// leaves the journal at one version or the next, never between. On PostgreSQL
// the transaction first takes an advisory lock, so two relays (or a relay and
// `mews-relay migrate`) starting at once apply each step once. A journal newer
// than the binary is refused (an older binary must not write to a schema it
// does not know).
#pragma once

#include <string_view>
#include <vector>

#include "journal/sql.h"

namespace mews::journal {

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

const std::vector<Migration>& embeddedMigrations();
const std::vector<Migration>& embeddedPostgresMigrations();
const std::vector<Migration>& migrationsFor(Backend backend);

// Highest version this binary knows.
int latestSchemaVersion(Backend backend = Backend::Sqlite);

// Applies what is pending; returns the version afterwards. Throws StorageError,
// or std::runtime_error when the journal is newer than this binary.
int migrate(Connection& db);
int migrate(Connection& db, const std::vector<Migration>& migrations);

int schemaVersion(Connection& db);

}  // namespace mews::journal
