// The journal: where every batch is kept before it is acknowledged, and the
// delivery queue. Two backends (sql.h), one schema, one SQL:
// - SQLite (the default): one file in WAL mode with synchronous=FULL, so a
//   COMMIT that returned OK is on disk (the WAL is fsynced at every commit).
// - PostgreSQL (journal.url): a database whose server runs with fsync on and
//   the relay's sessions with synchronous_commit at least `on` (checked at
//   every connect, postgres.h), so a COMMIT that returned is on the server's disk.
// The journal modules are the only ones that hold SQL.
//
// Journal is one connection. The serving process opens exactly one writable
// Journal and hands it to the JournalWriter thread (see writer.h); every other
// reader opens its own read-only Journal. Statements are prepared once per
// connection and reused.
//
// Failure: StorageError from every call; isStorageFailure() tells a full disk,
// an I/O error or an unreachable server (answer 503, keep nothing
// half-written) from a bug.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "journal/files.h"
#include "journal/location.h"
#include "journal/records.h"
#include "journal/sqlite.h"

namespace mews::journal {

struct JournalOptions {
  // 0: no cap. Otherwise PRAGMA max_page_count is set so that the file stops
  // growing at about this size and inserts fail with SQLITE_FULL.
  std::uint64_t max_size_bytes = 0;
  // Read-only connections neither migrate nor write; they fail on a journal that
  // does not exist or whose schema is not this binary's.
  bool read_only = false;
  // Whether a writable connection creates a missing journal. The writer's
  // reopen does not: a journal that vanished must not be silently replaced by
  // an empty one.
  bool create = true;
  // The serving relay's writer. PostgreSQL: a session with short keepalives
  // (postgres.h); several relays may serve one schema (journal/leases.h). (A
  // SQLite journal's lock file is taken before it is opened, relay.h.)
  bool serving = false;
  // PostgreSQL with several relays: this relay's name. The queue's claims,
  // attempt records and releases on this connection then hold to the leases
  // the relay owns (journal/leases.h: fencing). Empty: unfenced (SQLite, the
  // CLI, readers).
  std::string fence_owner{};
};

// Prepared SAVEPOINT statements: the writer wraps each job in one, per commit
// group, so they are parsed once per connection rather than per job.
struct Savepoints {
  explicit Savepoints(Connection& db)
      : begin(db.cached("SAVEPOINT job")), release(db.cached("RELEASE job")), rollback(db.cached("ROLLBACK TO job")) {}
  Statement& begin;
  Statement& release;
  Statement& rollback;
};

// Free bytes (for unprivileged users) on the file system holding the journal
// at `path`; nullopt when it cannot be told.
std::optional<std::uint64_t> freeDiskBytes(const std::string& path);

// What the journal at `path` takes on disk: the database file, its write-ahead
// log (-wal) and the WAL's shared-memory index (-shm); a missing one counts 0.
// The one size `status` and /metrics report.
std::uint64_t journalDiskBytes(const std::string& path);

class Journal;
// What the journal takes: journalDiskBytes() for SQLite; for PostgreSQL its
// tables with their indexes (the schema's, not the whole database's).
std::uint64_t journalSizeBytes(Journal& reader);

class Journal {
 public:
  // Opens (creating if needed) and migrates to the binary's schema version. A
  // writable journal that SQLite could only open for reading (file or
  // directory not writable, read-only mount) fails with SQLITE_READONLY here
  // rather than at the first write.
  Journal(const std::string& path, JournalOptions options);
  // Either backend. A PostgreSQL journal checks the server's durability
  // settings and migrates (postgres.h); it throws PgError when it cannot.
  Journal(const JournalLocation& location, JournalOptions options);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  Connection& db() { return *db_; }
  [[nodiscard]] Backend backend() const { return db_->backend(); }
  // SQLite's own handle, for what only a file has (copies, hooks in tests).
  // Throws std::logic_error on another backend.
  Database& sqlite();
  // The file's path, or the server and database (no password).
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const std::string& journalId() const { return journal_id_; }
  // JournalOptions::fence_owner.
  [[nodiscard]] const std::string& fenceOwner() const { return fence_owner_; }
  // The files this connection opened, to compare with what is at the path now
  // (journal/files.h); none for PostgreSQL.
  [[nodiscard]] const JournalFiles& files() const { return files_; }
  JournalFiles& files() { return files_; }
  // True when another database file now sits at the path: the writer restored
  // the journal there (or someone put another one), and a reader that keeps
  // this connection would go on reading the old file.
  [[nodiscard]] bool anotherFileAtPath() const;

  // Inside an open transaction: the batch and its planned deliveries. Returns
  // the batch id. Its events are not rows: they are read from the stored body
  // when asked for (the `events` view, migrations/0005_lean_ack.sql).
  std::int64_t insertBatch(const IncomingBatch& batch);

  Savepoints& savepoints() { return *savepoints_; }

  // Inside an open transaction: a real write of one small row (meta
  // 'ready_probe_at'), so that a readiness probe fails exactly when a batch
  // would (disk full, I/O error) rather than committing an empty transaction.
  void recordReadyProbe(std::int64_t now_ms);

  // Counts for tests and `status`.
  std::int64_t count(std::string_view table);

 private:
  Journal(std::unique_ptr<Connection> db, std::string where, const JournalOptions& options);
  void prepareStatements(const JournalOptions& options);

  std::string path_;
  std::unique_ptr<Connection> db_;
  std::string journal_id_;
  std::string fence_owner_;
  JournalFiles files_;
  // The connection's cached statements (prepared once: on PostgreSQL a
  // statement run unprepared is parsed and planned at each run).
  Statement* insert_batch_ = nullptr;
  Statement* insert_delivery_ = nullptr;
  std::unique_ptr<Savepoints> savepoints_;
};

}  // namespace mews::journal
