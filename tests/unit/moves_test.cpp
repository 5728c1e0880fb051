// journal/moves.h, the operator's moves, on either backend (test::journalAt),
// each against a journal with deliveries in every state (queue.h draws them),
// put there by the ingest's insert and the delivery queue's own moves: a move
// changes exactly the rows in the states it names, gives what it requeues a
// fresh attempt budget and max_age window with the same delivery (so the same
// webhook-id), skips rows that are no longer in the state it names, and with
// dry_run changes nothing and counts what it would change.
#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "journal/moves.h"
#include "journal/queue.h"
#include "journal/reports.h"
#include "support/delivery_rows.h"

using namespace mews;
using namespace mews::journal;
using enum mews::journal::DeliveryState;
using test::kT0;
using test::matching;

namespace {

// One delivery of `target` in each state, received at `received_ms`; the
// queue moved them at received_ms + 10 (the dead one dies then).
std::map<DeliveryState, std::int64_t> oneInEachState(test::DeliveryRows& rows, const std::string& target,
                                                     std::int64_t received_ms) {
  std::map<DeliveryState, std::int64_t> ids;
  for (const auto state : {Pending, RetryWait, InFlight, Delivered, Dead})
    ids[state] = rows.deliveryIn(state, target, received_ms, received_ms + 10);
  return ids;
}

// What a move may change of a delivery: enough to tell "untouched".
struct Snapshot {
  std::string target;
  DeliveryState state = Pending;
  std::int64_t attempts = 0;
  std::string due_at;
  std::string updated_at;
  bool operator==(const Snapshot&) const = default;
};
Snapshot snapshot(test::DeliveryRows& rows, std::int64_t id) {
  const auto d = rows.detail(id);
  return {d.target, d.state, d.attempts_spent, d.due_at, d.updated_at};
}
std::map<std::int64_t, Snapshot> snapshotAll(test::DeliveryRows& rows) {
  std::map<std::int64_t, Snapshot> all;
  Statement select(rows.journal.db(), "SELECT id FROM deliveries ORDER BY id");
  std::vector<std::int64_t> ids;
  while (select.step()) ids.push_back(select.columnInt(0));
  for (const auto id : ids) all[id] = snapshot(rows, id);
  return all;
}

// Requeued by an operator's move at `now_ms`: pending for `target`, due now,
// no attempt spent, a max_age window from now; the same batch and event, so
// the same webhook-id (msg_<journal>_<batch>[_<event>]).
void checkRequeued(test::DeliveryRows& rows, std::int64_t id, const DeliveryDetail& before, const std::string& target,
                   std::int64_t now_ms) {
  CAPTURE(id);
  const auto after = rows.detail(id);
  CHECK(after.state == Pending);
  CHECK(after.target == target);
  CHECK(after.attempts_spent == 0);
  CHECK(after.batch_id == before.batch_id);
  CHECK(after.event_seq == before.event_seq);
  CHECK(after.attempts.size() == before.attempts.size());  // its history stays
  const auto due = rows.due(target, id, now_ms);
  REQUIRE(due.has_value());
  CHECK(due->due_ms == now_ms);
  CHECK(due->age_from_ms == now_ms);  // max_age counts from the replay, not the receipt
  CHECK(due->attempts == 0);
  CHECK_FALSE(rows.due(target, id, now_ms - 1).has_value());
}

}  // namespace

TEST_CASE("replayDeadLetters: dead -> pending with a fresh budget, same delivery; only rows still dead") {
  test::DeliveryRows rows;
  const auto ids = oneInEachState(rows, "pms", kT0);
  const std::int64_t dead = ids.at(Dead);
  const std::int64_t event_dead = rows.deliveryIn(Dead, "pms", kT0, kT0 + 20, DeadReason::MaxAttempts, /*event_seq=*/1);
  const auto before = rows.detail(dead);
  const auto event_before = rows.detail(event_dead);
  REQUIRE(before.attempts_spent == 1);
  const std::vector<std::int64_t> letters{rows.letterOf(dead), rows.letterOf(event_dead), 9'999};
  const auto untouched = snapshotAll(rows);
  const std::int64_t now = kT0 + 86'400'000;

  // dry_run: the count it would requeue (the unknown id is no dead letter), nothing changed.
  CHECK(replayDeadLetters(rows.journal, letters, now, /*dry_run=*/true) == 2);
  CHECK(snapshotAll(rows) == untouched);

  CHECK(replayDeadLetters(rows.journal, letters, now, /*dry_run=*/false) == 2);
  checkRequeued(rows, dead, before, "pms", now);
  checkRequeued(rows, event_dead, event_before, "pms", now);
  CHECK(rows.detail(event_dead).event_seq == 1);
  // The letter stays (showing the delivery pending) until the delivery is delivered.
  CHECK(rows.detail(dead).dead_letter.has_value());
  // Every other state untouched.
  for (const auto state : {Pending, RetryWait, InFlight, Delivered})
    CHECK(snapshot(rows, ids.at(state)) == untouched.at(ids.at(state)));

  // A letter no longer dead is skipped, dry or not: pending again, then in flight.
  CHECK(replayDeadLetters(rows.journal, {letters[0]}, now + 1, true) == 0);
  CHECK(replayDeadLetters(rows.journal, {letters[0]}, now + 1, false) == 0);
  REQUIRE(claimDelivery(rows.journal, dead, now + 2));
  CHECK(replayDeadLetters(rows.journal, {letters[0]}, now + 3, false) == 0);
  CHECK(rows.stateOf(dead) == InFlight);
}

TEST_CASE("replayReceived: [since, until) of one target, every state but in_flight, delivered ones too") {
  test::DeliveryRows rows;
  const std::int64_t since = kT0;
  const std::int64_t until = kT0 + 60'000;
  const auto inside = oneInEachState(rows, "pms", since);    // since itself is inside
  const auto late = oneInEachState(rows, "pms", until - 1);  // the last millisecond inside
  const std::int64_t before_window = rows.deliveryIn(Delivered, "pms", since - 1, since);
  const std::int64_t at_until = rows.deliveryIn(Delivered, "pms", until, until + 10);
  const std::int64_t other_target = rows.deliveryIn(Delivered, "crm", since + 5, since + 10);
  std::map<std::int64_t, DeliveryDetail> before;
  for (const auto& [state, id] : inside) before[id] = rows.detail(id);
  for (const auto& [state, id] : late) before[id] = rows.detail(id);
  const auto untouched = snapshotAll(rows);
  const std::int64_t now = kT0 + 3'600'000;

  CHECK(replayReceived(rows.journal, "pms", since, until, now, /*dry_run=*/true) == 8);
  CHECK(snapshotAll(rows) == untouched);

  CHECK(replayReceived(rows.journal, "pms", since, until, now, /*dry_run=*/false) == 8);
  for (const auto* window : {&inside, &late})
    for (const auto& [state, id] : *window) {
      CAPTURE(stateName(state));
      if (state == InFlight)
        CHECK(snapshot(rows, id) == untouched.at(id));  // a worker may be sending it
      else
        checkRequeued(rows, id, before.at(id), "pms", now);
    }
  CHECK(snapshot(rows, before_window) == untouched.at(before_window));
  CHECK(snapshot(rows, at_until) == untouched.at(at_until));
  CHECK(snapshot(rows, other_target) == untouched.at(other_target));

  // No end: everything received since, the batch at `until` included.
  CHECK(replayReceived(rows.journal, "pms", since, std::nullopt, now + 1, true) == 9);
}

TEST_CASE("retargetDeadLetters: the letter and its delivery follow to the new target; only rows still dead") {
  test::DeliveryRows rows;
  const auto ids = oneInEachState(rows, "old", kT0);
  const std::int64_t dead = ids.at(Dead);
  const std::int64_t other_dead = rows.deliveryIn(Dead, "old", kT0, kT0 + 20);
  const auto before = rows.detail(dead);
  const std::int64_t letter = rows.letterOf(dead);
  const auto untouched = snapshotAll(rows);
  const std::int64_t now = kT0 + 60'000;

  CHECK(retargetDeadLetters(rows.journal, {letter, 9'999}, "new", now, /*dry_run=*/true) == 1);
  CHECK(snapshotAll(rows) == untouched);
  CHECK(rows.detail(dead).dead_letter->target == "old");

  CHECK(retargetDeadLetters(rows.journal, {letter, 9'999}, "new", now, /*dry_run=*/false) == 1);
  checkRequeued(rows, dead, before, "new", now);
  CHECK_FALSE(rows.due("old", dead, now).has_value());
  CHECK(rows.detail(dead).dead_letter->target == "new");
  CHECK(rows.detail(dead).dead_letter->id == letter);
  // The letter not named stays dead where it was, and so does every other row.
  CHECK(snapshot(rows, other_dead) == untouched.at(other_dead));
  CHECK(rows.detail(other_dead).dead_letter->target == "old");
  for (const auto state : {Pending, RetryWait, InFlight, Delivered})
    CHECK(snapshot(rows, ids.at(state)) == untouched.at(ids.at(state)));

  // No longer dead: skipped, and its target stays.
  CHECK(retargetDeadLetters(rows.journal, {letter}, "third", now + 1, true) == 0);
  CHECK(retargetDeadLetters(rows.journal, {letter}, "third", now + 1, false) == 0);
  CHECK(rows.detail(dead).target == "new");
}

TEST_CASE("retargetWork: a removed target's waiting and dead work moves, in-flight and delivered stay") {
  test::DeliveryRows rows;
  const auto old_ids = oneInEachState(rows, "old", kT0);
  const auto pms_ids = oneInEachState(rows, "pms", kT0);
  std::map<DeliveryState, DeliveryDetail> before;
  for (const auto& [state, id] : old_ids) before[state] = rows.detail(id);
  const auto untouched = snapshotAll(rows);
  const std::int64_t now = kT0 + 60'000;

  CHECK(retargetWork(rows.journal, "old", "pms", now, /*dry_run=*/true) == 3);
  CHECK(snapshotAll(rows) == untouched);

  CHECK(retargetWork(rows.journal, "old", "pms", now, /*dry_run=*/false) == 3);
  for (const auto state : {Pending, RetryWait, Dead}) {
    CAPTURE(stateName(state));
    checkRequeued(rows, old_ids.at(state), before.at(state), "pms", now);
  }
  CHECK(rows.detail(old_ids.at(Dead)).dead_letter->target == "pms");
  for (const auto state : {InFlight, Delivered})
    CHECK(snapshot(rows, old_ids.at(state)) == untouched.at(old_ids.at(state)));
  for (const auto& [state, id] : pms_ids) CHECK(snapshot(rows, id) == untouched.at(id));
  // What is left of "old" is what a relay may still be sending, and history.
  CHECK(retargetWork(rows.journal, "old", "pms", now + 1, false) == 0);
}

TEST_CASE("purgeTargetWork: a removed target's waiting and dead work (and letters) deleted; in-flight stays") {
  test::DeliveryRows rows;
  const auto old_ids = oneInEachState(rows, "old", kT0);
  const auto pms_ids = oneInEachState(rows, "pms", kT0);
  const auto untouched = snapshotAll(rows);

  CHECK(purgeTargetWork(rows.journal, "old", /*dry_run=*/true) == 3);
  CHECK(snapshotAll(rows) == untouched);

  CHECK(purgeTargetWork(rows.journal, "old", /*dry_run=*/false) == 3);
  for (const auto state : {Pending, RetryWait, Dead}) CHECK_FALSE(rows.exists(old_ids.at(state)));
  CHECK(countDeadLetters(rows.journal, matching("old")) == 0);
  CHECK(countDeadLetters(rows.journal, matching("pms")) == 1);
  for (const auto state : {InFlight, Delivered})
    CHECK(snapshot(rows, old_ids.at(state)) == untouched.at(old_ids.at(state)));
  for (const auto& [state, id] : pms_ids) CHECK(snapshot(rows, id) == untouched.at(id));
  CHECK(purgeTargetWork(rows.journal, "old", false) == 0);
}

TEST_CASE("purgeDeadMatching: the matching letters died by as_of; a replayed letter keeps its live delivery") {
  test::DeliveryRows rows;
  // Died at kT0 + 10 .. + 100 (the queue's own moves stamp died_at).
  const std::int64_t a = rows.deliveryIn(Dead, "pms", kT0, kT0 + 10, DeadReason::Rejected);
  const std::int64_t b = rows.deliveryIn(Dead, "pms", kT0, kT0 + 20, DeadReason::MaxAttempts);
  const std::int64_t c = rows.deliveryIn(Dead, "crm", kT0, kT0 + 30, DeadReason::Rejected);
  const std::int64_t d = rows.deliveryIn(Dead, "pms", kT0, kT0 + 40, DeadReason::Rejected);
  const std::int64_t e = rows.deliveryIn(Dead, "pms", kT0, kT0 + 100, DeadReason::Rejected);
  const std::int64_t waiting = rows.deliveryIn(RetryWait, "pms", kT0, kT0 + 10);
  REQUIRE(replayDeadLetters(rows.journal, {rows.letterOf(d)}, kT0 + 50, false) == 1);
  const auto untouched = snapshotAll(rows);
  const std::int64_t letters = rows.journal.count("dead_letters");
  REQUIRE(letters == 5);

  SUBCASE("target and reason, as of a time: the letter that died later stays") {
    const auto query = matching("pms", "rejected");
    CHECK(purgeDeadMatching(rows.journal, query, kT0 + 50, /*dry_run=*/true) == 2);
    CHECK(snapshotAll(rows) == untouched);
    CHECK(rows.journal.count("dead_letters") == letters);

    CHECK(purgeDeadMatching(rows.journal, query, kT0 + 50, /*dry_run=*/false) == 2);
    CHECK_FALSE(rows.exists(a));        // dead: deleted with its letter
    CHECK(rows.stateOf(d) == Pending);  // replayed: live work again, kept
    CHECK_FALSE(rows.detail(d).dead_letter.has_value());
    for (const auto id : {b, c, e, waiting}) CHECK(snapshot(rows, id) == untouched.at(id));
    CHECK(rows.detail(b).dead_letter.has_value());
    CHECK(rows.detail(c).dead_letter.has_value());
    CHECK(rows.detail(e).dead_letter.has_value());
    CHECK(rows.journal.count("dead_letters") == 3);
  }
  SUBCASE("as_of is inclusive: a letter that died at that millisecond goes") {
    CHECK(purgeDeadMatching(rows.journal, matching("pms", "rejected"), kT0 + 100, true) == 3);
    CHECK(purgeDeadMatching(rows.journal, matching("pms", "rejected"), kT0 + 99, true) == 2);
    CHECK(purgeDeadMatching(rows.journal, matching("pms", "rejected"), kT0 + 100, false) == 3);
    CHECK_FALSE(rows.exists(e));
  }
  SUBCASE("a window: died at or after since, before until") {
    const auto window = matching(std::nullopt, std::nullopt, kT0 + 20, kT0 + 40);
    CHECK(purgeDeadMatching(rows.journal, window, kT0 + 1'000, true) == 2);
    CHECK(purgeDeadMatching(rows.journal, window, kT0 + 1'000, false) == 2);
    CHECK_FALSE(rows.exists(b));
    CHECK_FALSE(rows.exists(c));
    for (const auto id : {a, e, waiting}) CHECK(snapshot(rows, id) == untouched.at(id));
    CHECK(rows.detail(d).dead_letter.has_value());  // died at until: outside
  }
  SUBCASE("no filter: every letter died by as_of; waiting work is never a dead letter") {
    CHECK(purgeDeadMatching(rows.journal, {}, kT0 + 1'000, false) == 5);
    CHECK(rows.journal.count("dead_letters") == 0);
    CHECK(rows.stateOf(d) == Pending);
    CHECK(snapshot(rows, waiting) == untouched.at(waiting));
  }
}
