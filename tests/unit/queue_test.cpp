// The delivery state machine of journal/queue.h, move by move, against a real
// journal file: claim, record attempt (each outcome), retry scheduling,
// expiry, release, and the operator's replay and purge.
#include <doctest/doctest.h>

#include "common/clock.h"
#include "journal/journal.h"
#include "journal/moves.h"
#include "journal/queue.h"
#include "journal/reports.h"
#include "support/test_support.h"

using namespace mews;
using namespace mews::journal;

namespace {

constexpr std::int64_t kT0 = 1'795'860'000'000;  // 2026-11-28T10:00:00Z

struct Fixture {
  test::TempDir dir;
  Journal journal{test::journalAt(dir.file("relay.db")), {}};

  // One General batch received at `received_ms` with one delivery per target.
  std::int64_t receive(std::int64_t received_ms, const std::vector<std::string>& targets = {"pms"}) {
    IncomingBatch batch;
    batch.received_at_ms = received_ms;
    batch.content_type = "application/json";
    batch.body = test::generalBatch(1);
    batch.summary.kind = BatchKind::General;
    batch.summary.events.push_back({"ReservationUpdated", std::nullopt});
    for (const auto& target : targets) batch.deliveries.push_back({target, std::nullopt});
    Transaction transaction(journal.db());
    const std::int64_t batch_id = journal.insertBatch(batch);
    transaction.commit();
    return batch_id;
  }

  std::string stateOf(std::int64_t delivery_id) {
    Statement select(journal.db(), "SELECT state FROM deliveries WHERE id = ?");
    select.bind(1, delivery_id);
    REQUIRE(select.step());
    return select.columnText(0);
  }

  std::int64_t intOf(const std::string& sql, std::int64_t id) {
    Statement select(journal.db(), sql);
    select.bind(1, id);
    REQUIRE(select.step());
    return select.columnInt(0);
  }

  std::vector<std::int64_t> dueIds(std::int64_t now_ms, const std::string& target = "pms") {
    std::vector<std::int64_t> ids;
    for (const auto& due : selectDue(journal, target, now_ms, 100)) ids.push_back(due.id);
    return ids;
  }

  AttemptRecord attempt(std::int64_t delivery_id, AttemptOutcome outcome, std::int64_t now_ms) {
    AttemptRecord record;
    record.delivery_id = delivery_id;
    record.target = "pms";
    record.started_ms = now_ms;
    record.duration_ms = 5;
    record.outcome = outcome;
    record.now_ms = now_ms;
    return record;
  }
};

std::string name(DeliveryState state) {
  return std::string(stateName(state));
}

}  // namespace

TEST_CASE("names: one per state and outcome, as the schema's CHECK constraints spell them") {
  CHECK(name(DeliveryState::Pending) == "pending");
  CHECK(name(DeliveryState::InFlight) == "in_flight");
  CHECK(name(DeliveryState::RetryWait) == "retry_wait");
  CHECK(name(DeliveryState::Delivered) == "delivered");
  CHECK(name(DeliveryState::Dead) == "dead");
  // And read back: a row's state is the enum wherever it is shown.
  for (const auto state : {DeliveryState::Pending, DeliveryState::InFlight, DeliveryState::RetryWait,
                           DeliveryState::Delivered, DeliveryState::Dead})
    CHECK(stateNamed(stateName(state)) == state);
  CHECK_THROWS_AS(stateNamed("replayed"), std::invalid_argument);
  CHECK(outcomeName(AttemptOutcome::ProbeFailed) == "probe_failed");
  CHECK(kAttemptOutcomeCount == 4);
  CHECK(sqlStates({DeliveryState::Pending, DeliveryState::RetryWait}) == "('pending', 'retry_wait')");
  // Every name is accepted by the journal's schema.
  Fixture f;
  const auto batch = f.receive(kT0);
  for (const auto state : {DeliveryState::Pending, DeliveryState::InFlight, DeliveryState::RetryWait,
                           DeliveryState::Delivered, DeliveryState::Dead}) {
    Statement update(f.journal.db(), "UPDATE deliveries SET state = ? WHERE batch_id = ?");
    update.bind(1, stateName(state)).bind(2, batch).run();
    CHECK(f.stateOf(1) == name(state));
  }
}

TEST_CASE("claim: pending or retry_wait once due -> in_flight, once") {
  Fixture f;
  f.receive(kT0, {"pms", "crm"});
  CHECK(f.dueIds(kT0 - 1).empty());  // not before it was received
  REQUIRE(f.dueIds(kT0) == std::vector<std::int64_t>{1});
  CHECK(claimDelivery(f.journal, 1, kT0));
  CHECK(f.stateOf(1) == name(DeliveryState::InFlight));
  CHECK_FALSE(claimDelivery(f.journal, 1, kT0));  // someone else had it: not an error
  CHECK(f.dueIds(kT0).empty());
  CHECK(f.stateOf(2) == name(DeliveryState::Pending));  // the other target's row is its own
}

TEST_CASE("record attempt: each outcome moves the in-flight row and keeps the attempt") {
  Fixture f;
  for (int i = 0; i < 4; ++i) f.receive(kT0);
  for (std::int64_t id = 1; id <= 4; ++id) REQUIRE(claimDelivery(f.journal, id, kT0));

  SUBCASE("delivered") {
    auto record = f.attempt(1, AttemptOutcome::Delivered, kT0 + 10);
    record.status = 200;
    CHECK(recordAttempt(f.journal, record));
    CHECK(f.stateOf(1) == name(DeliveryState::Delivered));
    CHECK(f.intOf("SELECT attempts FROM deliveries WHERE id = ?", 1) == 1);
    CHECK_FALSE(recordAttempt(f.journal, record));  // no longer in flight
    CHECK(f.intOf("SELECT count(*) FROM attempts WHERE delivery_id = ?", 1) == 1);
  }
  SUBCASE("retry: retry_wait, due at next_due_ms, then claimable again") {
    auto record = f.attempt(2, AttemptOutcome::Retry, kT0 + 10);
    record.status = 503;
    record.error = "HTTP 503";
    record.next_due_ms = kT0 + 60'000;
    CHECK(recordAttempt(f.journal, record));
    CHECK(f.stateOf(2) == name(DeliveryState::RetryWait));
    CHECK(f.intOf("SELECT attempts FROM deliveries WHERE id = ?", 2) == 1);
    CHECK(f.dueIds(kT0 + 59'999).empty());
    CHECK(nextDueMs(f.journal, "pms") == kT0 + 60'000);
    REQUIRE(f.dueIds(kT0 + 60'000) == std::vector<std::int64_t>{2});
    CHECK(claimDelivery(f.journal, 2, kT0 + 60'000));
    CHECK(f.stateOf(2) == name(DeliveryState::InFlight));
  }
  SUBCASE("probe failed: pending again, no attempt spent") {
    auto record = f.attempt(3, AttemptOutcome::ProbeFailed, kT0 + 10);
    record.spends_attempt = false;
    record.next_due_ms = kT0;
    CHECK(recordAttempt(f.journal, record));
    CHECK(f.stateOf(3) == name(DeliveryState::Pending));
    CHECK(f.intOf("SELECT attempts FROM deliveries WHERE id = ?", 3) == 0);
    CHECK(f.dueIds(kT0) == std::vector<std::int64_t>{3});
  }
  SUBCASE("dead: a dead letter with the reason") {
    auto record = f.attempt(4, AttemptOutcome::Dead, kT0 + 10);
    record.error = "cannot build the request: stored batch body does not parse";
    record.dead_reason = DeadReason::Rejected;
    CHECK(recordAttempt(f.journal, record));
    CHECK(f.stateOf(4) == name(DeliveryState::Dead));
    const auto letters = listDeadLetters(f.journal, {});
    REQUIRE(letters.size() == 1);
    CHECK(letters[0].reason == deadReasonName(DeadReason::Rejected));
    CHECK(letters[0].last_error == record.error);
    CHECK(letters[0].state == DeliveryState::Dead);
  }
}

TEST_CASE("expiry: waiting work older than max_age dies; work in flight does not") {
  Fixture f;
  f.receive(kT0);
  f.receive(kT0);
  f.receive(kT0 + 3'600'000);
  REQUIRE(claimDelivery(f.journal, 2, kT0));
  CHECK(expireOld(f.journal, "pms", {}, kT0 + 1, kT0 + 7'200'000, 100) == 1);
  CHECK(f.stateOf(1) == name(DeliveryState::Dead));
  CHECK(f.stateOf(2) == name(DeliveryState::InFlight));
  CHECK(f.stateOf(3) == name(DeliveryState::Pending));
  const auto letters = listDeadLetters(f.journal, {});
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].reason == deadReasonName(DeadReason::MaxAge));
  CHECK(letters[0].last_error == "not delivered within max_age");
}

TEST_CASE("release: in_flight -> pending in receive order, no attempt spent; all, or the given ones") {
  Fixture f;
  for (int i = 0; i < 3; ++i) f.receive(kT0 + i);
  for (std::int64_t id = 1; id <= 3; ++id) REQUIRE(claimDelivery(f.journal, id, kT0 + 100));
  CHECK(releaseInFlight(f.journal, kT0 + 200, {2}) == 1);
  CHECK(f.stateOf(2) == name(DeliveryState::Pending));
  CHECK(f.stateOf(1) == name(DeliveryState::InFlight));
  CHECK(releaseInFlight(f.journal, kT0 + 300) == 2);  // start-up: everything a previous process left
  CHECK(f.dueIds(kT0 + 300) == std::vector<std::int64_t>{1, 2, 3});
  CHECK(f.intOf("SELECT sum(attempts) FROM deliveries WHERE id >= ?", 1) == 0);
  CHECK(releaseInFlight(f.journal, kT0 + 400) == 0);
}

TEST_CASE("replay and purge: the operator's moves") {
  Fixture f;
  f.receive(kT0);
  f.receive(kT0);
  for (std::int64_t id = 1; id <= 2; ++id) {
    REQUIRE(claimDelivery(f.journal, id, kT0));
    auto record = f.attempt(id, AttemptOutcome::Dead, kT0 + 10);
    record.status = 400;
    REQUIRE(recordAttempt(f.journal, record));
  }
  const auto letters = listDeadLetters(f.journal, {});
  REQUIRE(letters.size() == 2);

  // dead -> pending: a fresh budget and max_age window.
  CHECK(replayDeadLetters(f.journal, {letters[0].id}, kT0 + 1'000, /*dry_run=*/false) == 1);
  const std::int64_t replayed = letters[0].delivery_id;
  CHECK(f.stateOf(replayed) == name(DeliveryState::Pending));
  CHECK(f.intOf("SELECT attempts FROM deliveries WHERE id = ?", replayed) == 0);
  CHECK(replayDeadLetters(f.journal, {letters[0].id}, kT0 + 1'000, false) == 0);  // no longer dead
  CHECK(listDeadLetters(f.journal, {}).front().state != DeliveryState::Dead);

  // Delivered after the replay: it leaves the dead letters.
  REQUIRE(claimDelivery(f.journal, replayed, kT0 + 1'000));
  REQUIRE(recordAttempt(f.journal, f.attempt(replayed, AttemptOutcome::Delivered, kT0 + 1'010)));
  CHECK(listDeadLetters(f.journal, {}).size() == 1);

  // --received-since: every state but in_flight, delivered ones too.
  CHECK(replayReceived(f.journal, "pms", kT0, std::nullopt, kT0 + 2'000, /*dry_run=*/false) == 2);
  CHECK(f.stateOf(1) == name(DeliveryState::Pending));
  CHECK(f.stateOf(2) == name(DeliveryState::Pending));
  REQUIRE(claimDelivery(f.journal, 1, kT0 + 2'000));
  CHECK(replayReceived(f.journal, "pms", kT0, std::nullopt, kT0 + 3'000, false) == 1);
  CHECK(f.stateOf(1) == name(DeliveryState::InFlight));

  // purge: every letter (the one replayed by --received-since too), and the
  // deliveries still dead; a replayed delivery stays, as live work.
  REQUIRE(claimDelivery(f.journal, 2, kT0 + 3'000));
  auto record = f.attempt(2, AttemptOutcome::Dead, kT0 + 3'010);
  record.dead_reason = DeadReason::MaxAttempts;
  REQUIRE(recordAttempt(f.journal, record));
  CHECK(purgeDeadMatching(f.journal, {}, kT0 + 3'010, /*dry_run=*/true) == 2);
  CHECK(f.journal.count("dead_letters") == 2);
  CHECK(purgeDeadMatching(f.journal, {}, kT0 + 3'010, /*dry_run=*/false) == 2);
  CHECK(f.journal.count("dead_letters") == 0);
  CHECK(f.intOf("SELECT count(*) FROM deliveries WHERE id = ?", 2) == 0);
  CHECK(f.stateOf(1) == name(DeliveryState::InFlight));
}
