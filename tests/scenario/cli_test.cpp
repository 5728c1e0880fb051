// The operator commands, run as the built binary against a journal with dead
// letters: with no relay running, and while one serves the journal.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <regex>
#include <set>

#include "relay/relay.h"
#include "support/operator_fixture.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::queryInt;

namespace {

using test::runCommand;

// A journal with two dead letters whose target signs and sends a secret
// header: what the commands print must show neither.
test::OperatorFixture withDeadLetters() {
  return test::OperatorFixture(
      {400, "", "", "no thanks"},
      "secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\nheader.Authorization = Bearer very-secret-header\n");
}

}  // namespace

TEST_CASE("status, dlq list and dlq show: tables for people, JSON for scripts") {
  auto f = withDeadLetters();
  auto status = runCommand(f.config, {"status"});
  CHECK(status.exit == 0);
  // PostgreSQL: which relay dispatches each target (none runs now: -), and a table of relays.
  const std::string dispatched = test::onPostgres() ? " +DISPATCHED BY" : "";
  CHECK(std::regex_search(status.out, std::regex("TARGET" + dispatched + " +PENDING +IN FLIGHT +DELIVERED 24H +DEAD")));
  CHECK(std::regex_search(status.out, std::regex(std::string(test::onPostgres() ? "pms +- +" : "pms +") +
                                                 "0 +0 +0 +2 +- +closed +HTTP 400")));
  CHECK((status.out.find("RELAY ") != std::string::npos) == test::onPostgres());
  CHECK(status.out.find("2 batches, 6 events") != std::string::npos);
  auto status_json = runCommand(f.config, {"status", "--json"});
  CHECK(status_json.exit == 0);
  CHECK(status_json.out.find(R"({"targets":[{"target":"pms","pending":0,"in_flight":0,"delivered_24h":0,"dead":2,)") ==
        0);

  auto list = runCommand(f.config, {"dlq", "list"});
  CHECK(list.exit == 0);
  CHECK(std::regex_search(list.out, std::regex(R"(ID +TARGET +EVENT TYPES +ATTEMPTS +DIED AT +REASON +LAST ERROR)")));
  CHECK(
      std::regex_search(list.out, std::regex(R"(\n2 +pms +IntegrationCreated +1 +\S+Z +rejected +HTTP 400\n1 +pms)")));
  auto list_json = runCommand(f.config, {"dlq", "list", "--json", "--limit", "1"});
  CHECK(list_json.exit == 0);
  CHECK(
      std::regex_match(list_json.out, std::regex(R"(\[\{"id":2,"delivery_id":2,"batch_id":2,"target":"pms".*\}\]\n)")));
  CHECK(runCommand(f.config, {"dlq", "list", "--target", "other"}).out.find("\n1 ") == std::string::npos);
  CHECK(runCommand(f.config, {"dlq", "list", "--since", "2099-01-01T00:00:00Z", "--json"}).out == "[]\n");

  auto show = runCommand(f.config, {"dlq", "show", "1"});
  CHECK(show.exit == 0);
  CHECK(show.out.find("reason:      rejected") != std::string::npos);
  CHECK(show.out.find("no thanks") != std::string::npos);
  CHECK(show.out.find("\"webhook-id\":\"msg_") != std::string::npos);
  CHECK(show.out.find("webhook-signature") != std::string::npos);
  CHECK(show.out.find("very-secret-header") == std::string::npos);
  CHECK(show.out.find(test::sample("general.json")) != std::string::npos);
  auto show_json = runCommand(f.config, {"dlq", "show", "1", "--json"});
  CHECK(show_json.exit == 0);
  CHECK(show_json.out.find(R"("attempts":[{"started_at":)") != std::string::npos);
  CHECK(show_json.out.find(R"("payload":"{\n    \"EnterpriseId\")") != std::string::npos);
}

TEST_CASE("errors: unknown id exit 1 naming it, bad flag or verb exit 2") {
  auto f = withDeadLetters();
  auto missing = runCommand(f.config, {"dlq", "show", "999"});
  CHECK(missing.exit == 1);
  CHECK(missing.err.find("no dead letter with id 999") != std::string::npos);
  auto replay_missing = runCommand(f.config, {"replay", "1", "999"});
  CHECK(replay_missing.exit == 1);
  CHECK(replay_missing.err.find("no dead letter with id 999") != std::string::npos);
  CHECK(queryInt(f.journal, "SELECT count(*) FROM deliveries WHERE state = 'dead'") == 2);  // all or nothing
  CHECK(runCommand(f.config, {"dlq", "list", "--colour"}).exit == 2);
  CHECK(runCommand(f.config, {"dlq", "frobnicate"}).exit == 2);
  CHECK(runCommand(f.config, {"replay"}).exit == 2);
  CHECK(runCommand(f.config, {"replay", "abc"}).exit == 2);
  CHECK(runCommand(f.config, {"replay", "--received-since", "2h"}).exit == 2);
  CHECK(runCommand(f.config, {"replay", "--received-since", "yesterday", "--target", "pms"}).exit == 2);
  CHECK(runCommand(f.config, {"dlq", "purge", "--older-than", "ages"}).exit == 2);
  auto no_target = runCommand(f.config, {"replay", "--received-since", "2h", "--target", "nope"});
  CHECK(no_target.exit == 1);
  CHECK(no_target.err.find("no target 'nope'") != std::string::npos);
  auto bad_config = runCommand(f.dir.file("missing.ini"), {"status"});
  CHECK(bad_config.exit == 1);
  CHECK(bad_config.err.find("missing.ini") != std::string::npos);
}

TEST_CASE("--dry-run changes nothing; replay and purge without a relay write directly") {
  auto f = withDeadLetters();
  const auto before = queryInt(f.journal, "SELECT count(*) FROM deliveries WHERE state = 'dead'");
  CHECK(runCommand(f.config, {"replay", "--dead", "--dry-run"}).out ==
        (test::onPostgres() ? "would replay 2 deliveries (a running relay picks them up within a second)\n"
                            : "would replay 2 deliveries (picked up when the relay next runs)\n"));
  CHECK(runCommand(f.config, {"replay", "1", "2", "--dry-run"}).exit == 0);
  CHECK(runCommand(f.config, {"replay", "--received-since", "1h", "--target", "pms", "--dry-run"})
            .out.find("would replay 2") == 0);
  CHECK(runCommand(f.config, {"dlq", "purge", "--dry-run"}).out == "would purge 2 dead letters\n");
  CHECK(queryInt(f.journal, "SELECT count(*) FROM deliveries WHERE state = 'dead'") == before);
  CHECK(queryInt(f.journal, "SELECT count(*) FROM dead_letters") == 2);

  // ids from stdin, like postsuper
  auto replayed = runCommand(f.config, {"replay", "-", "--json"}, "1\n");
  CHECK(replayed.exit == 0);
  CHECK(replayed.out == "{\"replayed\":1,\"dry_run\":false,\"via_relay\":false}\n");
  CHECK(queryInt(f.journal, "SELECT count(*) FROM deliveries WHERE state = 'pending' AND attempts = 0") == 1);
  CHECK(runCommand(f.config, {"dlq", "purge", "--older-than", "1d"}).out == "purged 0 dead letters\n");
  CHECK(runCommand(f.config, {"dlq", "purge"}).out == "purged 2 dead letters\n");
  CHECK(queryInt(f.journal, "SELECT count(*) FROM dead_letters") == 0);
  // The replayed delivery is live work again and survives the purge.
  CHECK(queryInt(f.journal, "SELECT count(*) FROM deliveries WHERE state = 'pending'") == 1);
}

TEST_CASE("while the relay serves: replay goes through it and is delivered within seconds") {
  auto f = withDeadLetters();
  f.refuse = false;
  auto relay = f.startRelay();
  auto replayed = runCommand(f.config, {"replay", "--dead", "--target", "pms"});
  CHECK(replayed.exit == 0);
  // PostgreSQL: the CLI writes to the database itself, and the relay finds the work at its next look.
  CHECK(replayed.out == (test::onPostgres() ? "replayed 2 deliveries (a running relay picks them up within a second)\n"
                                            : "replayed 2 deliveries (through the running relay)\n"));
  REQUIRE(test::waitUntil(
      [&] { return queryInt(f.journal, "SELECT count(*) FROM deliveries WHERE state = 'delivered'") == 2; }, 3s));
  // Delivered dead letters leave the table; their history stays.
  CHECK(queryInt(f.journal, "SELECT count(*) FROM dead_letters") == 0);
  CHECK(queryInt(f.journal, "SELECT count(*) FROM attempts") == 4);
  // The same webhook-id as the attempt that died.
  const auto requests = f.sink.requests();
  REQUIRE(requests.size() == 4);
  const std::set<std::string> died{requests[0].headers.at("webhook-id"), requests[1].headers.at("webhook-id")};
  const std::set<std::string> replayed_ids{requests[2].headers.at("webhook-id"), requests[3].headers.at("webhook-id")};
  CHECK(died == replayed_ids);

  auto resend = runCommand(f.config, {"replay", "--received-since", "1h", "--target", "pms", "--json"});
  CHECK(resend.out == fmt::format("{{\"replayed\":2,\"dry_run\":false,\"via_relay\":{}}}\n", !test::onPostgres()));
  REQUIRE(f.sink.waitForRequests(6, 3s));
  CHECK(runCommand(f.config, {"dlq", "purge"}).out ==
        (test::onPostgres() ? "purged 0 dead letters\n" : "purged 0 dead letters (through the running relay)\n"));
  auto status = runCommand(f.config, {"status"});
  CHECK(status.exit == 0);
  auto migrate = runCommand(f.config, {"migrate"});
  CHECK(migrate.exit == 0);
  // PostgreSQL: migrate applies what is pending under an advisory lock, beside a running relay.
  CHECK(migrate.out.find(test::onPostgres() ? ": schema version 2\n" : "a running relay holds it") !=
        std::string::npos);
}

TEST_CASE("check-config prints effective settings and never a token or secret") {
  auto f = withDeadLetters();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"check-config"}, std::vector<std::string>{"check-config", "--json"}}) {
    auto checked = runCommand(f.config, args);
    CHECK(checked.exit == 0);
    CHECK(checked.out.find("max_attempts") != std::string::npos);
    CHECK(checked.out.find(test::kToken) == std::string::npos);
    CHECK(checked.out.find("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == std::string::npos);
    CHECK(checked.out.find("very-secret-header") == std::string::npos);
  }
}

TEST_CASE("a second relay on the same journal is refused (PostgreSQL: one of the same name)") {
  auto f = withDeadLetters();
  auto relay = f.startRelay();
  auto second = runCommand(f.config, {"serve"});
  CHECK(second.exit == 1);
  // PostgreSQL: several relays may serve one journal, but not two of one name
  // (both default to the host name here).
  CHECK(second.err.find(test::onPostgres() ? "another relay named" : "is in use by another process") !=
        std::string::npos);
}

TEST_CASE("every command has --help") {
  auto f = withDeadLetters();
  for (const char* command : {"serve", "status", "dlq", "replay", "check-config", "migrate"}) {
    auto help = runCommand(f.config, {command, "--help"});
    CHECK(help.exit == 0);
    CHECK(help.out.find("usage: mews-relay") == 0);
    CHECK(help.out.find("example") != std::string::npos);
  }
}
