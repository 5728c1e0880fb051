#include "journal/postgres.h"

#include <libpq-fe.h>

#include <fmt/format.h>
#include <charconv>
#include <cstring>
#include <vector>

#include "common/text.h"
#include "journal/journal.h"
#include "journal/migrations.h"

namespace mews::journal {

namespace {

// Type oids (pg_type.h, stable across releases).
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;
// The SQLSTATE requireDurableCommits() reports: object_not_in_prerequisite_state.
constexpr const char* kNotDurable = "55000";

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

struct ConninfoDeleter {
  void operator()(PQconninfoOption* options) const { PQconninfoFree(options); }
};
using ConninfoOptions = std::unique_ptr<PQconninfoOption, ConninfoDeleter>;

std::string trimmed(const char* message) {
  std::string text = message ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  // libpq's messages can span lines ("connection to server ... failed: FATAL: ..."): one log line.
  for (char& c : text)
    if (c == '\n') c = ' ';
  return text;
}

bool ok(const PGresult* result) {
  const auto status = PQresultStatus(result);
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

// `?` -> `$1, $2, ...` and `?N` -> `$N`, outside quoted text, quoted names and comments.
std::string numberedPlaceholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int next = 0;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (c == '\'' || c == '"') {
      const std::size_t end = sql.find(c, i + 1);
      const std::size_t stop = end == std::string_view::npos ? sql.size() : end + 1;
      out.append(sql.substr(i, stop - i));
      i = stop - 1;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      const std::size_t end = sql.find('\n', i);
      const std::size_t stop = end == std::string_view::npos ? sql.size() : end;
      out.append(sql.substr(i, stop - i));
      i = stop - 1;
    } else if (c == '?') {
      out += '$';
      if (i + 1 < sql.size() && sql[i + 1] >= '0' && sql[i + 1] <= '9') continue;  // ?N: the digits follow
      out += std::to_string(++next);
    } else {
      out += c;
    }
  }
  return out;
}

class PgCursor : public Cursor {
 public:
  PgCursor(PgConnection& db, std::string_view sql, bool persistent)
      : db_(db), sql_(numberedPlaceholders(sql)), persistent_(persistent) {}

  void bindInt(int index, std::int64_t value) override { set(index, std::to_string(value), kInt8Oid, 0); }
  // PostgreSQL's text holds only well-formed UTF-8 without NUL; what a
  // target answered may be any bytes (attempts.response_excerpt): those bytes
  // become U+FFFD rather than failing the write. Bodies are bytea, kept exact.
  void bindText(int index, std::string_view text) override { set(index, text::wellFormedUtf8(text), kTextOid, 0); }
  void bindBlob(int index, std::string_view bytes) override { set(index, std::string(bytes), kByteaOid, 1); }
  void bindNull(int index, bool text) override {
    set(index, {}, text ? kTextOid : 0, 0);
    is_null_[static_cast<std::size_t>(index - 1)] = true;
  }

  bool step() override {
    if (!result_) execute();
    return ++row_ < PQntuples(result_.get());
  }

  void reset() override {
    result_.reset();
    row_ = -1;
    values_.clear();
    is_null_.clear();
    formats_.clear();
    lengths_.clear();
    if (name_.empty()) types_.clear();  // a prepared statement keeps the types it was prepared with
  }

  [[nodiscard]] std::int64_t columnInt(int index) const override {
    if (PQgetisnull(result_.get(), row_, index)) return 0;
    const char* text = PQgetvalue(result_.get(), row_, index);
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(text, text + std::strlen(text), value);
    if (error != std::errc() || *end != '\0')
      throw PgError("", false, fmt::format("journal {}: column {} is not an integer: '{}'", db_.where(), index, text));
    return value;
  }

  [[nodiscard]] std::string columnText(int index) const override {
    if (PQgetisnull(result_.get(), row_, index)) return {};
    const char* text = PQgetvalue(result_.get(), row_, index);
    if (PQftype(result_.get(), index) != kByteaOid)
      return {text, static_cast<std::size_t>(PQgetlength(result_.get(), row_, index))};
    std::size_t size = 0;
    unsigned char* bytes = PQunescapeBytea(reinterpret_cast<const unsigned char*>(text), &size);
    if (bytes == nullptr)
      throw PgError("", false, fmt::format("journal {}: cannot decode a bytea column", db_.where()));
    std::string out(reinterpret_cast<const char*>(bytes), size);
    PQfreemem(bytes);
    return out;
  }

  [[nodiscard]] bool columnIsNull(int index) const override { return PQgetisnull(result_.get(), row_, index) != 0; }

 private:
  void set(int index, std::string value, Oid type, int format) {
    const auto at = static_cast<std::size_t>(index - 1);
    if (values_.size() <= at) {
      values_.resize(at + 1);
      is_null_.resize(at + 1, false);
      formats_.resize(at + 1, 0);
      lengths_.resize(at + 1, 0);
    }
    if (types_.size() <= at) types_.resize(at + 1, 0);
    values_[at] = std::move(value);
    is_null_[at] = false;
    formats_[at] = format;
    lengths_[at] = static_cast<int>(values_[at].size());
    if (name_.empty()) types_[at] = type;
  }

  void execute() {
    // The server answers a COMMIT of a transaction that a failed statement
    // aborted with ROLLBACK, and no error: Transaction::commit() must not
    // return as if it had committed.
    if (sql_ == "COMMIT" && PQtransactionStatus(db_.handle()) == PQTRANS_INERROR)
      throw PgError(
          "25P02", false,
          fmt::format("journal {}: COMMIT of a transaction a failed statement aborted (rolled back)", db_.where()));
    const int count = static_cast<int>(values_.size());
    std::vector<const char*> pointers(values_.size());
    for (std::size_t i = 0; i < values_.size(); ++i) pointers[i] = is_null_[i] ? nullptr : values_[i].data();
    if (persistent_ && name_.empty()) {
      std::string name = db_.nextStatementName();
      const Result prepared(
          PQprepare(db_.handle(), name.c_str(), sql_.c_str(), static_cast<int>(types_.size()), types_.data()));
      if (!ok(prepared.get())) db_.fail(prepared.get(), fmt::format("prepare '{}'", sql_.substr(0, 60)));
      name_ = std::move(name);
    }
    Result result(name_.empty() ? PQexecParams(db_.handle(), sql_.c_str(), count, types_.data(), pointers.data(),
                                               lengths_.data(), formats_.data(), 0)
                                : PQexecPrepared(db_.handle(), name_.c_str(), count, pointers.data(), lengths_.data(),
                                                 formats_.data(), 0));
    if (!ok(result.get())) {
      const Result failed = std::move(result);
      reset();
      db_.fail(failed.get(), fmt::format("'{}'", sql_.substr(0, 60)));
    }
    db_.noteChanges(result.get());
    result_ = std::move(result);
    row_ = -1;
  }

  PgConnection& db_;
  std::string sql_;
  bool persistent_;
  std::string name_;  // once prepared
  std::vector<std::string> values_;
  std::vector<bool> is_null_;
  std::vector<Oid> types_;
  std::vector<int> formats_;
  std::vector<int> lengths_;
  Result result_;
  int row_ = -1;
};

ConninfoOptions parse(const std::string& conninfo) {
  char* error = nullptr;
  ConninfoOptions options(PQconninfoParse(conninfo.c_str(), &error));
  if (error != nullptr) PQfreemem(error);
  return options;
}

}  // namespace

PgError::PgError(std::string sqlstate, bool connection_lost, const std::string& what)
    : StorageError(what), sqlstate_(std::move(sqlstate)), connection_lost_(connection_lost) {}

bool PgError::isStorageFailure() const {
  if (connection_lost_ || sqlstate_.empty()) return connection_lost_;
  const std::string_view cls = std::string_view(sqlstate_).substr(0, 2);
  // 08 connection, 53 resources (disk full, memory, connections), 57 operator
  // intervention (shutdown, cancel), 58 system (I/O), 25006 read-only
  // (a standby), 40 serialization / deadlock (transient).
  // 55: not durable (ours, requireDurableCommits).
  return cls == "08" || cls == "53" || cls == "55" || cls == "57" || cls == "58" || cls == "40" || sqlstate_ == "25006";
}

bool PgError::needsReopen() const {
  if (connection_lost_) return true;
  const std::string_view cls = std::string_view(sqlstate_).substr(0, 2);
  // A standby may be promoted elsewhere: a new connection (multi-host,
  // target_session_attrs=read-write) finds the primary.
  return cls == "08" || sqlstate_ == "57P01" || sqlstate_ == "57P02" || sqlstate_ == "57P03" || cls == "58" ||
         sqlstate_ == "25006";
}

std::string PgError::reason() const {
  if (connection_lost_) return "journal database is unreachable";
  if (sqlstate_ == "25006") return "journal database is read-only (a standby?)";
  if (sqlstate_ == "53100") return "journal database is full";
  if (sqlstate_ == kNotDurable)
    return "journal database does not make commits durable (fsync or synchronous_commit off)";
  if (sqlstate_ == "55P03") return "journal database is in use by another relay";
  const std::string_view cls = std::string_view(sqlstate_).substr(0, 2);
  if (cls == "08") return "journal database is unreachable";
  if (cls == "57") return "journal database is shutting down or starting";
  if (cls == "53") return "journal database is out of resources";
  return isStorageFailure() ? "journal cannot take the write" : "journal refused the write";
}

PgConnection::PgConnection(const std::string& conninfo) : where_(conninfoForDisplay(conninfo)) {
  // Earlier keywords are defaults the connection string (expanded from
  // `dbname`) overrides. A server that vanished without closing the
  // connection (a cable, a VM gone) would hold the writer in a call forever:
  // TCP keepalives and a user timeout end such a call within about 15 s, and
  // the writer reconnects (meanwhile each webhook is answered 503 after its
  // commit wait).
  const char* keywords[] = {"connect_timeout",
                            "application_name",
                            "keepalives",
                            "keepalives_idle",
                            "keepalives_interval",
                            "keepalives_count",
                            "tcp_user_timeout",
                            "dbname",
                            nullptr};
  const char* values[] = {"5", "mews-relay", "1", "5", "2", "3", "15000", conninfo.c_str(), nullptr};
  conn_ = PQconnectdbParams(keywords, values, 1);
  if (conn_ == nullptr) throw PgError("", true, fmt::format("journal {}: out of memory to connect", where_));
  if (PQstatus(conn_) != CONNECTION_OK) {
    const std::string message = trimmed(PQerrorMessage(conn_));
    PQfinish(conn_);
    conn_ = nullptr;
    throw PgError("", true, fmt::format("journal {}: cannot connect: {}", where_, message));
  }
}

PgConnection::~PgConnection() {
  dropCached();
  PQfinish(conn_);
}

void PgConnection::fail(const PGresult* result, std::string_view operation) const {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string message =
      trimmed(result && PQresultErrorMessage(result)[0] != '\0' ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
  const bool lost = PQstatus(conn_) != CONNECTION_OK || state == nullptr;
  throw PgError(state ? state : "", lost, fmt::format("journal {}: {} failed: {}", where_, operation, message));
}

void PgConnection::noteChanges(const PGresult* result) {
  const char* tuples = PQcmdTuples(const_cast<PGresult*>(result));
  if (tuples == nullptr || *tuples == '\0') return;
  std::from_chars(tuples, tuples + std::strlen(tuples), changes_);
}

std::string PgConnection::nextStatementName() {
  return fmt::format("mews_{}", ++statements_);
}

void PgConnection::exec(std::string_view sql) {
  const std::string copy(sql);
  const Result result(PQexec(conn_, copy.c_str()));
  if (!ok(result.get())) fail(result.get(), fmt::format("'{}'", copy.substr(0, 60)));
  noteChanges(result.get());
}

std::unique_ptr<Cursor> PgConnection::compile(std::string_view sql, bool persistent) {
  return std::make_unique<PgCursor>(*this, sql, persistent);
}

bool PgConnection::inTransaction() const {
  const auto status = PQtransactionStatus(conn_);
  return status == PQTRANS_INTRANS || status == PQTRANS_INERROR;
}

void PgConnection::begin() {
  cached("BEGIN").run();
}

void PgConnection::rollbackQuietly() noexcept {
  if (!inTransaction()) return;
  PQclear(PQexec(conn_, "ROLLBACK"));
}

std::string PgConnection::epochSeconds(std::string_view column) const {
  // floor, as SQLite's strftime('%s') truncates: 12:00:00.700 is second 12:00:00.
  return fmt::format("CAST(floor(extract(epoch FROM CAST({} AS timestamptz))) AS BIGINT)", column);
}

std::string PgConnection::show(std::string_view name) {
  Statement statement(*this, fmt::format("SELECT current_setting('{}')", name));
  const ResetOnExit reset(statement);
  return statement.step() ? statement.columnText(0) : std::string();
}

void requireDurableCommits(PgConnection& db) {
  if (db.show("fsync") != "on")
    throw PgError(kNotDurable, false,
                  fmt::format("journal {}: the server runs with fsync = off, so a committed batch can be lost in a "
                              "crash; the relay acknowledges only durable batches: set fsync = on",
                              db.where()));
  if (db.show("synchronous_commit") == "off")
    throw PgError(kNotDurable, false,
                  fmt::format("journal {}: synchronous_commit is off for the relay's session (server, database or "
                              "role setting), so a COMMIT returns before it is on disk; the relay acknowledges only "
                              "durable batches: set it to on",
                              db.where()));
}

std::unique_ptr<Connection> openPostgres(const std::string& conninfo, const JournalOptions& options) {
  auto db = std::make_unique<PgConnection>(conninfo);
  if (options.read_only) {
    const int version = schemaVersion(*db);
    if (version != latestSchemaVersion(Backend::Postgres))
      throw std::runtime_error(
          fmt::format("journal {} has schema version {}, this binary expects {}; run 'mews-relay migrate'", db->where(),
                      version, latestSchemaVersion(Backend::Postgres)));
    return db;
  }
  requireDurableCommits(*db);
  if (options.serving) keepServingSessionShort(*db);
  migrate(*db);
  return db;
}

void keepServingSessionShort(PgConnection& db) {
  // The server's side of what PgConnection sets on the relay's: a relay whose
  // host or network vanished without closing the connection keeps its session
  // until the server's TCP keepalive notices (2 h by the OS default). Ignored
  // over a Unix socket.
  db.exec(
      "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3;"
      " SET tcp_user_timeout = 15000;"
      // A transaction left open by a relay that froze or lost the network
      // holds share locks on its leases (queue.h's claims): ended after 8 s,
      // so another relay's takeover waits no longer than that.
      " SET idle_in_transaction_session_timeout = 8000");
}

namespace {

bool isUri(const std::string& conninfo) {
  return conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0;
}

// Where libpq's URI parser ends the user information: at the first '@'
// before any '/' (fe-connect.c, conninfo_uri_parse_options); npos when there
// is none. A '?' does not end the look-ahead, a '/' does.
std::size_t userInfoEnd(const std::string& uri, std::size_t start) {
  const std::size_t stop = uri.find_first_of("@/", start);
  return stop != std::string::npos && uri[stop] == '@' ? stop : std::string::npos;
}

}  // namespace

std::string conninfoProblem(const std::string& conninfo) {
  if (conninfo.empty()) return "is empty";
  const auto options = parse(conninfo);
  if (!options) return "is not a libpq connection string (postgresql://user@host:port/dbname or key=value)";
  // What libpq parses differently from what the operator meant would put a
  // piece of the password where messages show it (host, port, database):
  // a password holding '@' or '/' unencoded, or a URI nested in dbname.
  constexpr const char* kUnencoded =
      "has an '@' or '/' where libpq does not expect one: percent-encode them in a user or password (%40, %2F)";
  if (isUri(conninfo)) {
    const std::size_t start = conninfo.find("://") + 3;
    const std::size_t query = conninfo.find('?', start);
    const std::size_t user_end = userInfoEnd(conninfo, start);
    const std::size_t after = user_end == std::string::npos ? start : user_end + 1;
    const std::size_t extra_at = conninfo.find('@', after);
    if (extra_at != std::string::npos && extra_at < query) return kUnencoded;
  }
  for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view key = o->keyword;
    const std::string_view value = o->val;
    if (key == "dbname" && (value.find('=') != std::string_view::npos || value.find("://") != std::string_view::npos))
      return "has a connection string as its dbname: give that string itself";
    if (key == "port" && value.find_first_not_of("0123456789,") != std::string_view::npos) return kUnencoded;
  }
  return {};
}

std::string maskConninfo(const std::string& conninfo) {
  std::string out = conninfo;
  if (isUri(out)) {
    // user:password@, ended where libpq ends it (a '?' may be in the password).
    const std::size_t start = out.find("://") + 3;
    const std::size_t at = userInfoEnd(out, start);
    if (at != std::string::npos) {
      const std::size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
    // password=... among the parameters.
    for (std::size_t p = out.find('?'); p != std::string::npos && p < out.size(); p = out.find('&', p + 1)) {
      if (out.compare(p + 1, 9, "password=") != 0) continue;
      const std::size_t value = p + 10;
      const std::size_t stop = out.find('&', value);
      out.replace(value, (stop == std::string::npos ? out.size() : stop) - value, "***");
    }
    return out;
  }
  // key = value pairs: password = value or 'quoted value'.
  for (std::size_t p = out.find("password"); p != std::string::npos; p = out.find("password", p + 1)) {
    if (p > 0 && out[p - 1] != ' ' && out[p - 1] != '\t') continue;
    std::size_t i = p + 8;
    while (i < out.size() && (out[i] == ' ' || out[i] == '\t')) ++i;
    if (i >= out.size() || out[i] != '=') continue;
    ++i;
    while (i < out.size() && (out[i] == ' ' || out[i] == '\t')) ++i;
    std::size_t stop = i;
    if (stop < out.size() && out[stop] == '\'') {
      ++stop;
      while (stop < out.size() && out[stop] != '\'') stop += out[stop] == '\\' ? 2 : 1;
      stop = std::min(stop + 1, out.size());
    } else {
      while (stop < out.size() && out[stop] != ' ' && out[stop] != '\t') ++stop;
    }
    out.replace(i, stop - i, "***");
  }
  return out;
}

std::string conninfoForDisplay(const std::string& conninfo) {
  const auto options = parse(conninfo);
  if (!options) return "postgresql://(unparsable connection string)";
  // One that libpq reads otherwise than meant may hold a password in its host,
  // port or database (conninfoProblem).
  if (!conninfoProblem(conninfo).empty()) return "postgresql://(unusable connection string)";
  std::string user, host, port, dbname;
  for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view key = o->keyword;
    if (key == "user") user = o->val;
    if (key == "host" || (key == "hostaddr" && host.empty())) host = o->val;
    if (key == "port") port = o->val;
    if (key == "dbname") dbname = o->val;
  }
  return fmt::format("postgresql://{}{}{}{}/{}", user, user.empty() ? "" : "@", host, port.empty() ? "" : ":" + port,
                     dbname);
}

}  // namespace mews::journal
