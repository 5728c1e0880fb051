// A journal made by the previous release (schema 4, tests/data/journal-v4.db:
// written by mews-relay 1b5965f from the Mews samples, with a delivered batch,
// a dead letter in event mode and an unknown batch) opens in this binary,
// migrates forward, and reads as before: the events that were rows are now
// the `events` view over the stored bodies, with the same values.
#include <doctest/doctest.h>

#include <filesystem>

#include "journal/journal.h"
#include "journal/migrations.h"
#include "journal/moves.h"
#include "journal/reports.h"
#include "support/test_support.h"

using namespace mews;
using namespace mews::journal;

namespace {

std::string copyOfV4(const test::TempDir& dir) {
  const std::string path = dir.file("relay.db");
  std::filesystem::copy_file(std::string(MEWS_TEST_DATA_DIR) + "/journal-v4.db", path);
  return path;
}

std::vector<std::string> rows(Journal& journal, const std::string& sql) {
  std::vector<std::string> out;
  Statement select(journal.db(), sql);
  while (select.step()) out.push_back(select.columnText(0));
  return out;
}

}  // namespace

TEST_CASE("a schema 4 journal migrates forward with its data") {
  test::TempDir dir;
  const std::string path = copyOfV4(dir);
  {
    Database before(path, Database::Mode::ReadOnly);
    REQUIRE(schemaVersion(before) == 4);
  }
  Journal journal(path, {});
  CHECK(schemaVersion(journal.db()) == latestSchemaVersion());

  // The six events the previous release stored as rows, now read from the bodies.
  CHECK(rows(journal,
             "SELECT batch_id || '|' || seq || '|' || discriminator || '|' || coalesce(entity_id, '-')"
             " FROM events ORDER BY batch_id, seq") ==
        std::vector<std::string>{"1|0|ServiceOrderUpdated|bfee2c44-1f84-4326-a862-5289598f6e2d",
                                 "1|1|ResourceUpdated|7cccbdc6-73cf-4cd4-8056-6fd00f4d9699",
                                 "1|2|MessageAdded|4bfe4675-98a9-4428-9ea9-ae5300dbaa93",
                                 "1|3|CustomerAdded|c2f1d888-232e-49eb-87ac-5f75363af13b",
                                 "1|4|CustomerUpdated|b3ce0fd7-a715-4bfc-969e-ef7a4822963c",
                                 "2|0|IntegrationCreated|9e5e84e9-974d-4f16-9662-ab2200f27cb1"});
  CHECK(rows(journal, "SELECT target || ':' || state FROM deliveries ORDER BY id") ==
        std::vector<std::string>{"ok:delivered", "refuses:dead", "ok:delivered", "ok:delivered"});
  CHECK(rows(journal, "SELECT event_types || ':' || reason FROM dead_letters") ==
        std::vector<std::string>{"CustomerAdded:rejected"});
  CHECK(rows(journal, "SELECT name FROM sqlite_schema WHERE name = 'batches_received_at'").empty());

  // What `status` counts.
  const auto totals = journalTotals(journal);
  CHECK(totals.batches == 3);
  CHECK(totals.events == 6);
  CHECK(totals.dead_letters == 1);
}

TEST_CASE("the migrated journal takes new batches and keeps no event rows for them") {
  test::TempDir dir;
  const std::string path = copyOfV4(dir);
  Journal journal(path, {});
  IncomingBatch batch;
  batch.received_at_ms = 1'795'860'000'000;
  batch.body = test::generalBatch(3, "CustomerAdded");
  batch.summary.kind = BatchKind::General;
  for (int i = 0; i < 3; ++i) batch.summary.events.push_back({"CustomerAdded", std::nullopt});
  batch.deliveries.push_back({"ok", std::nullopt});
  std::int64_t id = 0;
  {
    Transaction transaction(journal.db());
    id = journal.insertBatch(batch);
    transaction.commit();
  }
  CHECK(id == 4);
  CHECK(journal.count("events") == 9);
  CHECK(journal.db().queryInt("SELECT count(*) FROM events WHERE batch_id = 4 AND discriminator = 'CustomerAdded'") ==
        3);
  CHECK(journal.db().queryInt("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'events'") == 0);
}
