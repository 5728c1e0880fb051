// RAII over the SQLite C API: a connection, a prepared statement, a
// transaction. Every return code is checked; a failure becomes SqliteError
// carrying the SQLite result code (so callers can tell SQLITE_FULL or an I/O
// error from a logic error) and the operation that failed.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace mews::journal {

class SqliteError : public std::runtime_error {
 public:
  SqliteError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  // The extended result code; (code() & 0xff) is the primary one.
  [[nodiscard]] int code() const { return code_; }
  [[nodiscard]] int primary() const { return code_ & 0xff; }
  // Disk full, I/O error, read-only file, cannot open: the storage, not the request.
  [[nodiscard]] bool isStorageFailure() const;
  // The connection's files cannot be trusted or written through it any more
  // (I/O error, corruption, read-only, cannot open): close it and open the
  // journal again. Not for a full disk, a lock held elsewhere or out of memory,
  // which pass without a new connection.
  [[nodiscard]] bool needsReopen() const;

 private:
  int code_;
};

class Statement;

class Database {
 public:
  // ReadWrite creates the file when it is missing; ReadWriteExisting fails
  // with SQLITE_CANTOPEN instead. A file SQLite can only open for reading is
  // opened read-only even in the ReadWrite modes (check readOnly()).
  enum class Mode { ReadWrite, ReadWriteExisting, ReadOnly };
  Database(const std::string& path, Mode mode);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements that return no rows.
  void exec(std::string_view sql);
  Statement prepare(std::string_view sql);
  // A statement prepared once per connection and reused: for the hot paths.
  // The caller must leave it reset (run() does; a read with step() holds a
  // ResetOnExit).
  Statement& cached(std::string_view sql);
  // For `PRAGMA x` and `SELECT count(*)`-style single values.
  std::int64_t queryInt(std::string_view sql);
  [[nodiscard]] std::int64_t lastInsertRowid() const;
  [[nodiscard]] int changes() const;
  [[nodiscard]] bool inTransaction() const;
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
  // Looked up by string_view without building a key: cached() is on every hot path.
  struct SqlHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view sql) const { return std::hash<std::string_view>{}(sql); }
  };
  std::unordered_map<std::string, std::unique_ptr<Statement>, SqlHash, std::equal_to<>> cache_;
};

class Statement {
 public:
  Statement(Database& db, std::string_view sql);
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;

  // Binds are 1-based like SQLite's; text and blobs are always copied
  // (SQLITE_TRANSIENT), so the caller's storage may go away before the step.
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, std::string_view text);
  Statement& bindBlob(int index, std::string_view bytes);
  Statement& bindNull(int index);
  Statement& bindOptional(int index, const std::optional<std::string>& text);

  // True while a row is available.
  bool step();
  // Steps a statement that must not return rows.
  void run();
  void reset();

  [[nodiscard]] std::int64_t columnInt(int index) const;
  [[nodiscard]] std::string columnText(int index) const;
  [[nodiscard]] std::optional<std::string> columnOptionalText(int index) const;
  [[nodiscard]] bool columnIsNull(int index) const;

 private:
  Database* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when the scope ends, however it ends: how a cached
// statement read with step() is left reset (Database::cached). One left
// stepping would hold its read snapshot open (a WAL checkpoint cannot pass it)
// and refuse its next bind.
class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& statement) : statement_(statement) {}
  ~ResetOnExit() { statement_.reset(); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  Statement& statement_;
};

// BEGIN IMMEDIATE on construction, ROLLBACK on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

}  // namespace mews::journal
