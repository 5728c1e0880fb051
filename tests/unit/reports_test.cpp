// journal/reports.h, the operator's read models, on either backend
// (test::journalAt), against journals whose rows the ingest's insert and the
// delivery queue's own moves put in place (tests/support/delivery_rows.h):
// the status figures, the dead letters listed (filters, limit, newest first),
// one whole, paged by keyset in both directions (no row twice, none missed,
// ties on died_at included), counted and selected for a bulk move; which
// deliveries and dead letters exist, and one delivery whole.
#include <doctest/doctest.h>

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "journal/migrations.h"
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

constexpr std::int64_t kHour = 3'600'000;

DeadLetterFilter filter(std::optional<std::string> target, std::optional<std::int64_t> since_ms = std::nullopt,
                        std::optional<std::int64_t> until_ms = std::nullopt, int limit = -1) {
  DeadLetterFilter f;
  f.target = std::move(target);
  f.since_ms = since_ms;
  f.until_ms = until_ms;
  f.limit = limit;
  return f;
}

std::vector<std::int64_t> idsOf(const std::vector<DeadLetter>& letters) {
  std::vector<std::int64_t> ids;
  for (const auto& letter : letters) ids.push_back(letter.id);
  return ids;
}

DeadLetterCursor cursorAt(const DeadLetter& letter) {
  return {letter.died_at, letter.id};
}

// The figures' journal: pms with two waiting (pending, retry_wait), one in
// flight, two dead, two delivered in the last 24 hours before kNow and one
// delivered before; crm with one pending; an unrouted batch; pms's circuit
// open after four failures. Returns when pms's oldest waiting row was created.
constexpr std::int64_t kNow = kT0 + 48 * kHour;
std::string figuresJournal(test::DeliveryRows& rows) {
  const std::int64_t now = kNow;
  const std::int64_t oldest = rows.deliveryIn(RetryWait, "pms", kT0 + kHour, kT0 + kHour + 10);
  rows.deliveryIn(Pending, "pms", kT0 + 2 * kHour, 0);
  rows.deliveryIn(InFlight, "pms", kT0 + 3 * kHour, kT0 + 3 * kHour + 10);
  rows.deliveryIn(Dead, "pms", kT0, kT0 + 10);
  rows.deliveryIn(Dead, "pms", kT0, kT0 + 20, DeadReason::MaxAttempts);
  rows.deliveryIn(Delivered, "pms", kT0, now - 23 * kHour);
  rows.deliveryIn(Delivered, "pms", kT0, now - kHour);
  rows.deliveryIn(Delivered, "pms", kT0, now - 25 * kHour);
  rows.receive(kT0 + 4 * kHour, {});  // unrouted: no target wanted it
  rows.receive(kT0 + 5 * kHour, {"crm"}, std::nullopt, 3);
  saveTargetState(rows.journal, {"pms", "open", 3, "HTTP 503", false, true, kT0 + 4 * kHour});
  saveTargetState(rows.journal, {"pms", "open", 4, std::nullopt, false, false, kT0 + 5 * kHour});
  const std::string oldest_created = rows.detail(oldest).created_at;
  CHECK(oldest_created == formatIsoMillis(kT0 + kHour));
  return oldest_created;
}

}  // namespace

TEST_CASE("targetStatus, journalTotals, attemptActivity: the figures of `status`") {
  test::DeliveryRows rows;
  const std::string oldest_created = figuresJournal(rows);
  const std::int64_t now = kNow;

  const auto status = targetStatus(rows.journal, {"pms", "crm", "idle"}, now);
  REQUIRE(status.size() == 3);
  CHECK(status[0].target == "pms");
  CHECK(status[0].pending == 2);  // pending + retry_wait
  CHECK(status[0].in_flight == 1);
  CHECK(status[0].delivered_24h == 2);
  CHECK(status[0].dead == 2);
  CHECK(status[0].oldest_pending_at == oldest_created);
  CHECK(status[0].circuit == "open");
  CHECK(status[0].last_error == "HTTP 503");  // kept by a later save without an error
  CHECK(status[1].target == "crm");
  CHECK(status[1].pending == 1);
  CHECK(status[1].circuit == "closed");  // no target_state row yet
  CHECK_FALSE(status[1].last_error.has_value());
  CHECK(status[2].pending + status[2].in_flight + status[2].dead + status[2].delivered_24h == 0);
  CHECK_FALSE(status[2].oldest_pending_at.has_value());

  const auto totals = journalTotals(rows.journal);
  CHECK(totals.batches == 10);
  CHECK(totals.events == 8 + 1 + 3);  // one event in each batch but crm's three
  CHECK(totals.deliveries == 9);
  CHECK(totals.dead_letters == 2);
  CHECK(totals.unrouted_batches == 1);
  CHECK(totals.schema_version == schemaVersion(rows.journal.db()));
  CHECK(totals.schema_version > 0);

  CHECK(batchesSince(rows.journal, kT0 + 4 * kHour) == 2);
  CHECK(batchesSince(rows.journal, kT0 + 4 * kHour + 1) == 1);
  // The attempts in day-long buckets from kT0: a retry and two deaths and one
  // delivery on the first day, two deliveries on the second, none on the third.
  const auto activity = attemptActivity(rows.journal, kT0, 24 * kHour, 3);
  REQUIRE(activity.size() == 1);
  CHECK(activity[0].first == "pms");
  REQUIRE(activity[0].second.size() == 3);
  CHECK(activity[0].second[0].delivered == 1);
  CHECK(activity[0].second[0].failed == 3);
  CHECK(activity[0].second[1].delivered == 2);
  CHECK(activity[0].second[1].failed == 0);
  CHECK(activity[0].second[2].delivered + activity[0].second[2].failed == 0);
}

// On PostgreSQL 15 this case failed as the console's overview did: the
// statement's subqueries in FROM had no alias, which PostgreSQL requires
// before version 16.
TEST_CASE("targetQueues: the console's overview per target") {
  test::DeliveryRows rows;
  const std::string oldest_created = figuresJournal(rows);

  const auto queues = targetQueues(rows.journal, {"pms", "idle"});
  REQUIRE(queues.size() == 2);
  CHECK(queues[0].pending == 2);
  CHECK(queues[0].in_flight == 1);
  CHECK(queues[0].dead == 2);
  CHECK(queues[0].oldest_pending_at == oldest_created);
  CHECK(queues[0].circuit == "open");
  CHECK(queues[0].consecutive_failures == 4);
  CHECK(queues[0].last_error == "HTTP 503");
  CHECK(queues[0].last_error_at == formatIsoMillis(kT0 + 4 * kHour));
  CHECK_FALSE(queues[0].last_success_at.has_value());
  CHECK(queues[1].target == "idle");
  CHECK(queues[1].circuit == "closed");
  CHECK(queues[1].consecutive_failures == 0);
  CHECK_FALSE(queues[1].oldest_pending_at.has_value());
}

TEST_CASE("unknownTargets: work left for targets no longer configured, by state") {
  test::DeliveryRows rows;
  rows.deliveryIn(Pending, "gone", kT0, 0);
  rows.deliveryIn(RetryWait, "gone", kT0, kT0 + 10);
  rows.deliveryIn(InFlight, "gone", kT0, kT0 + 10);
  rows.deliveryIn(Dead, "gone", kT0, kT0 + 10);
  rows.deliveryIn(Delivered, "history", kT0, kT0 + 10);  // nothing left to act on
  rows.deliveryIn(Pending, "pms", kT0, 0);
  const auto unknown = unknownTargets(rows.journal, {"pms"});
  REQUIRE(unknown.size() == 1);
  CHECK(unknown[0].target == "gone");
  CHECK(unknown[0].waiting == 2);
  CHECK(unknown[0].in_flight == 1);
  CHECK(unknown[0].dead == 1);
  CHECK(unknownTargets(rows.journal, {"pms", "gone"}).empty());
}

TEST_CASE("listDeadLetters: newest first, by target and died-at window, limited") {
  test::DeliveryRows rows;
  std::vector<std::int64_t> letters;  // died at kT0 + 10 * (i + 1), pms and crm in turn
  for (int i = 0; i < 6; ++i)
    letters.push_back(rows.letterOf(rows.deliveryIn(Dead, i % 2 ? "crm" : "pms", kT0, kT0 + 10 * (i + 1))));
  rows.deliveryIn(RetryWait, "pms", kT0, kT0 + 5);  // not a dead letter

  const auto all = listDeadLetters(rows.journal, {});
  CHECK(idsOf(all) ==
        std::vector<std::int64_t>{letters[5], letters[4], letters[3], letters[2], letters[1], letters[0]});
  CHECK(all.back().died_at == formatIsoMillis(kT0 + 10));
  CHECK(all.back().received_at == formatIsoMillis(kT0));
  CHECK(all.back().reason == "rejected");
  CHECK(all.back().last_status == 400);
  CHECK(all.back().last_error == "HTTP 400");
  CHECK(all.back().attempts == 1);
  CHECK(all.back().event_types == "ReservationUpdated");
  CHECK(all.back().state == Dead);

  CHECK(idsOf(listDeadLetters(rows.journal, filter("crm"))) ==
        std::vector<std::int64_t>{letters[5], letters[3], letters[1]});
  // since: died at or after; until: died before.
  CHECK(idsOf(listDeadLetters(rows.journal, filter(std::nullopt, kT0 + 20, kT0 + 50))) ==
        std::vector<std::int64_t>{letters[3], letters[2], letters[1]});
  CHECK(idsOf(listDeadLetters(rows.journal, filter("pms", kT0 + 20, kT0 + 50))) ==
        std::vector<std::int64_t>{letters[2]});
  CHECK(idsOf(listDeadLetters(rows.journal, filter(std::nullopt, std::nullopt, std::nullopt, 2))) ==
        std::vector<std::int64_t>{letters[5], letters[4]});
  CHECK(listDeadLetters(rows.journal, filter(std::nullopt, std::nullopt, std::nullopt, 0)).empty());
  CHECK(listDeadLetters(rows.journal, filter("nobody")).empty());

  // A replayed letter is listed with its delivery's state now.
  REQUIRE(replayDeadLetters(rows.journal, {letters[0]}, kT0 + 100, false) == 1);
  CHECK(listDeadLetters(rows.journal, {}).back().state == Pending);
}

TEST_CASE("showDeadLetter: the letter, its batch as received, every attempt, the last one's headers") {
  test::DeliveryRows rows;
  const std::int64_t delivery = rows.deliveryIn(Dead, "pms", kT0, kT0 + 20, DeadReason::MaxAttempts, 1);
  const std::int64_t letter = rows.letterOf(delivery);

  const auto shown = showDeadLetter(rows.journal, letter);
  REQUIRE(shown.has_value());
  CHECK(shown->letter.id == letter);
  CHECK(shown->letter.delivery_id == delivery);
  CHECK(shown->letter.reason == "max_attempts");
  CHECK(shown->letter.last_status == 503);
  CHECK(shown->kind == kindName(BatchKind::General));
  CHECK(shown->event_seq == 1);
  CHECK(shown->payload == test::generalBatch(2));
  CHECK(shown->headers_sent == R"({"webhook-id":"msg_x"})");
  REQUIRE(shown->attempts.size() == 1);
  CHECK(shown->attempts[0].started_at == formatIsoMillis(kT0 + 20));
  CHECK(shown->attempts[0].duration_ms == 5);
  CHECK(shown->attempts[0].status == 503);
  CHECK(shown->attempts[0].outcome == "dead");
  CHECK(shown->attempts[0].response_excerpt == "no thanks");

  CHECK_FALSE(showDeadLetter(rows.journal, letter + 1).has_value());
  CHECK(deliveryOfDeadLetter(rows.journal, letter) == delivery);
  CHECK_FALSE(deliveryOfDeadLetter(rows.journal, letter + 1).has_value());
  CHECK(unknownDeadLetters(rows.journal, {letter + 1, letter, 0}) == std::vector<std::int64_t>{letter + 1, 0});
  CHECK(unknownDeadLetters(rows.journal, {letter}).empty());
  CHECK(lastResponses(rows.journal, {delivery, delivery + 1}) ==
        std::vector<std::pair<std::int64_t, std::string>>{{delivery, "no thanks"}});
}

TEST_CASE("pageDeadLetters: keyset pages, older and newer, no row twice and none missed, ties on died_at") {
  test::DeliveryRows rows;
  // 23 letters; three die in each millisecond (ties broken by id), pms and
  // crm in turn. Expected order: died_at DESC, id DESC.
  struct Made {
    std::int64_t id;
    std::int64_t died_ms;
    std::string target;
  };
  std::vector<Made> made;
  for (int i = 0; i < 23; ++i) {
    const std::string target = i % 2 ? "crm" : "pms";
    const std::int64_t died = kT0 + 1'000 + i / 3;
    made.push_back({rows.letterOf(rows.deliveryIn(Dead, target, kT0, died)), died, target});
  }
  auto expected = [&](const std::optional<std::string>& target) {
    std::vector<Made> order;
    for (const auto& m : made)
      if (!target || m.target == *target) order.push_back(m);
    std::sort(order.begin(), order.end(), [](const Made& a, const Made& b) {
      return a.died_ms != b.died_ms ? a.died_ms > b.died_ms : a.id > b.id;
    });
    std::vector<std::int64_t> ids;
    for (const auto& m : order) ids.push_back(m.id);
    return ids;
  };

  for (const std::optional<std::string>& target : {std::optional<std::string>{}, std::optional<std::string>{"pms"}}) {
    CAPTURE(target.value_or("(all)"));
    const auto query = matching(target);
    const auto want = expected(target);
    CHECK(countDeadLetters(rows.journal, query) == static_cast<std::int64_t>(want.size()));
    constexpr int kLimit = 5;

    // Older, from the newest page.
    std::vector<DeadLetterPage> pages{pageDeadLetters(rows.journal, query, std::nullopt, std::nullopt, kLimit)};
    CHECK_FALSE(pages.back().has_newer);
    while (pages.back().has_older) {
      REQUIRE(pages.size() < 10);
      pages.push_back(
          pageDeadLetters(rows.journal, query, cursorAt(pages.back().letters.back()), std::nullopt, kLimit));
      CHECK(pages.back().has_newer);
    }
    std::vector<std::int64_t> seen;
    for (const auto& page : pages) {
      CHECK(page.letters.size() <= static_cast<std::size_t>(kLimit));
      CHECK_FALSE(page.letters.empty());
      for (const auto& letter : page.letters) seen.push_back(letter.id);
    }
    CHECK(seen == want);  // each once, in order
    CHECK(pages.size() == (want.size() + kLimit - 1) / kLimit);

    // Newer, back from the oldest page: the same pages, met in reverse.
    std::vector<DeadLetterPage> back{pages.back()};
    while (back.back().has_newer) {
      REQUIRE(back.size() < 10);
      back.push_back(pageDeadLetters(rows.journal, query, std::nullopt, cursorAt(back.back().letters.front()), kLimit));
      CHECK(back.back().has_older);
    }
    std::vector<std::int64_t> seen_back;
    for (auto page = back.rbegin(); page != back.rend(); ++page)
      for (const auto& letter : page->letters) seen_back.push_back(letter.id);
    CHECK(seen_back == want);
    REQUIRE(back.size() == pages.size());
    for (std::size_t i = 0; i < back.size(); ++i)
      CHECK(idsOf(back[i].letters) == idsOf(pages[pages.size() - 1 - i].letters));

    // Past either end: an empty page.
    CHECK(pageDeadLetters(rows.journal, query, cursorAt(pages.back().letters.back()), std::nullopt, kLimit)
              .letters.empty());
    CHECK(pageDeadLetters(rows.journal, query, std::nullopt, cursorAt(pages.front().letters.front()), kLimit)
              .letters.empty());
  }

  // One page holds everything: neither neighbour.
  const auto whole = pageDeadLetters(rows.journal, {}, std::nullopt, std::nullopt, 100);
  CHECK(whole.letters.size() == 23);
  CHECK_FALSE(whole.has_older);
  CHECK_FALSE(whole.has_newer);
  // Filters reach the pages: reason and window.
  CHECK(
      pageDeadLetters(rows.journal, matching(std::nullopt, "max_age"), std::nullopt, std::nullopt, 5).letters.empty());
  CHECK(countDeadLetters(rows.journal, matching(std::nullopt, std::nullopt, kT0 + 1'001, kT0 + 1'003)) == 6);
  CHECK(pageDeadLetters(rows.journal, matching(std::nullopt, std::nullopt, kT0 + 1'001, kT0 + 1'003), std::nullopt,
                        std::nullopt, 10)
            .letters.size() == 6);
}

TEST_CASE("countDeadLetters and deadLetterIdsMatching: the console's bulk selection, still-dead only, oldest first") {
  test::DeliveryRows rows;
  std::vector<std::int64_t> letters;
  for (int i = 0; i < 5; ++i)
    letters.push_back(rows.letterOf(rows.deliveryIn(Dead, i == 4 ? "crm" : "pms", kT0, kT0 + 10 * (i + 1),
                                                    i == 3 ? DeadReason::MaxAttempts : DeadReason::Rejected)));
  REQUIRE(replayDeadLetters(rows.journal, {letters[1]}, kT0 + 100, false) == 1);

  CHECK(countDeadLetters(rows.journal, {}) == 5);  // every letter, replayed ones too
  CHECK(countDeadLetters(rows.journal, matching("pms")) == 4);
  CHECK(countDeadLetters(rows.journal, matching("pms", "rejected")) == 3);
  CHECK(countDeadLetters(rows.journal, matching(std::nullopt, std::nullopt, kT0 + 20, kT0 + 40)) == 2);

  CHECK(deadLetterIdsMatching(rows.journal, {}) ==
        std::vector<std::int64_t>{letters[0], letters[2], letters[3], letters[4]});
  CHECK(deadLetterIdsMatching(rows.journal, matching("pms", "rejected")) ==
        std::vector<std::int64_t>{letters[0], letters[2]});
  CHECK(deadLetterIdsMatching(rows.journal, matching(std::nullopt, std::nullopt, kT0 + 30)) ==
        std::vector<std::int64_t>{letters[2], letters[3], letters[4]});
  CHECK(deadLetterIdsMatching(rows.journal, matching("nobody")).empty());
}

TEST_CASE("deliveryStates: the state of each delivery that still exists, however many are asked") {
  test::DeliveryRows rows;
  std::vector<std::pair<std::int64_t, DeliveryState>> made;
  for (const auto state : {Pending, RetryWait, InFlight, Delivered, Dead})
    made.emplace_back(rows.deliveryIn(state, "pms", kT0, kT0 + 10), state);
  // More ids than one statement takes (chunks of 500), the real ones last.
  std::vector<std::int64_t> ask;
  for (std::int64_t missing = 100'000; missing < 100'700; ++missing) ask.push_back(missing);
  for (const auto& [id, state] : made) ask.push_back(id);

  auto states = deliveryStates(rows.journal, ask);
  std::sort(states.begin(), states.end());
  CHECK(states == made);
  CHECK(deliveryStates(rows.journal, {}).empty());
}

TEST_CASE("deliveryDetail: the row, its batch, every attempt, and its dead letter while it has one") {
  test::DeliveryRows rows;
  const std::int64_t id = rows.deliveryIn(Dead, "pms", kT0, kT0 + 20);
  const std::int64_t letter = rows.letterOf(id);

  auto detail = deliveryDetail(rows.journal, id);
  REQUIRE(detail.has_value());
  CHECK(detail->id == id);
  CHECK(detail->target == "pms");
  CHECK(detail->state == Dead);
  CHECK(detail->attempts_spent == 1);
  CHECK(detail->created_at == formatIsoMillis(kT0));
  CHECK(detail->received_at == formatIsoMillis(kT0));
  CHECK(detail->updated_at == formatIsoMillis(kT0 + 20));
  CHECK(detail->last_status == 400);
  CHECK(detail->last_error == "HTTP 400");
  CHECK(detail->kind == kindName(BatchKind::General));
  CHECK(detail->content_type == "application/json");
  CHECK(detail->payload == test::generalBatch(1));
  CHECK_FALSE(detail->event_seq.has_value());
  REQUIRE(detail->dead_letter.has_value());
  CHECK(detail->dead_letter->id == letter);
  REQUIRE(detail->attempts.size() == 1);
  CHECK(detail->attempts[0].row.outcome == "dead");
  CHECK(detail->attempts[0].request_headers == R"({"webhook-id":"msg_x"})");

  // Replayed and delivered: the letter leaves, the attempts stay.
  REQUIRE(replayDeadLetters(rows.journal, {letter}, kT0 + 100, false) == 1);
  CHECK(deliveryDetail(rows.journal, id)->due_at == formatIsoMillis(kT0 + 100));
  REQUIRE(claimDelivery(rows.journal, id, kT0 + 100));
  AttemptRecord delivered;
  delivered.delivery_id = id;
  delivered.target = "pms";
  delivered.started_ms = kT0 + 100;
  delivered.now_ms = kT0 + 110;
  delivered.outcome = AttemptOutcome::Delivered;
  delivered.status = 200;
  delivered.response_excerpt = "thanks";
  REQUIRE(recordAttempt(rows.journal, delivered));
  detail = deliveryDetail(rows.journal, id);
  REQUIRE(detail.has_value());
  CHECK(detail->state == Delivered);
  CHECK_FALSE(detail->dead_letter.has_value());
  REQUIRE(detail->attempts.size() == 2);
  CHECK(detail->attempts[0].row.outcome == "dead");  // oldest first
  CHECK(detail->attempts[1].row.outcome == "delivered");
  CHECK(detail->attempts[1].row.status == 200);
  CHECK(lastResponses(rows.journal, {id}).front().second == "thanks");

  CHECK_FALSE(deliveryDetail(rows.journal, id + 1).has_value());
}
