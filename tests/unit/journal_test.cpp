#include <doctest/doctest.h>

#include <fmt/format.h>

#include <array>
#include <thread>

#include "batch/payload.h"
#include "journal/journal.h"
#include "journal/migrations.h"
#include "journal/queue.h"
#include "journal/writer.h"
#include "support/test_support.h"

using namespace mews;
using namespace mews::journal;

namespace {

IncomingBatch batchOf(const std::string& body, std::vector<PlannedDelivery> deliveries = {{"pms", std::nullopt}}) {
  IncomingBatch batch;
  batch.received_at_ms = 1'795'860'000'123;
  batch.content_type = "application/json";
  batch.body = body;
  batch.summary = batch::parseBatch(body).value();
  batch.deliveries = std::move(deliveries);
  return batch;
}

const std::vector<Migration> kTwoMigrations{
    {1, "first", "CREATE TABLE a (x INTEGER);"},
    {2, "second", "ALTER TABLE a ADD COLUMN y TEXT; INSERT INTO a (x, y) VALUES (1, 'kept');"},
};

}  // namespace

TEST_CASE("a fresh journal is created at the latest schema, WAL and synchronous=FULL" * doctest::test_suite("sqlite")) {
  test::TempDir dir;
  Journal journal(test::journalAt(dir.file("j.db")), {});
  CHECK(schemaVersion(journal.db()) == latestSchemaVersion());
  CHECK(latestSchemaVersion() >= 1);
  Statement mode(journal.db(), "PRAGMA journal_mode");
  REQUIRE(mode.step());
  CHECK(mode.columnText(0) == "wal");
  CHECK(journal.db().queryInt("PRAGMA synchronous") == 2);  // FULL
  CHECK(journal.journalId().size() == 12);
  // One row per migration file (versions may have gaps while branches merge).
  CHECK(journal.db().queryInt("SELECT count(*) FROM schema_migrations") ==
        static_cast<std::int64_t>(embeddedMigrations().size()));
}

TEST_CASE("migrations apply in order on an existing file and keep its data" * doctest::test_suite("sqlite")) {
  test::TempDir dir;
  {
    Database db(dir.file("m.db"), Database::Mode::ReadWrite);
    CHECK(migrate(db, {kTwoMigrations[0]}) == 1);
    db.exec("INSERT INTO a (x) VALUES (42)");
  }
  Database db(dir.file("m.db"), Database::Mode::ReadWrite);
  CHECK(migrate(db, kTwoMigrations) == 2);
  CHECK(db.queryInt("SELECT count(*) FROM a") == 2);
  CHECK(db.queryInt("SELECT x FROM a WHERE y IS NULL") == 42);
  CHECK(migrate(db, kTwoMigrations) == 2);  // idempotent
}

TEST_CASE("a failing migration leaves the previous version intact" * doctest::test_suite("sqlite")) {
  test::TempDir dir;
  Database db(dir.file("m.db"), Database::Mode::ReadWrite);
  migrate(db, {kTwoMigrations[0]});
  const std::vector<Migration> broken{kTwoMigrations[0],
                                      {2, "broken", "ALTER TABLE a ADD COLUMN z; SELECT * FROM nope;"}};
  CHECK_THROWS_AS(migrate(db, broken), SqliteError);
  // Named by its step, not by the first bytes of its SQL.
  CHECK_THROWS_WITH(migrate(db, broken), doctest::Contains("schema step 2 (broken) failed, nothing changed: "));
  CHECK(schemaVersion(db) == 1);
  CHECK_THROWS(db.exec("SELECT z FROM a"));
}

TEST_CASE("a journal newer than the binary is refused" * doctest::test_suite("sqlite")) {
  test::TempDir dir;
  {
    Database db(dir.file("n.db"), Database::Mode::ReadWrite);
    db.exec("PRAGMA user_version = 999");
  }
  try {
    Journal journal(dir.file("n.db"), {});
    FAIL("expected refusal");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("newer than this binary") != std::string::npos);
  }
}

TEST_CASE("a batch is stored with its bytes, events and deliveries") {
  test::TempDir dir;
  Journal journal(test::journalAt(dir.file("j.db")), {});
  const std::string body = test::sample("general.json");
  Transaction transaction(journal.db());
  const auto id = journal.insertBatch(batchOf(body, {{"pms", std::nullopt}, {"crm", 3}}));
  transaction.commit();
  Statement row(journal.db(),
                "SELECT received_at, kind, enterprise_id, integration_id, event_count, body FROM batches WHERE id = ?");
  row.bind(1, id);
  REQUIRE(row.step());
  CHECK(row.columnText(0) == "2026-11-28T10:00:00.123Z");
  CHECK(row.columnText(1) == "general");
  CHECK(row.columnText(2) == "851df8c8-90f2-4c4a-8e01-a4fc46b25178");
  CHECK(row.columnText(3) == "c8bee838-7fb1-4f4e-8fac-ac87008b2f90");
  CHECK(row.columnInt(4) == 5);
  CHECK(row.columnText(5) == body);
  CHECK(journal.count("events") == 5);
  CHECK(journal.db().queryInt("SELECT count(*) FROM deliveries WHERE state = 'pending'") == 2);
  CHECK(journal.db().queryInt("SELECT event_seq FROM deliveries WHERE target = 'crm'") == 3);
}

TEST_CASE("group commit: concurrent submitters all commit, in fewer transactions than jobs") {
  test::TempDir dir;
  JournalWriter writer(test::writerAt(dir.file("g.db")));
  const std::string body = test::sample("general.json");
  constexpr int kThreads = 16;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  std::atomic<int> committed{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        auto batch = std::make_shared<IncomingBatch>(batchOf(body));
        const auto outcome = writer.submit([batch](Journal& j) { return j.insertBatch(*batch); }).get();
        if (outcome.committed() && outcome.value > 0) committed.fetch_add(1);
      }
    });
  for (auto& thread : threads) thread.join();
  CHECK(committed.load() == kThreads * kPerThread);
  const auto stats = writer.stats();
  CHECK(stats.jobs_committed == kThreads * kPerThread);
  CHECK(stats.commits < stats.jobs_committed);
  writer.stop();
  Journal check(test::journalAt(dir.file("g.db")), {});
  CHECK(check.count("batches") == kThreads * kPerThread);
  CHECK(check.count("events") == kThreads * kPerThread * 5);
}

TEST_CASE("a job that fails is rolled back alone; the others in its group commit") {
  test::TempDir dir;
  JournalWriter writer(test::writerAt(dir.file("f.db")));
  auto good = std::make_shared<IncomingBatch>(batchOf(test::sample("general.json")));
  auto first = writer.submit([good](Journal& j) { return j.insertBatch(*good); });
  auto bad = writer.submit([good](Journal& j) -> std::int64_t {
    j.insertBatch(*good);
    j.db().exec("INSERT INTO no_such_table VALUES (1)");
    return 0;
  });
  auto last = writer.submit([good](Journal& j) { return j.insertBatch(*good); });
  CHECK(first.get().committed());
  const auto failed = bad.get();
  CHECK(failed.status == WriteOutcome::Status::Rejected);
  CHECK(last.get().committed());
  writer.stop();
  Journal check(test::journalAt(dir.file("f.db")), {});
  CHECK(check.count("batches") == 2);
  CHECK(check.count("events") == 10);
}

TEST_CASE("a full journal fails the write, keeps nothing half-written and recovers" * doctest::test_suite("sqlite")) {
  test::TempDir dir;
  // 1 MiB cap; 300 KiB bodies fill it within a few batches.
  JournalWriter writer({dir.file("full.db"), {1 << 20, false}, 0, 512});
  const std::string big = "{\"Pad\":\"" + std::string(300 * 1024, 'x') + "\"}";
  auto batch = std::make_shared<IncomingBatch>(batchOf(big));
  int committed = 0;
  WriteOutcome outcome;
  for (int i = 0; i < 20; ++i) {
    outcome = writer.submit([batch](Journal& j) { return j.insertBatch(*batch); }).get();
    if (!outcome.committed()) break;
    ++committed;
  }
  CHECK(committed >= 1);
  CHECK(outcome.status == WriteOutcome::Status::StorageFailure);
  CHECK(outcome.error.find("full") != std::string::npos);
  // Small writes still fit: the writer is not wedged by a failure.
  auto small = std::make_shared<IncomingBatch>(batchOf("{}"));
  CHECK(writer.submit([small](Journal& j) { return j.insertBatch(*small); }).get().committed());
  writer.stop();
  Journal check(dir.file("full.db"), {});
  CHECK(check.count("batches") == committed + 1);
  CHECK(check.db().queryInt("SELECT count(*) FROM deliveries") == committed + 1);
  Statement integrity(check.db(), "PRAGMA integrity_check");
  REQUIRE(integrity.step());
  CHECK(integrity.columnText(0) == "ok");
}

TEST_CASE("below the free-disk watermark nothing is written" * doctest::test_suite("sqlite")) {
  test::TempDir dir;
  JournalWriter writer({dir.file("w.db"), {}, 1ULL << 60, 512});  // more free space than any disk has
  auto batch = std::make_shared<IncomingBatch>(batchOf("{}"));
  const auto outcome = writer.submit([batch](Journal& j) { return j.insertBatch(*batch); }).get();
  CHECK(outcome.status == WriteOutcome::Status::StorageFailure);
  CHECK(outcome.error.find("min_free") != std::string::npos);
  writer.stop();
  Journal check(dir.file("w.db"), {});
  CHECK(check.count("batches") == 0);
}

TEST_CASE("after stop, submissions are refused, not lost silently") {
  test::TempDir dir;
  JournalWriter writer(test::writerAt(dir.file("s.db")));
  writer.stop();
  auto batch = std::make_shared<IncomingBatch>(batchOf("{}"));
  const auto outcome = writer.submit([batch](Journal& j) { return j.insertBatch(*batch); }).get();
  CHECK_FALSE(outcome.committed());
}

TEST_CASE("read-only connections see committed data and refuse an unmigrated file" * doctest::test_suite("sqlite")) {
  test::TempDir dir;
  {
    Journal journal(dir.file("r.db"), {});
    Transaction t(journal.db());
    journal.insertBatch(batchOf("{}"));
    t.commit();
  }
  Journal reader(dir.file("r.db"), {0, true});
  CHECK(reader.count("batches") == 1);
  {
    Database empty(dir.file("empty.db"), Database::Mode::ReadWrite);
    empty.exec("CREATE TABLE x (y)");
  }
  CHECK_THROWS_AS(Journal(dir.file("empty.db"), {0, true}), std::runtime_error);
}

TEST_CASE("retention prunes delivered work in steps and keeps what is not delivered") {
  test::TempDir dir;
  Journal journal(test::journalAt(dir.file("p.db")), {});
  // Five old batches (delivered), one old batch with a dead delivery, one recent delivered batch.
  auto insert = [&](std::int64_t received_ms, const char* state) {
    IncomingBatch batch = batchOf(test::sample("general.json"));
    batch.received_at_ms = received_ms;
    Transaction t(journal.db());
    const auto id = journal.insertBatch(batch);
    journal.db()
        .prepare("UPDATE deliveries SET state = ? WHERE batch_id = ?")
        .bind(1, std::string_view(state))
        .bind(2, id)
        .run();
    t.commit();
    return id;
  };
  const std::int64_t day = 86'400'000;
  const std::int64_t now = 1'795'860'000'000;
  for (int i = 0; i < 5; ++i) insert(now - 10 * day, "delivered");
  const auto dead_batch = insert(now - 10 * day, "dead");
  const auto recent = insert(now - day / 2, "delivered");
  int rounds = 0;
  for (int removed = -1; removed != 0 && rounds < 20; ++rounds) {
    Transaction t(journal.db());
    removed = pruneDelivered(journal, now - 7 * day, 2);  // small steps
    t.commit();
  }
  CHECK(rounds > 2);  // it took several small steps
  CHECK(journal.count("batches") == 2);
  CHECK(journal.db().queryInt(fmt::format("SELECT count(*) FROM batches WHERE id IN ({}, {})", dead_batch, recent)) ==
        2);
  CHECK(journal.count("events") == 10);
  CHECK(journal.db().queryInt("SELECT count(*) FROM deliveries") == 2);
}

TEST_CASE("ids are never reused: batches, deliveries and dead letters go on above the highest ever used") {
  test::TempDir dir;
  Journal journal(test::journalAt(dir.file("ids.db")), {});
  const auto insertDead = [&] {
    Transaction transaction(journal.db());
    const std::int64_t batch = journal.insertBatch(batchOf(test::generalBatch(2)));
    const std::int64_t delivery =
        journal.db().queryInt(fmt::format("SELECT max(id) FROM deliveries WHERE batch_id = {}", batch));
    journal.db()
        .prepare(
            "INSERT INTO dead_letters (delivery_id, batch_id, target, event_types, attempts, reason, received_at,"
            " died_at) VALUES (?, ?, 'pms', 'ReservationUpdated', 1, 'rejected', '2026-12-07T10:00:00.000Z',"
            " '2026-12-07T10:00:01.000Z')")
        .bind(1, delivery)
        .bind(2, batch)
        .run();
    const std::int64_t letter = journal.db().queryInt("SELECT max(id) FROM dead_letters");
    transaction.commit();
    return std::array<std::int64_t, 3>{batch, delivery, letter};
  };
  const auto first = insertDead();
  const auto second = insertDead();
  // A quiet week: retention prunes every batch, and with it every delivery and dead letter.
  journal.db().exec("DELETE FROM batches");
  REQUIRE(journal.db().queryInt("SELECT count(*) FROM dead_letters") == 0);
  const auto third = insertDead();
  for (std::size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(second[i] > first[i]);
    CHECK(third[i] > second[i]);
  }
}

TEST_CASE("schema 6 rebuilds a schema 5 journal's id tables with every row; new ids go on above the highest" *
          doctest::test_suite("sqlite")) {
  test::TempDir dir;
  const std::string path = dir.file("v5.db");
  {
    Database db(path, Database::Mode::ReadWrite);
    db.exec("PRAGMA foreign_keys = ON");
    const std::vector<Migration> up_to_5(embeddedMigrations().begin(), embeddedMigrations().begin() + 5);
    REQUIRE(migrate(db, up_to_5) == 5);
    for (int i = 1; i <= 3; ++i) {
      db.exec(fmt::format(
          "INSERT INTO batches (received_at, kind, event_count, body, unrouted) VALUES"
          " ('2026-12-0{0}T10:00:00.000Z', 'general', 1, X'7b7d', 0);"
          "INSERT INTO deliveries (batch_id, target, state, created_at, due_at, updated_at, age_from) VALUES"
          " ({0}, 'pms', 'dead', 'c', 'd', 'u', 'a');"
          "INSERT INTO dead_letters (delivery_id, batch_id, target, event_types, attempts, reason, received_at,"
          " died_at) VALUES ({0}, {0}, 'pms', 'X', 1, 'rejected', 'r', 'd');"
          "INSERT INTO late_commits (batch_id, body_sha256, answered_at) VALUES ({0}, 'digest', 'a');",
          i));
    }
    // The newest of them is pruned before the upgrade: its ids cannot be known.
    db.exec("DELETE FROM batches WHERE id = 3");
  }
  Journal journal(test::journalAt(path), {});
  CHECK(schemaVersion(journal.db()) == latestSchemaVersion());
  CHECK(journal.db().queryInt("SELECT count(*) FROM batches") == 2);
  CHECK(journal.db().queryInt("SELECT count(*) FROM deliveries WHERE state = 'dead' AND age_from = 'a'") == 2);
  CHECK(journal.db().queryInt("SELECT count(*) FROM dead_letters") == 2);
  CHECK(journal.db().queryInt("SELECT count(*) FROM late_commits") == 2);
  CHECK(journal.db().queryInt("SELECT count(*) FROM events") == 0);  // the view is back ('{}' has no Events)
  CHECK(journal.db().queryInt("PRAGMA foreign_keys") == 1);
  Statement violations(journal.db(), "PRAGMA foreign_key_check");
  CHECK_FALSE(violations.step());
  // The rebuilt tables still cascade: a batch takes its delivery, dead letter and late commit along.
  journal.db().exec("DELETE FROM batches WHERE id = 2");
  CHECK(journal.db().queryInt("SELECT count(*) FROM deliveries") == 1);
  CHECK(journal.db().queryInt("SELECT count(*) FROM dead_letters") == 1);
  CHECK(journal.db().queryInt("SELECT count(*) FROM late_commits") == 1);
  // Above the highest id left at the upgrade (2), and never below it again.
  Transaction transaction(journal.db());
  const std::int64_t next = journal.insertBatch(batchOf(test::generalBatch(1)));
  CHECK(next == 3);
  journal.db().exec("DELETE FROM batches WHERE id = 3");
  CHECK(journal.insertBatch(batchOf(test::generalBatch(1))) == 4);
  CHECK(journal.db().queryInt("SELECT max(id) FROM deliveries") == 4);
}

TEST_CASE("schema 6 refuses a journal that already holds a row without its parent, saying where" *
          doctest::test_suite("sqlite")) {
  test::TempDir dir;
  const std::string path = dir.file("orphan.db");
  {
    Database db(path, Database::Mode::ReadWrite);
    const std::vector<Migration> up_to_5(embeddedMigrations().begin(), embeddedMigrations().begin() + 5);
    REQUIRE(migrate(db, up_to_5) == 5);
    // As a DELETE in the sqlite3 shell leaves it (foreign keys are off there).
    db.exec("PRAGMA foreign_keys = OFF");
    db.exec(
        "INSERT INTO deliveries (batch_id, target, state, created_at, due_at, updated_at) VALUES"
        " (99, 'pms', 'pending', 'c', 'd', 'u')");
  }
  CHECK_THROWS_WITH(Journal(test::journalAt(path), {}),
                    doctest::Contains("1 row(s) (the first in deliveries) refer to a row that is gone"));
  Database db(path, Database::Mode::ReadWrite);
  CHECK(schemaVersion(db) == 5);
  CHECK(db.queryInt("SELECT count(*) FROM deliveries") == 1);
}
