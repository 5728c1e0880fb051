// The SQLite backend of the journal's SQL (sql.h): RAII over the SQLite C API.
// Every return code is checked; a failure becomes SqliteError carrying the
// SQLite result code (so callers can tell SQLITE_FULL or an I/O error from a
// logic error) and the operation that failed.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "journal/sql.h"

namespace mews::journal {

class SqliteError : public StorageError {
 public:
  SqliteError(int code, const std::string& what) : StorageError(what), code_(code) {}
  // The extended result code; (code() & 0xff) is the primary one.
  [[nodiscard]] int code() const { return code_; }
  [[nodiscard]] int primary() const { return code_ & 0xff; }
  // Disk full, I/O error, read-only file, cannot open: the storage, not the request.
  [[nodiscard]] bool isStorageFailure() const override;
  // The connection's files cannot be trusted or written through it any more
  // (I/O error, corruption, read-only, cannot open): close it and open the
  // journal again. Not for a full disk, a lock held elsewhere or out of memory,
  // which pass without a new connection.
  [[nodiscard]] bool needsReopen() const override;
  [[nodiscard]] std::string reason() const override;

 private:
  int code_;
};

class Database : public Connection {
 public:
  // ReadWrite creates the file when it is missing; ReadWriteExisting fails
  // with SQLITE_CANTOPEN instead. A file SQLite can only open for reading is
  // opened read-only even in the ReadWrite modes (check readOnly()).
  enum class Mode { ReadWrite, ReadWriteExisting, ReadOnly };
  Database(const std::string& path, Mode mode);
  ~Database() override;

  [[nodiscard]] Backend backend() const override { return Backend::Sqlite; }
  [[nodiscard]] const std::string& where() const override { return path_; }
  void exec(std::string_view sql) override;
  std::unique_ptr<Cursor> compile(std::string_view sql, bool persistent) override;
  [[nodiscard]] std::int64_t changes() const override;
  [[nodiscard]] bool inTransaction() const override;
  void begin() override;
  void rollbackQuietly() noexcept override;
  [[nodiscard]] std::string epochSeconds(std::string_view column) const override;

  // True when the connection cannot write (opened read-only, or SQLite could
  // only open the file for reading).
  [[nodiscard]] bool readOnly() const;
  // Closing will neither checkpoint nor remove the -wal and -shm files by
  // name: for a connection whose files are no longer the ones at its path,
  // where those names may now belong to another journal.
  void keepFilesOnClose();
  [[nodiscard]] sqlite3* handle() const { return db_; }
  [[nodiscard]] const std::string& path() const { return path_; }

  [[noreturn]] void fail(int rc, std::string_view operation) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace mews::journal
