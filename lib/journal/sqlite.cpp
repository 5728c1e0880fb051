#include "journal/sqlite.h"

#include <fmt/format.h>

namespace mews::journal {

bool SqliteError::isStorageFailure() const {
  switch (primary()) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOMEM:
      return true;
    default:
      return false;
  }
}

std::string SqliteError::reason() const {
  if (!isStorageFailure()) return "journal refused the write";
  switch (primary()) {
    case SQLITE_FULL:
      return "journal is full";
    case SQLITE_READONLY:
      return "journal is read-only";
    case SQLITE_CANTOPEN:
      return "journal file is missing or cannot be opened";
    default:
      return "journal cannot take the write";
  }
}

bool SqliteError::needsReopen() const {
  switch (primary()) {
    case SQLITE_IOERR:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
      return true;
    default:
      return false;
  }
}

Database::Database(const std::string& path, Mode mode) : path_(path) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (mode == Mode::ReadWriteExisting) flags = SQLITE_OPEN_READWRITE;
  if (mode == Mode::ReadOnly) flags = SQLITE_OPEN_READONLY;
  // NOMUTEX: each connection is used by one thread at a time (the writer, or one reader).
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string reason = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw SqliteError(rc, fmt::format("cannot open journal {}: {}", path, reason));
  }
  sqlite3_extended_result_codes(db_, 1);
  // Readers may meet a checkpoint or the writer's lock for a moment.
  sqlite3_busy_timeout(db_, 5000);
}

Database::~Database() {
  dropCached();  // finalize before closing
  sqlite3_close_v2(db_);
}

void Database::fail(int rc, std::string_view operation) const {
  throw SqliteError(rc, fmt::format("journal {}: {} failed: {}", path_, operation, sqlite3_errmsg(db_)));
}

void Database::exec(std::string_view sql) {
  char* message = nullptr;
  const std::string copy(sql);
  const int rc = sqlite3_exec(db_, copy.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    const std::string reason = message ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    throw SqliteError(sqlite3_extended_errcode(db_),
                      fmt::format("journal {}: {} failed: {}", path_, copy.substr(0, 60), reason));
  }
}

std::int64_t Database::changes() const {
  return sqlite3_changes(db_);
}
bool Database::inTransaction() const {
  return sqlite3_get_autocommit(db_) == 0;
}
bool Database::readOnly() const {
  return sqlite3_db_readonly(db_, "main") == 1;
}

void Database::begin() {
  cached("BEGIN IMMEDIATE").run();
}

void Database::rollbackQuietly() noexcept {
  // SQLite may already have rolled back (SQLITE_FULL, I/O error); only roll back what is open.
  if (inTransaction()) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

std::string Database::epochSeconds(std::string_view column) const {
  return fmt::format("CAST(strftime('%s', {}) AS INTEGER)", column);
}

void Database::keepFilesOnClose() {
  const int rc = sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  if (rc != SQLITE_OK) fail(rc, "no checkpoint on close");
}

namespace {

class SqliteCursor : public Cursor {
 public:
  SqliteCursor(Database& db, std::string_view sql, bool persistent) : db_(db) {
    const int rc = sqlite3_prepare_v3(db.handle(), sql.data(), static_cast<int>(sql.size()),
                                      persistent ? SQLITE_PREPARE_PERSISTENT : 0, &stmt_, nullptr);
    if (rc != SQLITE_OK) db.fail(rc, fmt::format("prepare '{}'", sql.substr(0, 60)));
  }
  ~SqliteCursor() override { sqlite3_finalize(stmt_); }
  SqliteCursor(const SqliteCursor&) = delete;
  SqliteCursor& operator=(const SqliteCursor&) = delete;

  void bindInt(int index, std::int64_t value) override { check(sqlite3_bind_int64(stmt_, index, value)); }
  void bindText(int index, std::string_view text) override {
    check(sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  void bindBlob(int index, std::string_view bytes) override {
    check(sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT));
  }
  void bindNull(int index, bool /*text*/) override { check(sqlite3_bind_null(stmt_, index)); }

  bool step() override {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    const int extended = sqlite3_extended_errcode(db_.handle());
    sqlite3_reset(stmt_);
    db_.fail(extended, "step");
  }
  void reset() override {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  [[nodiscard]] std::int64_t columnInt(int index) const override { return sqlite3_column_int64(stmt_, index); }
  [[nodiscard]] std::string columnText(int index) const override {
    const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, index));
    const int size = sqlite3_column_bytes(stmt_, index);
    return data ? std::string(data, static_cast<std::size_t>(size)) : std::string();
  }
  [[nodiscard]] bool columnIsNull(int index) const override { return sqlite3_column_type(stmt_, index) == SQLITE_NULL; }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK) db_.fail(rc, "bind");
  }
  Database& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

std::unique_ptr<Cursor> Database::compile(std::string_view sql, bool persistent) {
  return std::make_unique<SqliteCursor>(*this, sql, persistent);
}

}  // namespace mews::journal
