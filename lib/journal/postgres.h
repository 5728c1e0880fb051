// The PostgreSQL backend of the journal's SQL (sql.h): RAII over libpq, used
// directly. libpq rather than a wrapper library: it is the one Debian ships
// with the server (libpq-dev), it gives the SQLSTATE of each error (how a lost
// server, a read-only standby or a full disk are told apart), prepared
// statements by name, and binary parameters for the bodies (bytea) without an
// escaping round trip.
//
// How the shared SQL runs here:
// - `?` and `?N` placeholders become `$n` (outside quotes and comments).
// - Integers are sent as int8, text as text, blobs as binary bytea; results
//   come back as text, bytea decoded.
// - A cached statement is prepared by name once per connection (at its first
//   run, with the types bound then); any other runs as one PQexecParams.
//
// Durability, checked at every connect of a writable journal: the server's
// `fsync` must be on and the session's `synchronous_commit` not `off`;
// otherwise the connect fails with a PgError that says which and why.
//
// Connection strings: libpq's own (a URI postgresql://user@host:port/db?... or
// key=value pairs), multiple hosts allowed. The password comes from
// PGPASSWORD, a passfile (~/.pgpass, PGPASSFILE, `passfile=`) or the string
// itself; it is never printed: messages name the server with
// conninfoForDisplay(), check-config shows maskConninfo().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "journal/sql.h"

struct pg_conn;
struct pg_result;

namespace mews::journal {

struct JournalOptions;

class PgError : public StorageError {
 public:
  // `sqlstate` empty: no answer from the server (the connection is gone).
  PgError(std::string sqlstate, bool connection_lost, const std::string& what);
  [[nodiscard]] const std::string& sqlstate() const { return sqlstate_; }
  [[nodiscard]] bool isStorageFailure() const override;
  [[nodiscard]] bool needsReopen() const override;
  [[nodiscard]] std::string reason() const override;

 private:
  std::string sqlstate_;
  bool connection_lost_;
};

class PgConnection : public Connection {
 public:
  // Connects (libpq's defaults for what the string leaves out; unless it sets
  // them: a connect timeout of 5 s, TCP keepalives and a 15 s user timeout, so
  // that a server gone silent ends a call rather than holding it). Throws PgError.
  explicit PgConnection(const std::string& conninfo);
  ~PgConnection() override;

  [[nodiscard]] Backend backend() const override { return Backend::Postgres; }
  [[nodiscard]] const std::string& where() const override { return where_; }
  void exec(std::string_view sql) override;
  std::unique_ptr<Cursor> compile(std::string_view sql, bool persistent) override;
  [[nodiscard]] std::int64_t changes() const override { return changes_; }
  [[nodiscard]] bool inTransaction() const override;
  void begin() override;
  void rollbackQuietly() noexcept override;
  [[nodiscard]] std::string epochSeconds(std::string_view column) const override;

  // A setting as the session sees it (SHOW name).
  std::string show(std::string_view name);
  [[nodiscard]] pg_conn* handle() const { return conn_; }

  // Throws the PgError for `result` (null: the connection's own error), after
  // `operation` failed. Clears nothing: the caller owns `result`.
  [[noreturn]] void fail(const pg_result* result, std::string_view operation) const;
  // Records the row count a command reported (changes()).
  void noteChanges(const pg_result* result);
  std::string nextStatementName();

 private:
  pg_conn* conn_ = nullptr;
  std::string where_;
  std::int64_t changes_ = 0;
  std::uint64_t statements_ = 0;
};

// Opens a journal connection: checks durability (writable), migrates
// (writable) or checks the schema version (read-only).
std::unique_ptr<Connection> openPostgres(const std::string& conninfo, const JournalOptions& options);

// "" when the string is one libpq can parse as meant, else why not (without
// echoing it). Refused too: what libpq would read otherwise than written, with
// a piece of the password in the host, port or database (an '@' or '/' not
// percent-encoded in a URI's user or password; a connection string as dbname).
std::string conninfoProblem(const std::string& conninfo);
// The string with any password replaced by "***" (URI user:password@, a
// password= parameter or key): for check-config.
std::string maskConninfo(const std::string& conninfo);
// postgresql://user@host:port/dbname, from what the string says (no password,
// no other parameters): for logs and messages.
std::string conninfoForDisplay(const std::string& conninfo);

// Throws PgError when the server does not make a COMMIT durable: fsync off, or
// the session's synchronous_commit off.
void requireDurableCommits(PgConnection& db);

// A serving relay's session (JournalOptions::serving): short server-side TCP
// keepalives, so that a vanished relay's session (and any transaction or row
// lock it held) ends within about 15 s rather than the OS's 2 h. Several
// relays may serve one journal: who dispatches what is journal/leases.h's.
void keepServingSessionShort(PgConnection& db);

}  // namespace mews::journal
