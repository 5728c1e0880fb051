#include "journal/journal.h"

#include <sys/statvfs.h>

#include <fmt/format.h>
#include <filesystem>

#include "common/clock.h"
#include "journal/migrations.h"
#include "journal/postgres.h"

namespace mews::journal {

std::string_view kindName(BatchKind kind) {
  switch (kind) {
    case BatchKind::General:
      return "general";
    case BatchKind::Integration:
      return "integration";
    case BatchKind::Unknown:
      break;
  }
  return "unknown";
}

BatchKind kindFromName(std::string_view name) {
  if (name == "general") return BatchKind::General;
  if (name == "integration") return BatchKind::Integration;
  return BatchKind::Unknown;
}

namespace {

Database::Mode modeFor(const JournalOptions& options) {
  if (options.read_only) return Database::Mode::ReadOnly;
  return options.create ? Database::Mode::ReadWrite : Database::Mode::ReadWriteExisting;
}

void requireCurrentSchema(Connection& db, const std::string& where) {
  const int version = schemaVersion(db);
  if (version != latestSchemaVersion(db.backend()))
    throw std::runtime_error(
        fmt::format("journal {} has schema version {}, this binary expects {}; run 'mews-relay migrate'", where,
                    version, latestSchemaVersion(db.backend())));
}

std::unique_ptr<Connection> openSqlite(const std::string& path, const JournalOptions& options) {
  auto db = std::make_unique<Database>(path, modeFor(options));
  if (!options.read_only && db->readOnly())
    throw SqliteError(SQLITE_READONLY, fmt::format("journal {} is read-only: cannot open it for writing", path));
  if (options.read_only) {
    requireCurrentSchema(*db, path);
    return db;
  }
  // WAL: readers (CLI, dispatcher) never block the writer. FULL: the WAL is
  // fsynced at every commit, which is what makes "committed" mean "on disk".
  db->exec("PRAGMA journal_mode = WAL");
  db->exec("PRAGMA synchronous = FULL");
  db->exec("PRAGMA foreign_keys = ON");
  migrate(*db);
  // Writable all the way: a -wal that SQLite could only open for reading
  // passes the check above, and would otherwise show at the first batch.
  try {
    db->exec("BEGIN IMMEDIATE");
    db->exec("ROLLBACK");
  } catch (const SqliteError& e) {
    if (e.primary() != SQLITE_READONLY) throw;
    throw SqliteError(e.code(), fmt::format("journal {} is read-only: {}", path, sqlite3_errstr(e.code())));
  }
  if (options.max_size_bytes != 0) {
    const auto page_size = static_cast<std::uint64_t>(db->queryInt("PRAGMA page_size"));
    db->queryInt(fmt::format("PRAGMA max_page_count = {}", options.max_size_bytes / page_size));
  }
  return db;
}

}  // namespace

std::string JournalLocation::display() const {
  return url.empty() ? path : conninfoForDisplay(url);
}

Journal::Journal(const std::string& path, JournalOptions options) : Journal(openSqlite(path, options), path, options) {}

Journal::Journal(const JournalLocation& location, JournalOptions options)
    : Journal(location.backend() == Backend::Sqlite ? openSqlite(location.path, options)
                                                    : openPostgres(location.url, options),
              location.display(), options) {}

Journal::Journal(std::unique_ptr<Connection> db, std::string where, const JournalOptions& options)
    : path_(std::move(where)), db_(std::move(db)) {
  if (db_->backend() == Backend::Postgres) fence_owner_ = options.fence_owner;
  prepareStatements(options);
  // After a read in WAL mode, so the -wal and -shm files are open and recorded.
  if (db_->backend() == Backend::Sqlite) files_ = JournalFiles::at(path_);
}

void Journal::prepareStatements(const JournalOptions& options) {
  if (!options.read_only) {
    insert_batch_ = &db_->cached(
        "INSERT INTO batches (received_at, kind, enterprise_id, integration_id, event_count,"
        " content_type, body, unrouted) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id");
    insert_delivery_ = &db_->cached(
        "INSERT INTO deliveries (batch_id, event_seq, target, created_at, due_at, updated_at, age_from)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)");
    savepoints_ = std::make_unique<Savepoints>(*db_);
  }
  Statement select_id(*db_, "SELECT value FROM meta WHERE key = 'journal_id'");
  if (select_id.step()) journal_id_ = select_id.columnText(0);
}

Database& Journal::sqlite() {
  auto* db = dynamic_cast<Database*>(db_.get());
  if (db == nullptr) throw std::logic_error("journal: not a SQLite journal");
  return *db;
}

bool Journal::anotherFileAtPath() const {
  if (db_->backend() != Backend::Sqlite) return false;
  const auto now = identityAt(path_);
  return now && !files_.databaseAtPath();
}

Journal::~Journal() = default;

std::int64_t Journal::insertBatch(const IncomingBatch& batch) {
  const std::string received_at = formatIsoMillis(batch.received_at_ms);
  const BatchSummary& summary = batch.summary;
  insert_batch_->bind(1, std::string_view(received_at))
      .bind(2, kindName(summary.kind))
      .bindOptional(3, summary.enterprise_id)
      .bindOptional(4, summary.integration_id)
      .bind(5, static_cast<std::int64_t>(summary.events.size()))
      .bind(6, std::string_view(batch.content_type))
      .bindBlob(7, batch.body)
      .bind(8, std::int64_t{batch.deliveries.empty() ? 1 : 0});
  std::int64_t batch_id = 0;
  {
    const ResetOnExit reset(*insert_batch_);
    if (!insert_batch_->step()) throw std::logic_error("journal: INSERT ... RETURNING id returned no row");
    batch_id = insert_batch_->columnInt(0);
  }

  for (const auto& delivery : batch.deliveries) {
    insert_delivery_->bind(1, batch_id);
    if (delivery.event_seq)
      insert_delivery_->bind(2, *delivery.event_seq);
    else
      insert_delivery_->bindNull(2);
    insert_delivery_->bind(3, std::string_view(delivery.target))
        .bind(4, std::string_view(received_at))
        .bind(5, std::string_view(received_at))
        .bind(6, std::string_view(received_at))
        .bind(7, std::string_view(received_at))
        .run();
  }
  return batch_id;
}

std::optional<std::uint64_t> freeDiskBytes(const std::string& path) {
  const auto directory = std::filesystem::absolute(path).parent_path();
  struct statvfs fs {};
  if (statvfs(directory.c_str(), &fs) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
}

std::uint64_t journalDiskBytes(const std::string& path) {
  std::uint64_t total = 0;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::error_code missing;
    const auto size = std::filesystem::file_size(path + suffix, missing);
    if (!missing) total += size;
  }
  return total;
}

std::uint64_t journalSizeBytes(Journal& reader) {
  if (reader.backend() == Backend::Sqlite) return journalDiskBytes(reader.path());
  // The journal's own tables with their indexes and TOAST: a database may
  // hold other schemas.
  return static_cast<std::uint64_t>(
      reader.db().queryInt("SELECT CAST(coalesce(sum(pg_total_relation_size(c.oid)), 0) AS BIGINT) FROM pg_class c"
                           " JOIN pg_namespace n ON n.oid = c.relnamespace"
                           " WHERE n.nspname = current_schema() AND c.relkind = 'r'"));
}

void Journal::recordReadyProbe(std::int64_t now_ms) {
  db_->cached(
         "INSERT INTO meta (key, value) VALUES ('ready_probe_at', ?)"
         " ON CONFLICT (key) DO UPDATE SET value = excluded.value")
      .bind(1, formatIsoMillis(now_ms))
      .run();
}

std::int64_t Journal::count(std::string_view table) {
  return db_->queryInt(fmt::format("SELECT count(*) FROM {}", table));
}

}  // namespace mews::journal
