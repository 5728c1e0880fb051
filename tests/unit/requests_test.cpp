// journal/requests: each operator verb's one encoding, read back by the one
// decoder the admin listener and the console use; what the decoder refuses;
// and the requests carried out on a real journal (both backends).
#include <doctest/doctest.h>

#include "common/form.h"
#include "journal/journal.h"
#include "journal/queue.h"
#include "journal/reports.h"
#include "journal/requests.h"
#include "support/delivery_rows.h"
#include "support/test_support.h"

using namespace mews;
using namespace mews::journal;

namespace {

using test::kT0;

// Through the text, as the CLI sends it and the relay reads it.
ReplayRequest viaTextReplay(const ReplayRequest& request) {
  return decodeReplay(form::parseUrlEncoded(form::encode(encode(request))));
}
PurgeRequest viaTextPurge(const PurgeRequest& request) {
  return decodePurge(form::parseUrlEncoded(form::encode(encode(request))));
}

std::string refusal(const form::Pairs& pairs, bool purge = false) {
  try {
    if (purge)
      (void)decodePurge(pairs);
    else
      (void)decodeReplay(pairs);
  } catch (const RequestError& e) {
    return e.what();
  }
  return "(accepted)";
}

// A dead letter of `target`, put there by the delivery queue's own moves; its id.
std::int64_t deadLetter(test::DeliveryRows& rows, const std::string& target = "pms") {
  return rows.letterOf(rows.deliveryIn(DeliveryState::Dead, target, kT0, kT0 + 10));
}

}  // namespace

TEST_CASE("replay: every kind goes through its text and back unchanged") {
  ReplayRequest ids;
  ids.what = ReplayRequest::DeadLetterIds{{17, 18}};
  ids.to = "crm";
  ids.dry_run = true;
  CHECK(form::encode(encode(ids)) == "id=17&id=18&to=crm&dry_run=1");
  const auto ids_back = viaTextReplay(ids);
  CHECK(std::get<ReplayRequest::DeadLetterIds>(ids_back.what).ids == std::vector<std::int64_t>{17, 18});
  CHECK(ids_back.to == "crm");
  CHECK(ids_back.dry_run);

  ReplayRequest matching;
  DeadLetterQuery query;
  query.target = "pms & co";  // any name: encoded, never spliced
  query.reason = "max_age";
  query.since_ms = 5;
  query.until_ms = 9;
  matching.what = ReplayRequest::DeadLettersMatching{query, {3, 4}};
  const auto matching_back = std::get<ReplayRequest::DeadLettersMatching>(viaTextReplay(matching).what);
  CHECK(matching_back.query.target == "pms & co");
  CHECK(matching_back.query.reason == "max_age");
  CHECK(matching_back.query.since_ms == 5);
  CHECK(matching_back.query.until_ms == 9);
  CHECK(matching_back.among == std::vector<std::int64_t>{3, 4});

  ReplayRequest received;
  received.what = ReplayRequest::Received{"crm", 100, 200};
  const auto received_back = std::get<ReplayRequest::Received>(viaTextReplay(received).what);
  CHECK(received_back.target == "crm");
  CHECK(received_back.since_ms == 100);
  CHECK(received_back.until_ms == 200);

  ReplayRequest moved;
  moved.what = ReplayRequest::RemovedTargetWork{"old_pms"};
  moved.to = "pms";
  const auto moved_back = viaTextReplay(moved);
  CHECK(std::get<ReplayRequest::RemovedTargetWork>(moved_back.what).from == "old_pms");
  CHECK(moved_back.to == "pms");
  CHECK_FALSE(moved_back.dry_run);
}

TEST_CASE("purge: both kinds go through their text and back unchanged") {
  PurgeRequest letters;
  DeadLetterQuery query;
  query.reason = "rejected";
  query.until_ms = 42;
  letters.what = PurgeRequest::DeadLetters{query};
  letters.dry_run = true;
  const auto letters_back = viaTextPurge(letters);
  CHECK(std::get<PurgeRequest::DeadLetters>(letters_back.what).query.reason == "rejected");
  CHECK(std::get<PurgeRequest::DeadLetters>(letters_back.what).query.until_ms == 42);
  CHECK_FALSE(std::get<PurgeRequest::DeadLetters>(letters_back.what).query.target);
  CHECK(letters_back.dry_run);

  PurgeRequest work;
  work.what = PurgeRequest::RemovedTargetWork{"gone"};
  CHECK(std::get<PurgeRequest::RemovedTargetWork>(viaTextPurge(work).what).from == "gone");
}

TEST_CASE("the decoder refuses a request it cannot read whole, naming the key") {
  CHECK(refusal({}) == "say one of id, dead=1, received_since_ms or from");
  CHECK(refusal({{"id", "1"}, {"from", "x"}, {"to", "y"}}) == "say one of id, dead=1, received_since_ms or from");
  CHECK(refusal({{"id", "1"}, {"bogus", "1"}}) == "bogus does not go with id");
  CHECK(refusal({{"id", "1"}, {"target", "pms"}}) == "target does not go with id");
  CHECK(refusal({{"id", "1"}, {"to", "a"}, {"to", "b"}}) == "to is given twice");
  CHECK(refusal({{"id", "x1"}}) == "id: 'x1' is not a number");
  CHECK(refusal({{"id", ""}}) == "id: '' is not a number");
  CHECK(refusal({{"dead", "1"}, {"reason", "bored"}}) == "reason: 'bored' is not rejected, max_attempts or max_age");
  CHECK(refusal({{"dead", "1"}, {"since_ms", "-5"}}) == "since_ms: '-5' is not a time in milliseconds");
  CHECK(refusal({{"dead", "yes"}}) == "dead takes 1");
  CHECK(refusal({{"dead", "1"}, {"target", ""}}) == "target is empty");
  CHECK(refusal({{"received_since_ms", "1"}}) == "received_since_ms needs target");
  CHECK(refusal({{"received_since_ms", "1"}, {"target", "a"}, {"to", "b"}}) ==
        "to goes with id, dead=1 or from, not with received_since_ms");
  CHECK(refusal({{"from", "old"}}) == "from needs to");
  CHECK(refusal({{"dry_run", "1"}}, true) == "(accepted)");
  CHECK(refusal({{"from", "old"}, {"until_ms", "5"}}, true) == "until_ms does not go with from");
  CHECK(refusal({{"until_ms", "5"}, {"id", "3"}}, true) == "id does not go with a purge of dead letters");
  CHECK(refusal({{"dead", "1"}}) == "(accepted)");
}

TEST_CASE("the targets a request names, against a configuration") {
  const std::vector<std::string> configured{"pms", "crm"};
  ReplayRequest request;
  request.what = ReplayRequest::DeadLetterIds{{1}};
  CHECK_FALSE(refusalByTargets(request, configured, "in relay.ini"));
  request.to = "nope";
  CHECK(refusalByTargets(request, configured, "in relay.ini") == "no target 'nope' in relay.ini");
  request.to.reset();
  request.what = ReplayRequest::Received{"nope", 0, std::nullopt};
  CHECK(refusalByTargets(request, configured, "in relay.ini") == "no target 'nope' in relay.ini");
  request.what = ReplayRequest::RemovedTargetWork{"pms"};
  request.to = "crm";
  CHECK(refusalByTargets(request, configured, "in relay.ini") ==
        "target 'pms' is in relay.ini: its work is its own; remove it and reload first");
  PurgeRequest purge;
  purge.what = PurgeRequest::RemovedTargetWork{"crm"};
  CHECK(refusalByTargets(purge, configured, "in relay.ini"));
  purge.what = PurgeRequest::RemovedTargetWork{"old"};
  CHECK_FALSE(refusalByTargets(purge, configured, "in relay.ini"));
}

TEST_CASE("named dead letters are all or nothing; a step of a matching replay skips the gone") {
  test::DeliveryRows f;
  const std::int64_t first = deadLetter(f);
  const std::int64_t second = deadLetter(f);
  ReplayRequest named;
  named.what = ReplayRequest::DeadLetterIds{{first, second + 100}};
  const auto refused = apply(f.journal, named, kT0 + 1'000);
  CHECK(refused.unknown == std::vector<std::int64_t>{second + 100});
  CHECK(refused.count == 0);
  CHECK(listDeadLetters(f.journal, {}).back().state == DeliveryState::Dead);  // nothing changed

  ReplayRequest step;
  step.what = ReplayRequest::DeadLettersMatching{{}, {first, second + 100}};
  const auto stepped = apply(f.journal, step, kT0 + 1'000);
  CHECK(stepped.unknown.empty());
  CHECK(stepped.count == 1);

  named.what = ReplayRequest::DeadLetterIds{{first, second}};
  named.dry_run = true;
  CHECK(apply(f.journal, named, kT0 + 1'000).count == 1);  // the first is no longer dead
}

TEST_CASE("replaySteps: named and matching letters in steps of kReplayStep, oldest first") {
  test::DeliveryRows f;
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(deadLetter(f, i == 1 ? "crm" : "pms"));
  ReplayRequest matching;
  DeadLetterQuery query;
  query.target = "pms";
  matching.what = ReplayRequest::DeadLettersMatching{query, {}};
  const auto steps = replaySteps(f.journal, matching);
  REQUIRE(steps.size() == 1);
  CHECK(std::get<ReplayRequest::DeadLettersMatching>(steps[0].what).among == std::vector<std::int64_t>{ids[0], ids[2]});

  ReplayRequest named;
  std::vector<std::int64_t> many;
  for (std::int64_t id = 1; id <= static_cast<std::int64_t>(kReplayStep) * 2 + 1; ++id) many.push_back(id);
  named.what = ReplayRequest::DeadLetterIds{many};
  const auto named_steps = replaySteps(f.journal, named);
  REQUIRE(named_steps.size() == 3);
  CHECK(std::get<ReplayRequest::DeadLetterIds>(named_steps[0].what).ids.size() == kReplayStep);
  CHECK(std::get<ReplayRequest::DeadLetterIds>(named_steps[2].what).ids == std::vector<std::int64_t>{many.back()});

  ReplayRequest window;
  window.what = ReplayRequest::Received{"pms", 0, std::nullopt};
  CHECK(replaySteps(f.journal, window).size() == 1);
}

TEST_CASE("a purge of dead letters stops at its bound: nothing that died at or after until_ms, or after now") {
  test::DeliveryRows f;
  deadLetter(f);  // died at kT0 + 10
  PurgeRequest purge;
  DeadLetterQuery query;
  query.until_ms = kT0 + 10;
  purge.what = PurgeRequest::DeadLetters{query};
  CHECK(apply(f.journal, purge, kT0 + 20) == 0);
  query.until_ms.reset();
  purge.what = PurgeRequest::DeadLetters{query};
  CHECK(apply(f.journal, purge, kT0 + 9) == 0);  // without a bound: up to the moment it is carried out
  query.until_ms = kT0 + 11;
  purge.what = PurgeRequest::DeadLetters{query};
  CHECK(apply(f.journal, purge, kT0 + 20) == 1);
  CHECK(listDeadLetters(f.journal, {}).empty());
}
