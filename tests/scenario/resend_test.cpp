// Recognising Mews's resends: a batch committed after the relay answered 503
// (the commit outlasted the 4 s limit) and then posted again byte for byte is
// answered 202 with the first batch's id and stored once; the same bytes after
// that are a new notification (a General webhook has no timestamp: a real second
// change can be byte-identical), stored and delivered; nothing else is
// deduplicated. The writer is held past the limit by a job that sleeps (in
// process) or by another connection holding the journal's write lock (the
// built binary).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <regex>
#include <thread>

#include "journal/journal.h"
#include "relay/relay.h"
#include "support/relay_process.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::queryInt;

namespace {

const std::string& kUri = test::kIngestUri;

std::int64_t batchIdOf(const test::HttpResult& answer) {
  std::smatch match;
  REQUIRE(std::regex_search(answer.body, match, std::regex(R"("batch":(\d+))")));
  return std::stoll(match[1]);
}

// Posts `body` while the writer is busy with a job that sleeps past the commit
// limit: the relay answers 503, and the batch commits afterwards.
test::HttpResult postWhileWriterHeld(relay::Relay& relay, const std::string& body) {
  relay.writer().submit([](journal::Journal&) {
    std::this_thread::sleep_for(4500ms);
    return std::int64_t{0};
  });
  return test::httpRequest(relay.ingestPort(), "POST", kUri, body);
}

std::string relayIni(const std::string& journal, const test::Sink& sink, const std::string& server_extra = "") {
  return fmt::format(
      "[server]\nlisten = 127.0.0.1:0\ntokens = {}\n{}[admin]\nlisten = 127.0.0.1:0\n"
      "[journal]\n{}\nmin_free = 0B\n[target.pms]\nurl = {}\nbackoff = 10ms..50ms\n",
      test::kToken, server_extra, test::journalKey(journal), sink.url());
}

}  // namespace

TEST_CASE("a resend of a batch committed after a 503 is answered with its id once; the same bytes again are stored") {
  test::TempDir dir;
  test::Sink sink;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(relayIni(journal, sink));
  const std::string body = test::sample("general.json");

  const auto first = postWhileWriterHeld(*relay, body);
  CHECK(first.status == 503);
  CHECK(first.body.find("taking too long") != std::string::npos);
  // It committed all the same, and is known as committed late.
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM late_commits") == 1; }, 5s));
  CHECK(queryInt(journal, "SELECT count(*) FROM batches") == 1);

  // Mews resends the same bytes a few minutes later.
  const auto resend = test::httpRequest(relay->ingestPort(), "POST", kUri, body);
  CHECK(resend.status == 202);
  CHECK(resend.body == R"({"batch":1,"events":5,"resend":true})");
  CHECK(queryInt(journal, "SELECT count(*) FROM batches") == 1);
  CHECK(queryInt(journal, "SELECT count(*) FROM late_commits") == 0);
  const auto metrics = test::httpRequest(test::adminPort(*relay), "GET", "/metrics");
  CHECK(metrics.body.find("mews_relay_resends_recognised_total 1") != std::string::npos);
  // Nobody woke the dispatcher for a commit answered 503: it finds the batch at
  // its next pass, within its 5 s idle wait.
  REQUIRE(sink.waitForRequests(1, 10s));
  std::this_thread::sleep_for(300ms);
  CHECK(sink.requests().size() == 1);

  // The same bytes once more: the reservation changed again. The late commit
  // answered its one resend; this is a new batch, delivered.
  const auto again = test::httpRequest(relay->ingestPort(), "POST", kUri, body);
  CHECK(again.status == 202);
  CHECK(again.body == R"({"batch":2,"events":5})");
  CHECK(queryInt(journal, "SELECT count(*) FROM batches") == 2);
  REQUIRE(sink.waitForRequests(2, 10s));
  CHECK(sink.requests().back().body == body);

  // Nothing else is deduplicated: identical bodies acknowledged normally are
  // separate notifications (the same entity can change twice).
  const std::string other = test::sample("integration.json");
  const auto a = test::httpRequest(relay->ingestPort(), "POST", kUri, other);
  const auto b = test::httpRequest(relay->ingestPort(), "POST", kUri, other);
  CHECK(a.status == 202);
  CHECK(b.status == 202);
  CHECK(batchIdOf(a) != batchIdOf(b));
  CHECK(b.body.find("resend") == std::string::npos);
  CHECK(queryInt(journal, "SELECT count(*) FROM batches") == 4);
}

TEST_CASE("past resend_window, or with it off, the same bytes are a new batch") {
  test::TempDir dir;
  test::Sink sink;
  SUBCASE("past the window") {
    const std::string journal = dir.file("window.db");
    auto relay = test::startRelay(relayIni(journal, sink, "resend_window = 6s\n"));
    const auto started = std::chrono::steady_clock::now();
    CHECK(postWhileWriterHeld(*relay, test::generalBatch(3)).status == 503);
    REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM late_commits") == 1; }, 5s));
    // Not consumed by a post within the window: the window alone ends it.
    std::this_thread::sleep_until(started + 6500ms);
    const auto late = test::httpRequest(relay->ingestPort(), "POST", kUri, test::generalBatch(3));
    CHECK(late.status == 202);
    CHECK(batchIdOf(late) == 2);
  }
  SUBCASE("off") {
    const std::string journal = dir.file("off.db");
    auto relay = test::startRelay(relayIni(journal, sink, "resend_window = 0s\n"));
    CHECK(postWhileWriterHeld(*relay, test::generalBatch(3)).status == 503);
    REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM batches") == 1; }, 5s));
    CHECK(queryInt(journal, "SELECT count(*) FROM late_commits") == 0);
    CHECK(batchIdOf(test::httpRequest(relay->ingestPort(), "POST", kUri, test::generalBatch(3))) == 2);
  }
}

TEST_CASE("on the binary: a locked journal past the limit, then the resend, before and after a restart" *
          doctest::test_suite("sqlite")) {
  test::TempDir dir;
  test::Sink sink;
  const std::string journal = dir.file("relay.db");
  const std::string config_path = dir.file("relay.ini");
  test::writeFile(config_path, relayIni(journal, sink));
  auto relay = std::make_unique<test::RelayProcess>(config_path);
  const std::string body = test::sample("general.json");

  // Another connection holds the journal's write lock for longer than the
  // relay waits for a commit (4 s), but less than SQLite's busy timeout (5 s).
  std::thread holder([&] {
    journal::Database db(journal, journal::Database::Mode::ReadWrite);
    db.exec("BEGIN IMMEDIATE");
    std::this_thread::sleep_for(4600ms);
    db.exec("ROLLBACK");
  });
  std::this_thread::sleep_for(200ms);
  const auto first = test::httpRequest(relay->ingestPort(), "POST", kUri, body);
  holder.join();
  CHECK(first.status == 503);
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM late_commits") == 1; }, 5s));

  // The record survives a restart within the window.
  CHECK(relay->stop() == 0);
  relay = std::make_unique<test::RelayProcess>(config_path);
  const auto resend = test::httpRequest(relay->ingestPort(), "POST", kUri, body);
  CHECK(resend.status == 202);
  CHECK(resend.body == R"({"batch":1,"events":5,"resend":true})");
  CHECK(relay->waitForLog("msg=\"resend recognised; nothing stored\"", 2s));
  CHECK(test::httpRequest(relay->adminPort(), "GET", "/metrics").body.find("mews_relay_resends_recognised_total 1") !=
        std::string::npos);
  CHECK(queryInt(journal, "SELECT count(*) FROM batches") == 1);

  // Consumed: the same bytes after a restart are a new batch too.
  CHECK(relay->stop() == 0);
  relay = std::make_unique<test::RelayProcess>(config_path);
  const auto again = test::httpRequest(relay->ingestPort(), "POST", kUri, body);
  CHECK(again.status == 202);
  CHECK(batchIdOf(again) == 2);
  REQUIRE(sink.waitForRequests(2, 10s));
  std::this_thread::sleep_for(300ms);
  CHECK(sink.requests().size() == 2);
}
