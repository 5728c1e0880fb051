#include "journal/sql.h"

namespace mews::journal {

std::string_view backendName(Backend backend) {
  return backend == Backend::Postgres ? "postgresql" : "sqlite";
}

namespace {

// A statement that returned a row where none was expected: a bug in its SQL.
class UnexpectedRow : public StorageError {
 public:
  using StorageError::StorageError;
  [[nodiscard]] bool isStorageFailure() const override { return false; }
  [[nodiscard]] bool needsReopen() const override { return false; }
  [[nodiscard]] std::string reason() const override { return "journal refused the write"; }
};

}  // namespace

Statement::Statement(Connection& db, std::string_view sql) : cursor_(db.compile(sql, false)) {}

void Statement::run() {
  if (step()) {
    reset();
    throw UnexpectedRow("journal: a statement that writes returned a row");
  }
  reset();
}

Statement& Connection::cached(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) it = cache_.emplace(std::string(sql), std::make_unique<Statement>(compile(sql, true))).first;
  return *it->second;
}

std::int64_t Connection::queryInt(std::string_view sql) {
  Statement statement(*this, sql);
  const ResetOnExit reset(statement);
  if (!statement.step()) return 0;
  return statement.columnInt(0);
}

void Transaction::commit() {
  db_.cached("COMMIT").run();
  done_ = true;
}

}  // namespace mews::journal
