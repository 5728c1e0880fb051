// Schema migrations. The SQL lives in migrations/NNNN_name.sql and is embedded
// into the binary at build time (cmake/EmbedFiles.cmake), so an
// installed binary needs no source tree.
//
// The schema version is SQLite's `user_version`; each migration runs in its own
// transaction together with the version bump and a row in schema_migrations,
// so a crash leaves the journal at one version or the next, never between.
// A journal newer than the binary is refused (an older binary must not write
// to a schema it does not know).
#pragma once

#include <string_view>
#include <vector>

namespace mews::journal {

class Database;

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

const std::vector<Migration>& embeddedMigrations();

// Highest version this binary knows.
int latestSchemaVersion();

// Applies what is pending; returns the version afterwards. Throws SqliteError,
// or std::runtime_error when the journal is newer than this binary.
int migrate(Database& db, const std::vector<Migration>& migrations = embeddedMigrations());

int schemaVersion(Database& db);

}  // namespace mews::journal
