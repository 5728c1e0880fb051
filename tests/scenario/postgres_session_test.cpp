// The serving session (the writer's, which holds the advisory lock) asks the
// server to notice within seconds a relay that vanished without closing its
// connection (its host or the network gone). Without it the server keeps the
// session, and the lock, for its TCP keepalive's OS default of 2 hours, and
// the relay reconnecting after the blip is refused as "in use by another
// relay": 503 for every webhook, for hours. And a COMMIT of a transaction a
// failed statement aborted throws (the server answers it with ROLLBACK and no
// error). PostgreSQL only.
#include <doctest/doctest.h>

#include "journal/journal.h"
#include "journal/writer.h"
#include "support/test_support.h"

using namespace mews;
using namespace mews::journal;

namespace {

std::int64_t serverSetting(JournalWriter& writer, const std::string& name) {
  const auto outcome =
      writer
          .submit([name](Journal& journal) {
            Statement select(journal.db(), "SELECT CAST(setting AS BIGINT) FROM pg_settings WHERE name = ?");
            select.bind(1, name);
            return select.step() ? select.columnInt(0) : std::int64_t{-1};
          })
          .get();
  REQUIRE(outcome.committed());
  return outcome.value;
}

}  // namespace

TEST_CASE("the serving session has the server's keepalives and user timeout set short") {
  REQUIRE(test::onPostgres());
  test::TempDir dir;
  JournalWriter writer(test::writerAt(dir.file("keepalive.db")));
  CHECK(serverSetting(writer, "tcp_keepalives_idle") == 5);  // 0 before: the OS default, 2 hours
  CHECK(serverSetting(writer, "tcp_keepalives_interval") == 2);
  CHECK(serverSetting(writer, "tcp_keepalives_count") == 3);
  CHECK(serverSetting(writer, "tcp_user_timeout") == 15000);
  writer.stop();
}

TEST_CASE("a COMMIT after a failed statement throws rather than reporting the rollback as a commit") {
  REQUIRE(test::onPostgres());
  test::TempDir dir;
  const auto location = test::journalAt(dir.file("aborted.db"));
  Journal journal(location, {});
  {
    Transaction transaction(journal.db());
    journal.db().exec("INSERT INTO meta (key, value) VALUES ('kept_if_committed', 'x')");
    CHECK_THROWS_AS(journal.db().exec("INSERT INTO meta (key, value) VALUES ('kept_if_committed', 'again')"),
                    StorageError);
    // The server answers this COMMIT with ROLLBACK: it must not return as if it committed.
    CHECK_THROWS_AS(transaction.commit(), StorageError);
  }
  CHECK_FALSE(journal.db().inTransaction());
  CHECK(journal.db().queryInt("SELECT count(*) FROM meta WHERE key = 'kept_if_committed'") == 0);
}
