// The journal's SQL, the same for every backend: a connection, a prepared
// statement, a transaction. The queue (queue.h), the operator's verbs
// (moves.h, reports.h) and the ingest insert are written once against these; each
// backend (sqlite.h, postgres.h) supplies a Connection and a Cursor.
//
// The SQL the shared code writes is the common subset of SQLite 3.40 and
// PostgreSQL 15: `?` placeholders (or `?N`, numbered), ON CONFLICT ... DO,
// RETURNING, text timestamps in one fixed ISO form (so that text order is time
// order), 64-bit integers. Where the dialects differ, Connection says how
// (epochSeconds()).
//
// Failure: a StorageError from every call. isStorageFailure() tells the
// storage (disk full, I/O error, read-only, the database unreachable: answer
// 503, keep nothing half-written) from a bug in a statement.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace mews::journal {

enum class Backend { Sqlite, Postgres };
std::string_view backendName(Backend backend);

class StorageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  // The storage, not the request: full, I/O error, read-only, unreachable.
  [[nodiscard]] virtual bool isStorageFailure() const = 0;
  // The connection cannot be trusted or used any more: close it and open a new one.
  [[nodiscard]] virtual bool needsReopen() const = 0;
  // A short reason safe to show a client and /readyz (no path, no host).
  [[nodiscard]] virtual std::string reason() const = 0;
};

// One prepared statement of one backend. Binds are 1-based; text and blobs are
// copied at bind, so the caller's storage may go away before the step.
class Cursor {
 public:
  virtual ~Cursor() = default;
  virtual void bindInt(int index, std::int64_t value) = 0;
  virtual void bindText(int index, std::string_view text) = 0;
  virtual void bindBlob(int index, std::string_view bytes) = 0;
  // `text`: a NULL where text could be (bindOptional), so that a backend that
  // types its parameters (PostgreSQL) knows it even where the SQL does not say.
  virtual void bindNull(int index, bool text) = 0;
  // Runs the statement at the first call; true while a row is available.
  virtual bool step() = 0;
  // Forgets the rows and the bindings: the statement can run again.
  virtual void reset() = 0;
  [[nodiscard]] virtual std::int64_t columnInt(int index) const = 0;
  [[nodiscard]] virtual std::string columnText(int index) const = 0;  // text or blob bytes
  [[nodiscard]] virtual bool columnIsNull(int index) const = 0;
};

class Connection;

class Statement {
 public:
  Statement(Connection& db, std::string_view sql);
  explicit Statement(std::unique_ptr<Cursor> cursor) : cursor_(std::move(cursor)) {}
  Statement(Statement&&) noexcept = default;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement() = default;

  Statement& bind(int index, std::int64_t value) {
    cursor_->bindInt(index, value);
    return *this;
  }
  Statement& bind(int index, std::string_view text) {
    cursor_->bindText(index, text);
    return *this;
  }
  Statement& bindBlob(int index, std::string_view bytes) {
    cursor_->bindBlob(index, bytes);
    return *this;
  }
  Statement& bindNull(int index) {
    cursor_->bindNull(index, false);
    return *this;
  }
  Statement& bindOptional(int index, const std::optional<std::string>& text) {
    if (text) return bind(index, std::string_view(*text));
    cursor_->bindNull(index, true);
    return *this;
  }

  bool step() { return cursor_->step(); }
  // Runs a statement that must not return rows, then resets it.
  void run();
  void reset() { cursor_->reset(); }

  [[nodiscard]] std::int64_t columnInt(int index) const { return cursor_->columnInt(index); }
  [[nodiscard]] std::string columnText(int index) const { return cursor_->columnText(index); }
  [[nodiscard]] std::optional<std::string> columnOptionalText(int index) const {
    if (columnIsNull(index)) return std::nullopt;
    return columnText(index);
  }
  [[nodiscard]] bool columnIsNull(int index) const { return cursor_->columnIsNull(index); }

 private:
  std::unique_ptr<Cursor> cursor_;
};

// One connection to the journal, used by one thread at a time.
class Connection {
 public:
  Connection() = default;
  virtual ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  [[nodiscard]] virtual Backend backend() const = 0;
  // Where it is, for messages: the file's path, or host and database (never a password).
  [[nodiscard]] virtual const std::string& where() const = 0;

  // Runs one or more statements that return no rows.
  virtual void exec(std::string_view sql) = 0;
  // `persistent`: kept for the connection's life and reused (cached()).
  virtual std::unique_ptr<Cursor> compile(std::string_view sql, bool persistent) = 0;
  Statement prepare(std::string_view sql) { return {*this, sql}; }
  // A statement prepared once per connection and reused: for the hot paths.
  // The caller must leave it reset (run() does; a read with step() holds a
  // ResetOnExit).
  Statement& cached(std::string_view sql);
  // For single values: `SELECT count(*)`, `PRAGMA x`.
  std::int64_t queryInt(std::string_view sql);
  // Rows changed by the last INSERT, UPDATE or DELETE run on this connection.
  [[nodiscard]] virtual std::int64_t changes() const = 0;
  [[nodiscard]] virtual bool inTransaction() const = 0;
  // BEGIN (IMMEDIATE on SQLite: take the write lock now), and ROLLBACK of
  // whatever is open, for Transaction's destructor: never throws.
  virtual void begin() = 0;
  virtual void rollbackQuietly() noexcept = 0;

  // SQL for the Unix time in whole seconds of a text timestamp column.
  [[nodiscard]] virtual std::string epochSeconds(std::string_view column) const = 0;

 protected:
  // Statements cached() made: a backend's destructor clears them before it
  // closes its handle.
  void dropCached() { cache_.clear(); }

 private:
  // Looked up by string_view without building a key: cached() is on every hot path.
  struct SqlHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view sql) const { return std::hash<std::string_view>{}(sql); }
  };
  std::unordered_map<std::string, std::unique_ptr<Statement>, SqlHash, std::equal_to<>> cache_;
};

// Resets a statement when the scope ends, however it ends: how a cached
// statement read with step() is left reset (Connection::cached). One left
// stepping would hold its read snapshot open and refuse its next bind.
class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& statement) : statement_(statement) {}
  ~ResetOnExit() { statement_.reset(); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  Statement& statement_;
};

// BEGIN on construction, ROLLBACK on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(Connection& db) : db_(db) { db_.begin(); }
  ~Transaction() {
    if (!done_) db_.rollbackQuietly();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Connection& db_;
  bool done_ = false;
};

}  // namespace mews::journal
