// Several relays on one PostgreSQL journal (journal/leases.h, relay/cluster.h):
// the leases and their fencing, statement by statement; targets spread over
// the relays; a relay killed with SIGKILL has its targets taken over within
// 10 s, and every acknowledged batch reaches every target with its own
// webhook-id; two live relays with one name are refused. PostgreSQL only.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "common/clock.h"
#include "ingest/resend_guard.h"
#include "journal/journal.h"
#include "journal/leases.h"
#include "journal/queue.h"
#include "relay/relay.h"
#include "support/delivery_rows.h"
#include "support/operator_fixture.h"
#include "support/relay_process.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::fencedAs;
using test::inTransaction;

namespace {

using test::kT0;

journal::AttemptRecord delivered(std::int64_t delivery_id) {
  journal::AttemptRecord record;
  record.delivery_id = delivery_id;
  record.target = "t";
  record.started_ms = kT0;
  record.duration_ms = 5;
  record.status = 200;
  record.outcome = journal::AttemptOutcome::Delivered;
  record.now_ms = kT0 + 10;
  return record;
}

std::string stateOf(journal::Journal& journal, std::int64_t id) {
  journal::Statement select(journal.db(), "SELECT state FROM deliveries WHERE id = ?");
  select.bind(1, id);
  REQUIRE(select.step());
  return select.columnText(0);
}

}  // namespace

TEST_CASE("leases: a takeover bumps the epoch and releases the claims; the old holder can change nothing") {
  test::DeliveryRows rows;
  const auto location = test::journalAt(rows.dir.file("relay.db"));
  auto a = fencedAs(location, "a");
  auto b = fencedAs(location, "b");
  const std::int64_t first = rows.receive(kT0, {"t"}).front();
  const std::int64_t second = rows.receive(kT0, {"t"}).front();

  // Without a lease no relay claims.
  CHECK_FALSE(inTransaction(a, [&] { return journal::claimDelivery(a, first, kT0); }));
  CHECK(journal::acquireLease(a, "t", "a", 0ms, kT0) == 1);
  CHECK_FALSE(journal::acquireLease(b, "t", "b", 0ms, kT0));  // held, unexpired
  CHECK_FALSE(inTransaction(b, [&] { return journal::claimDelivery(b, first, kT0); }));
  CHECK(inTransaction(a, [&] { return journal::claimDelivery(a, first, kT0); }));
  CHECK(journal::renewLease(a, "t", "a", 1));

  // The lease runs out (the server's clock: set back rather than waited for).
  a.db().exec("UPDATE target_leases SET expires_at = clock_timestamp() - interval '1 second'");
  CHECK_FALSE(inTransaction(a, [&] { return journal::claimDelivery(a, second, kT0); }));
  CHECK_FALSE(journal::acquireLease(b, "t", "b", 5'000ms, kT0));  // not expired long enough for a standby
  CHECK(journal::acquireLease(b, "t", "b", 0ms, kT0) == 2);
  CHECK(stateOf(b, first) == "pending");  // a's claim, released by the takeover

  // a, fenced out: its late record, its release and its renewal change nothing.
  CHECK_FALSE(inTransaction(a, [&] { return journal::recordAttempt(a, delivered(first)); }));
  CHECK(stateOf(a, first) == "pending");
  CHECK_FALSE(journal::renewLease(a, "t", "a", 1));
  CHECK(inTransaction(b, [&] { return journal::claimDelivery(b, first, kT0); }));
  CHECK(inTransaction(a, [&] { return journal::releaseInFlight(a, kT0, {first}); }) == 0);
  CHECK(inTransaction(a, [&] { return journal::releaseInFlight(a, kT0); }) == 0);
  CHECK_FALSE(inTransaction(a, [&] { return journal::recordAttempt(a, delivered(first)); }));
  CHECK(stateOf(b, first) == "in_flight");
  CHECK(inTransaction(b, [&] { return journal::recordAttempt(b, delivered(first)); }));
  CHECK(stateOf(b, first) == "delivered");

  // The holder re-acquiring (a restart) gets a new epoch, and its old claims back.
  CHECK(inTransaction(b, [&] { return journal::claimDelivery(b, second, kT0); }));
  CHECK(journal::acquireLease(b, "t", "b", 0ms, kT0) == 3);
  CHECK(stateOf(b, second) == "pending");
  journal::releaseLease(b, "t", "b", 3);
  // Released: free at once for the preferred relay; a standby still waits its grace.
  CHECK_FALSE(journal::acquireLease(a, "t", "a", 5'000ms, kT0));
  CHECK(journal::acquireLease(a, "t", "a", 0ms, kT0) == 4);
}

TEST_CASE("preferred owners: spread over the live relays; a relay leaving moves only its own targets") {
  std::vector<std::string> targets;
  for (int i = 0; i < 300; ++i) targets.push_back(fmt::format("target{}", i));
  const std::vector<std::string> three{"relay-a", "relay-b", "relay-c"};
  std::map<std::string, int> counts;
  std::map<std::string, std::string> before;
  for (const auto& target : targets) {
    before[target] = journal::preferredOwner(target, three);
    ++counts[before[target]];
  }
  for (const auto& relay : three) CHECK(counts[relay] > 70);  // 100 each, give or take
  for (const auto& target : targets) {
    const auto after = journal::preferredOwner(target, {"relay-a", "relay-b"});
    if (before[target] != "relay-c") CHECK(after == before[target]);
  }
  CHECK(journal::preferredOwner("x", {}).empty());
}

TEST_CASE("two relays serve one journal: targets spread, every batch delivered, a killed relay's targets taken over") {
  test::TempDir dir;
  const std::string journal_path = dir.file("relay.db");
  test::Sink sink;
  // Names that split the four targets between the two relays.
  const std::vector<std::string> targets{"t0", "t1", "t2", "t3"};
  std::string first = "relay-one";
  std::string second;
  for (int i = 0; second.empty() && i < 100; ++i) {
    const std::string candidate = fmt::format("relay-{}", i);
    int mine = 0;
    for (const auto& target : targets) mine += journal::preferredOwner(target, {first, candidate}) == first;
    if (mine == 2) second = candidate;
  }
  REQUIRE_FALSE(second.empty());
  std::string sections;
  for (const auto& target : targets) sections += test::targetSection(target, sink.url("/" + target));
  const auto configFor = [&](const std::string& name) {
    const std::string path = dir.file(name + ".ini");
    std::ofstream(path) << test::relayConfigWithTargets(journal_path, sections, "[relay]\nname = " + name + "\n");
    return path;
  };
  auto one = std::make_unique<test::RelayProcess>(configFor(first));
  test::RelayProcess two(configFor(second));

  const auto owners = [&] {
    std::map<std::string, std::string> out;
    journal::Journal reader(test::journalAt(journal_path), {0, true});
    for (const auto& lease : journal::leases(reader))
      if (lease.expires_in_s > 0) out[lease.target] = journal::ownerName(lease.owner);
    return out;
  };
  REQUIRE(test::waitUntil(
      [&] {
        const auto held = owners();
        int by_first = 0;
        for (const auto& [target, owner] : held) by_first += owner == first;
        return held.size() == 4 && by_first == 2;
      },
      15s));

  const auto post = [&](std::uint16_t port, int n) {
    return test::httpRequest(port, "POST", test::kIngestUri, test::generalBatch(n)).status;
  };
  for (int n = 1; n <= 20; ++n) REQUIRE(post(n % 2 ? one->ingestPort() : two.ingestPort(), n) == 202);
  const auto perTarget = [&] {
    std::map<std::string, std::set<std::string>> ids;
    for (const auto& request : sink.requests()) ids[request.uri.substr(1)].insert(request.headers.at("webhook-id"));
    return ids;
  };
  const auto allHave = [&](std::size_t count) {
    const auto ids = perTarget();
    return std::all_of(targets.begin(), targets.end(),
                       [&](const std::string& t) { return ids.count(t) && ids.at(t).size() >= count; });
  };
  REQUIRE(test::waitUntil([&] { return allHave(20); }, 10s));

  // status, from either relay's configuration: who dispatches what, every relay live.
  const auto status = test::runCommand(configFor(second), {"status"});
  REQUIRE(status.exit == 0);
  CHECK(status.out.find("DISPATCHED BY") != std::string::npos);
  for (const auto& name : {first, second}) CHECK(std::regex_search(status.out, std::regex("\n" + name + " +live +")));
  const auto status_json = test::runCommand(configFor(second), {"status", "--json"});
  CHECK(status_json.out.find(R"("dispatched_by":")" + first + "\"") != std::string::npos);
  CHECK(status_json.out.find(R"("name":")" + second + R"(","state":"live")") != std::string::npos);

  // The first relay dies without a word; the second goes on acknowledging, and
  // takes the first's targets over once their leases run out.
  const auto killed_at = std::chrono::steady_clock::now();
  one->signal(SIGKILL);
  for (int n = 21; n <= 30; ++n) REQUIRE(post(two.ingestPort(), n) == 202);
  REQUIRE(test::waitUntil([&] { return allHave(30); }, 15s));
  const auto takeover = std::chrono::steady_clock::now() - killed_at;
  MESSAGE("every target had all 30 batches " << std::chrono::duration<double>(takeover).count()
                                             << " s after the first relay was killed");
  CHECK(takeover < 10s);
  for (const auto& [target, ids] : perTarget()) CHECK(ids.size() == 30);  // distinct webhook-ids: none lost
  for (const auto& [target, owner] : owners()) CHECK(owner == second);
  CHECK(two.log().find("lease acquired") != std::string::npos);
  one.reset();
}

TEST_CASE("a second live relay with the same name is refused") {
  test::TempDir dir;
  const std::string ini = test::relayConfig(dir.file("relay.db"), "[relay]\nname = same\n");
  auto relay = test::startRelay(ini);
  CHECK_THROWS_WITH(test::startRelay(ini), doctest::Contains("another relay named 'same' is live"));
}

TEST_CASE("Mews's resend reaches another relay than the one that answered 503: recognised once, across relays") {
  test::TempDir dir;
  test::Sink sink;
  const std::string journal = dir.file("relay.db");
  const std::string targets = test::targetSection("pms", sink.url());
  auto first = test::startRelay(test::relayConfigWithTargets(journal, targets, "[relay]\nname = first\n"));
  auto second = test::startRelay(test::relayConfigWithTargets(journal, targets, "[relay]\nname = second\n"));
  const std::string body = test::generalBatch(3);

  // The first relay's writer held past the commit limit: 503, committed anyway.
  first->writer().submit([](journal::Journal&) {
    std::this_thread::sleep_for(4500ms);
    return std::int64_t{0};
  });
  const auto refused = test::httpRequest(first->ingestPort(), "POST", test::kIngestUri, body);
  CHECK(refused.status == 503);
  REQUIRE(test::waitUntil([&] { return test::queryInt(journal, "SELECT count(*) FROM late_commits") == 1; }, 8s));
  std::this_thread::sleep_for(ingest::ResendGuard::kShareEvery + 500ms);  // the second relay reads it

  const auto resend = test::httpRequest(second->ingestPort(), "POST", test::kIngestUri, body);
  CHECK(resend.status == 202);
  CHECK(resend.body == R"({"batch":1,"events":3,"resend":true})");
  // The same bytes again are a new notification: stored, on either relay.
  const auto again = test::httpRequest(first->ingestPort(), "POST", test::kIngestUri, body);
  CHECK(again.status == 202);
  CHECK(again.body.find("resend") == std::string::npos);
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 2);
  REQUIRE(sink.waitForRequests(2, 10s));
}

TEST_CASE("relays whose target definitions differ are reported: /readyz, /metrics, status") {
  test::TempDir dir;
  test::Sink sink;
  const std::string journal = dir.file("relay.db");
  auto first = test::startRelay(
      test::relayConfigWithTargets(journal, test::targetSection("pms", sink.url()), "[relay]\nname = first\n"));
  auto second = test::startRelay(test::relayConfigWithTargets(journal, test::targetSection("pms", sink.url(), "", "3s"),
                                                              "[relay]\nname = second\n"));
  const auto readyz = [&](const relay::Relay& relay) {
    return test::httpRequest(test::adminPort(relay), "GET", "/readyz").body;
  };
  REQUIRE(test::waitUntil([&] { return readyz(*first).find("define their targets differently") != std::string::npos; },
                          5s));
  CHECK(readyz(*first).find("(second)") != std::string::npos);
  CHECK(readyz(*second).find("(first)") != std::string::npos);
  const auto metrics = test::httpRequest(test::adminPort(*first), "GET", "/metrics").body;
  CHECK(metrics.find("\nmews_relay_cluster_definitions_differ 1\n") != std::string::npos);
  CHECK(metrics.find("\nmews_relay_cluster_relays 2\n") != std::string::npos);
}
