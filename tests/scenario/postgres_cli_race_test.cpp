// The CLI writing to a PostgreSQL journal beside a running relay
// (app/cli_support.cpp applyChange): both run READ COMMITTED, and a row that
// another transaction changed while a statement waited for its lock is
// re-checked against that statement's outer WHERE only, not against the
// subquery that picked it. So a replay, retarget or purge chosen by a subquery
// must say its states outside the subquery too, or it acts on a row the relay
// claimed meanwhile (a second send while the first is in flight, a purge of
// work being sent), and the relay's prune must, or it deletes a delivery a
// replay just made pending again (the replay reported, then silently gone).
// Each case holds the first writer's transaction open until the second is
// seen waiting for the row lock (pg_stat_activity), then commits it.
// PostgreSQL only (a SQLite journal has one writer).
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <functional>
#include <thread>

#include "batch/payload.h"
#include "journal/journal.h"
#include "journal/moves.h"
#include "journal/reports.h"
#include "journal/queue.h"
#include "support/test_support.h"

using namespace mews;
using namespace mews::journal;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kNowMs = 1'795'860'000'000;

// One batch with one delivery for `target`; returns the delivery's id.
std::int64_t oneDelivery(Journal& journal, const std::string& target) {
  IncomingBatch batch;
  batch.received_at_ms = kNowMs - 60'000;
  batch.content_type = "application/json";
  batch.body = test::sample("general.json");
  batch.summary = batch::parseBatch(batch.body).value();
  batch.deliveries = {{target, std::nullopt}};
  Transaction transaction(journal.db());
  const std::int64_t batch_id = journal.insertBatch(batch);
  transaction.commit();
  Statement select(journal.db(), "SELECT id FROM deliveries WHERE batch_id = ?");
  select.bind(1, batch_id);
  REQUIRE(select.step());
  return select.columnInt(0);
}

// `first` runs in a transaction left open until `second` (another
// connection, another thread, its own transaction) waits for a row lock;
// then the first commits. Returns what `second` returned.
std::int64_t secondWaitsForFirst(const JournalLocation& location, const std::function<void(Journal&)>& first,
                                 const std::function<std::int64_t(Journal&)>& second) {
  Journal holder(location, {});
  Journal changer(location, {});
  Journal watcher(location, {0, true});
  const std::int64_t changer_pid = changer.db().queryInt("SELECT pg_backend_pid()");
  std::int64_t changed = -1;
  std::string error;
  bool waited = false;
  {
    Transaction held(holder.db());
    first(holder);
    std::thread thread([&] {
      try {
        Transaction transaction(changer.db());
        changed = second(changer);
        transaction.commit();
      } catch (const std::exception& e) {
        error = e.what();
      }
    });
    waited = test::waitUntil(
        [&] {
          return watcher.db().queryInt(
                     fmt::format("SELECT count(*) FROM pg_stat_activity WHERE pid = {} AND wait_event_type = 'Lock'",
                                 changer_pid)) == 1;
        },
        5s);
    held.commit();
    thread.join();
  }
  CHECK(error == "");
  CHECK(waited);
  return changed;
}

std::string stateOf(Journal& journal, std::int64_t delivery_id) {
  Statement select(journal.db(), "SELECT state || ' ' || target FROM deliveries WHERE id = ?");
  select.bind(1, delivery_id);
  return select.step() ? select.columnText(0) : std::string("gone");
}

// The relay claims a fresh delivery to `target` first; `change` (the CLI's)
// waits for that claim and must then leave the row alone: 0 rows, still in flight.
void expectClaimKept(const JournalLocation& location, Journal& journal, const std::string& target,
                     const std::function<std::int64_t(Journal&)>& change) {
  const std::int64_t id = oneDelivery(journal, target);
  const auto changed = secondWaitsForFirst(
      location, [&](Journal& relay) { REQUIRE(claimDelivery(relay, id, kNowMs)); }, change);
  CHECK(changed == 0);
  CHECK(stateOf(journal, id) == "in_flight " + target);
}

}  // namespace

TEST_CASE("replay --since leaves alone a delivery the relay claimed while the replay waited for it") {
  REQUIRE(test::onPostgres());
  test::TempDir dir;
  const auto location = test::journalAt(dir.file("replay.db"));
  Journal journal(location, {});
  expectClaimKept(location, journal, "pms",
                  [&](Journal& cli) { return replayReceived(cli, "pms", 0, std::nullopt, kNowMs, false); });
}

TEST_CASE("retarget and purge of a removed target's work leave alone a delivery claimed meanwhile") {
  REQUIRE(test::onPostgres());
  test::TempDir dir;
  const auto location = test::journalAt(dir.file("removed.db"));
  Journal journal(location, {});
  expectClaimKept(location, journal, "old",
                  [&](Journal& cli) { return retargetWork(cli, "old", "new", kNowMs, false); });
  expectClaimKept(location, journal, "gone", [&](Journal& cli) { return purgeTargetWork(cli, "gone", false); });
}

TEST_CASE("the relay's prune keeps a delivered row that a replay made pending while the prune waited for it") {
  REQUIRE(test::onPostgres());
  test::TempDir dir;
  const auto location = test::journalAt(dir.file("prune.db"));
  Journal journal(location, {});
  const std::int64_t id = oneDelivery(journal, "pms");
  journal.db().exec("UPDATE deliveries SET state = 'delivered'");
  // Everything is older than this cutoff: the prune would take the row and its batch.
  const std::int64_t cutoff = kNowMs + 86'400'000;
  const auto pruned = secondWaitsForFirst(
      location, [&](Journal& cli) { CHECK(replayReceived(cli, "pms", 0, std::nullopt, kNowMs, false) == 1); },
      [&](Journal& relay) { return static_cast<std::int64_t>(pruneDelivered(relay, cutoff, 500)); });
  CHECK(pruned == 0);
  CHECK(stateOf(journal, id) == "pending pms");
}
