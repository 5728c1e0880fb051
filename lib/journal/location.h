// Where the journal is: a SQLite file or a PostgreSQL database (config
// [journal] path or url; exactly one).
#pragma once

#include <string>

#include "journal/sql.h"

namespace mews::journal {

struct JournalLocation {
  std::string path;  // the SQLite file
  std::string url;   // libpq's connection string (URI or key=value)
  [[nodiscard]] Backend backend() const { return url.empty() ? Backend::Sqlite : Backend::Postgres; }
  // For messages and logs: the path, or the server and database without a password.
  [[nodiscard]] std::string display() const;
};

}  // namespace mews::journal
