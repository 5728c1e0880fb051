// The operator commands, run as the built binary against a journal with dead
// letters: with no relay running, and while one serves the journal.
#include <doctest/doctest.h>

#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <fmt/format.h>

#include <atomic>
#include <regex>
#include <set>
#include <thread>

#include "config/config.h"
#include "relay/relay.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::queryInt;

namespace {

struct Run {
  int exit = -1;
  std::string out;
  std::string err;
};

Run run(const std::string& config, const std::vector<std::string>& args, const std::string& input = "") {
  std::vector<std::string> argv{"-c", config};
  argv.insert(argv.end(), args.begin(), args.end());
  Poco::Pipe in_pipe, out_pipe, err_pipe;
  auto handle = Poco::Process::launch(MEWS_RELAY_BINARY, argv, &in_pipe, &out_pipe, &err_pipe);
  {
    Poco::PipeOutputStream in(in_pipe);
    in << input;
  }
  in_pipe.close(Poco::Pipe::CLOSE_WRITE);
  Poco::PipeInputStream out(out_pipe);
  Poco::PipeInputStream err(err_pipe);
  Run result;
  result.out.assign(std::istreambuf_iterator<char>(out), {});
  result.err.assign(std::istreambuf_iterator<char>(err), {});
  result.exit = handle.wait();
  return result;
}

const std::string& kUri = test::kIngestUri;

// A journal with two dead letters (the sink refuses everything with 400) and a config file for it.
struct Fixture {
  test::TempDir dir;
  test::Sink sink;
  std::string journal = dir.file("relay.db");
  std::string config = dir.file("relay.ini");
  std::atomic<bool> refuse{true};

  Fixture() {
    sink.setScript([this](const test::SinkRequest&, std::size_t) {
      return refuse ? test::SinkResponse{400, "", "", "no thanks"} : test::SinkResponse{};
    });
    test::writeFile(
        config,
        fmt::format("[server]\nlisten = 127.0.0.1:0\ntokens = {}\n[admin]\nlisten = 127.0.0.1:0\n"
                    "[journal]\npath = {}\nmin_free = 0B\n"
                    "[target.pms]\nurl = {}\nbackoff = 10ms..50ms\nsecret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
                    "header.Authorization = Bearer very-secret-header\n",
                    test::kToken, journal, sink.url()));
    auto relay = startRelay();
    // One after the other, so that dead letter 1 is batch 1's and 2 is batch 2's.
    REQUIRE(test::httpRequest(relay->ingestPort(), "POST", kUri, test::sample("general.json")).status == 202);
    REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 1; }, 5s));
    REQUIRE(test::httpRequest(relay->ingestPort(), "POST", kUri, test::sample("integration.json")).status == 202);
    REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 2; }, 5s));
  }

  std::unique_ptr<relay::Relay> startRelay() {
    auto relay = std::make_unique<relay::Relay>(config::loadSettings(config));
    relay->start();
    return relay;
  }
};

}  // namespace

TEST_CASE("status, dlq list and dlq show: tables for people, JSON for scripts") {
  Fixture f;
  auto status = run(f.config, {"status"});
  CHECK(status.exit == 0);
  CHECK(std::regex_search(status.out, std::regex(R"(TARGET +PENDING +IN FLIGHT +DELIVERED 24H +DEAD)")));
  CHECK(std::regex_search(status.out, std::regex(R"(pms +0 +0 +0 +2 +- +closed +HTTP 400)")));
  CHECK(status.out.find("2 batches, 6 events") != std::string::npos);
  auto status_json = run(f.config, {"status", "--json"});
  CHECK(status_json.exit == 0);
  CHECK(status_json.out.find(R"({"targets":[{"target":"pms","pending":0,"in_flight":0,"delivered_24h":0,"dead":2,)") ==
        0);

  auto list = run(f.config, {"dlq", "list"});
  CHECK(list.exit == 0);
  CHECK(std::regex_search(list.out, std::regex(R"(ID +TARGET +EVENT TYPES +ATTEMPTS +DIED AT +REASON +LAST ERROR)")));
  CHECK(
      std::regex_search(list.out, std::regex(R"(\n2 +pms +IntegrationCreated +1 +\S+Z +rejected +HTTP 400\n1 +pms)")));
  auto list_json = run(f.config, {"dlq", "list", "--json", "--limit", "1"});
  CHECK(list_json.exit == 0);
  CHECK(
      std::regex_match(list_json.out, std::regex(R"(\[\{"id":2,"delivery_id":2,"batch_id":2,"target":"pms".*\}\]\n)")));
  CHECK(run(f.config, {"dlq", "list", "--target", "other"}).out.find("\n1 ") == std::string::npos);
  CHECK(run(f.config, {"dlq", "list", "--since", "2099-01-01T00:00:00Z", "--json"}).out == "[]\n");

  auto show = run(f.config, {"dlq", "show", "1"});
  CHECK(show.exit == 0);
  CHECK(show.out.find("reason:      rejected") != std::string::npos);
  CHECK(show.out.find("no thanks") != std::string::npos);
  CHECK(show.out.find("\"webhook-id\":\"msg_") != std::string::npos);
  CHECK(show.out.find("webhook-signature") != std::string::npos);
  CHECK(show.out.find("very-secret-header") == std::string::npos);
  CHECK(show.out.find(test::sample("general.json")) != std::string::npos);
  auto show_json = run(f.config, {"dlq", "show", "1", "--json"});
  CHECK(show_json.exit == 0);
  CHECK(show_json.out.find(R"("attempts":[{"started_at":)") != std::string::npos);
  CHECK(show_json.out.find(R"("payload":"{\n    \"EnterpriseId\")") != std::string::npos);
}

TEST_CASE("errors: unknown id exit 1 naming it, bad flag or verb exit 2") {
  Fixture f;
  auto missing = run(f.config, {"dlq", "show", "999"});
  CHECK(missing.exit == 1);
  CHECK(missing.err.find("no dead letter with id 999") != std::string::npos);
  auto replay_missing = run(f.config, {"replay", "1", "999"});
  CHECK(replay_missing.exit == 1);
  CHECK(replay_missing.err.find("no dead letter with id 999") != std::string::npos);
  CHECK(queryInt(f.journal, "SELECT count(*) FROM deliveries WHERE state = 'dead'") == 2);  // all or nothing
  CHECK(run(f.config, {"dlq", "list", "--colour"}).exit == 2);
  CHECK(run(f.config, {"dlq", "frobnicate"}).exit == 2);
  CHECK(run(f.config, {"replay"}).exit == 2);
  CHECK(run(f.config, {"replay", "abc"}).exit == 2);
  CHECK(run(f.config, {"replay", "--received-since", "2h"}).exit == 2);
  CHECK(run(f.config, {"replay", "--received-since", "yesterday", "--target", "pms"}).exit == 2);
  CHECK(run(f.config, {"dlq", "purge", "--older-than", "ages"}).exit == 2);
  auto no_target = run(f.config, {"replay", "--received-since", "2h", "--target", "nope"});
  CHECK(no_target.exit == 1);
  CHECK(no_target.err.find("no target 'nope'") != std::string::npos);
  auto bad_config = run(f.dir.file("missing.ini"), {"status"});
  CHECK(bad_config.exit == 1);
  CHECK(bad_config.err.find("missing.ini") != std::string::npos);
}

TEST_CASE("--dry-run changes nothing; replay and purge without a relay write directly") {
  Fixture f;
  const auto before = queryInt(f.journal, "SELECT count(*) FROM deliveries WHERE state = 'dead'");
  CHECK(run(f.config, {"replay", "--dead", "--dry-run"}).out ==
        "would replay 2 deliveries (picked up when the relay next runs)\n");
  CHECK(run(f.config, {"replay", "1", "2", "--dry-run"}).exit == 0);
  CHECK(
      run(f.config, {"replay", "--received-since", "1h", "--target", "pms", "--dry-run"}).out.find("would replay 2") ==
      0);
  CHECK(run(f.config, {"dlq", "purge", "--dry-run"}).out == "would purge 2 dead letters\n");
  CHECK(queryInt(f.journal, "SELECT count(*) FROM deliveries WHERE state = 'dead'") == before);
  CHECK(queryInt(f.journal, "SELECT count(*) FROM dead_letters") == 2);

  // ids from stdin, like postsuper
  auto replayed = run(f.config, {"replay", "-", "--json"}, "1\n");
  CHECK(replayed.exit == 0);
  CHECK(replayed.out == "{\"replayed\":1,\"dry_run\":false,\"via_relay\":false}\n");
  CHECK(queryInt(f.journal, "SELECT count(*) FROM deliveries WHERE state = 'pending' AND attempts = 0") == 1);
  CHECK(run(f.config, {"dlq", "purge", "--older-than", "1d"}).out == "purged 0 dead letters\n");
  CHECK(run(f.config, {"dlq", "purge"}).out == "purged 2 dead letters\n");
  CHECK(queryInt(f.journal, "SELECT count(*) FROM dead_letters") == 0);
  // The replayed delivery is live work again and survives the purge.
  CHECK(queryInt(f.journal, "SELECT count(*) FROM deliveries WHERE state = 'pending'") == 1);
}

TEST_CASE("while the relay serves: replay goes through it and is delivered within seconds") {
  Fixture f;
  f.refuse = false;
  auto relay = f.startRelay();
  auto replayed = run(f.config, {"replay", "--dead", "--target", "pms"});
  CHECK(replayed.exit == 0);
  CHECK(replayed.out == "replayed 2 deliveries (through the running relay)\n");
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

  auto resend = run(f.config, {"replay", "--received-since", "1h", "--target", "pms", "--json"});
  CHECK(resend.out == "{\"replayed\":2,\"dry_run\":false,\"via_relay\":true}\n");
  REQUIRE(f.sink.waitForRequests(6, 3s));
  CHECK(run(f.config, {"dlq", "purge"}).out == "purged 0 dead letters (through the running relay)\n");
  auto status = run(f.config, {"status"});
  CHECK(status.exit == 0);
  auto migrate = run(f.config, {"migrate"});
  CHECK(migrate.exit == 0);
  CHECK(migrate.out.find("a running relay holds it") != std::string::npos);
}

TEST_CASE("check-config prints effective settings and never a token or secret") {
  Fixture f;
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"check-config"}, std::vector<std::string>{"check-config", "--json"}}) {
    auto checked = run(f.config, args);
    CHECK(checked.exit == 0);
    CHECK(checked.out.find("max_attempts") != std::string::npos);
    CHECK(checked.out.find(test::kToken) == std::string::npos);
    CHECK(checked.out.find("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == std::string::npos);
    CHECK(checked.out.find("very-secret-header") == std::string::npos);
  }
}

TEST_CASE("a second relay on the same journal is refused") {
  Fixture f;
  auto relay = f.startRelay();
  auto second = run(f.config, {"serve"});
  CHECK(second.exit == 1);
  CHECK(second.err.find("is in use by another process") != std::string::npos);
}

TEST_CASE("every command has --help") {
  Fixture f;
  for (const char* command : {"serve", "status", "dlq", "replay", "check-config", "migrate"}) {
    auto help = run(f.config, {command, "--help"});
    CHECK(help.exit == 0);
    CHECK(help.out.find("usage: mews-relay") == 0);
    CHECK(help.out.find("example") != std::string::npos);
  }
}
