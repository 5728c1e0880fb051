#include "journal/journal.h"

#include <sys/statvfs.h>

#include <fmt/format.h>
#include <filesystem>

#include "common/clock.h"
#include "journal/migrations.h"

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

}  // namespace

Journal::Journal(const std::string& path, JournalOptions options) : path_(path), db_(path, modeFor(options)) {
  if (!options.read_only && db_.readOnly())
    throw SqliteError(SQLITE_READONLY, fmt::format("journal {} is read-only: cannot open it for writing", path));
  if (options.read_only) {
    const int version = schemaVersion(db_);
    if (version != latestSchemaVersion())
      throw std::runtime_error(
          fmt::format("journal {} has schema version {}, this binary expects {}; run 'mews-relay migrate'", path,
                      version, latestSchemaVersion()));
  } else {
    // WAL: readers (CLI, dispatcher) never block the writer. FULL: the WAL is
    // fsynced at every commit, which is what makes "committed" mean "on disk".
    db_.exec("PRAGMA journal_mode = WAL");
    db_.exec("PRAGMA synchronous = FULL");
    db_.exec("PRAGMA foreign_keys = ON");
    migrate(db_);
    // Writable all the way: a -wal that SQLite could only open for reading
    // passes the check above, and would otherwise show at the first batch.
    try {
      db_.exec("BEGIN IMMEDIATE");
      db_.exec("ROLLBACK");
    } catch (const SqliteError& e) {
      if (e.primary() != SQLITE_READONLY) throw;
      throw SqliteError(e.code(), fmt::format("journal {} is read-only: {}", path, sqlite3_errstr(e.code())));
    }
    if (options.max_size_bytes != 0) {
      const auto page_size = static_cast<std::uint64_t>(db_.queryInt("PRAGMA page_size"));
      db_.queryInt(fmt::format("PRAGMA max_page_count = {}", options.max_size_bytes / page_size));
    }
    insert_batch_ = std::make_unique<Statement>(
        db_,
        "INSERT INTO batches (received_at, kind, enterprise_id, integration_id, event_count,"
        " content_type, body, unrouted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    insert_delivery_ = std::make_unique<Statement>(
        db_,
        "INSERT INTO deliveries (batch_id, event_seq, target, created_at, due_at, updated_at, age_from)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)");
    savepoints_ = std::make_unique<Savepoints>(db_);
  }
  Statement select_id(db_, "SELECT value FROM meta WHERE key = 'journal_id'");
  if (select_id.step()) journal_id_ = select_id.columnText(0);
  // After a read in WAL mode, so the -wal and -shm files are open and recorded.
  files_ = JournalFiles::at(path);
}

bool Journal::anotherFileAtPath() const {
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
      .bind(8, std::int64_t{batch.deliveries.empty() ? 1 : 0})
      .run();
  const std::int64_t batch_id = db_.lastInsertRowid();

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

void Journal::recordReadyProbe(std::int64_t now_ms) {
  db_.cached(
         "INSERT INTO meta (key, value) VALUES ('ready_probe_at', ?)"
         " ON CONFLICT (key) DO UPDATE SET value = excluded.value")
      .bind(1, formatIsoMillis(now_ms))
      .run();
}

std::int64_t Journal::count(std::string_view table) {
  return db_.queryInt(fmt::format("SELECT count(*) FROM {}", table));
}

}  // namespace mews::journal
