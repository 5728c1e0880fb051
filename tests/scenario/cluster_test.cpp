// Several relays on one PostgreSQL journal (journal/leases.h, relay/cluster.h):
// the leases and their fencing, statement by statement; targets spread over
// the relays; a relay killed with SIGKILL has its targets taken over within
// 10 s, and every acknowledged batch reaches every target with its own
// webhook-id; two live relays with one name are refused. PostgreSQL only.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>

#include <atomic>
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

// An attempt on target t's delivery, answered `status`: delivered, or a retry due a minute later.
journal::AttemptRecord attemptOn(std::int64_t delivery_id, journal::AttemptOutcome outcome, int status) {
  journal::AttemptRecord record;
  record.delivery_id = delivery_id;
  record.target = "t";
  record.started_ms = kT0;
  record.duration_ms = 5;
  record.status = status;
  record.outcome = outcome;
  record.next_due_ms = kT0 + 60'000;
  record.now_ms = kT0 + 10;
  return record;
}

// "state claim N": a row's state and the lease epoch it was claimed under.
std::string rowOf(journal::Journal& journal, std::int64_t id) {
  journal::Statement select(journal.db(), "SELECT state || ' claim ' || claim FROM deliveries WHERE id = ?");
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
  CHECK(rowOf(b, first) == "pending claim 1");  // a's claim, released by the takeover

  // a, fenced out: its late record, its release and its renewal change nothing.
  CHECK_FALSE(inTransaction(
      a, [&] { return journal::recordAttempt(a, attemptOn(first, journal::AttemptOutcome::Delivered, 200)); }));
  CHECK(rowOf(a, first) == "pending claim 1");
  CHECK_FALSE(journal::renewLease(a, "t", "a", 1));
  CHECK(inTransaction(b, [&] { return journal::claimDelivery(b, first, kT0); }));
  CHECK(inTransaction(a, [&] { return journal::releaseInFlight(a, kT0, {first}); }) == 0);
  CHECK(inTransaction(a, [&] { return journal::releaseInFlight(a, kT0); }) == 0);
  CHECK_FALSE(inTransaction(
      a, [&] { return journal::recordAttempt(a, attemptOn(first, journal::AttemptOutcome::Delivered, 200)); }));
  CHECK(rowOf(b, first) == "in_flight claim 2");
  CHECK(inTransaction(
      b, [&] { return journal::recordAttempt(b, attemptOn(first, journal::AttemptOutcome::Delivered, 200)); }));
  CHECK(rowOf(b, first) == "delivered claim 2");

  // The holder re-acquiring (a restart) gets a new epoch, and its old claims back.
  CHECK(inTransaction(b, [&] { return journal::claimDelivery(b, second, kT0); }));
  CHECK(journal::acquireLease(b, "t", "b", 0ms, kT0) == 3);
  CHECK(rowOf(b, second) == "pending claim 2");
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

// The adversarial review of issue 22: each case a hole it found and
// reproduced against the first version (ff2a36d), where every one failed.

TEST_CASE("a claim whose COMMIT lands after another relay's acquisition is released or claimable, not stuck") {
  // The claim runs in the writer's transaction: its UPDATE and its COMMIT are
  // separate round trips (a busy writer, a slow network). The lease expires
  // at the server between them and relay b, the preferred owner, acquires it.
  test::DeliveryRows rows;
  const auto location = test::journalAt(rows.dir.file("relay.db"));
  auto a = fencedAs(location, "a");
  auto b = fencedAs(location, "b");
  const std::int64_t id = rows.receive(kT0, {"t"}).front();
  REQUIRE(journal::acquireLease(a, "t", "a", 0ms, kT0) == 1);
  a.db().exec("UPDATE target_leases SET expires_at = clock_timestamp() + interval '1 second'");

  std::optional<std::int64_t> b_epoch;
  {
    journal::Transaction claim(a.db());
    REQUIRE(journal::claimDelivery(a, id, kT0));  // the lease is unexpired: a's claim is made
    std::this_thread::sleep_for(1'200ms);         // the COMMIT is slow to arrive; the lease expires
    // b acquires on its own thread: with the lease row locked by a's claim it
    // would wait for a's COMMIT (the proposed fix).
    std::thread acquire([&] { b_epoch = journal::acquireLease(b, "t", "b", 0ms, kT0); });
    std::this_thread::sleep_for(300ms);
    claim.commit();
    acquire.join();
  }
  REQUIRE(b_epoch == 2);
  // a's attempt is cut (its local validity ended long before); its fenced release:
  inTransaction(a, [&] { return journal::releaseInFlight(a, kT0, {id}); });
  // b must be able to deliver the batch: the row pending (released by b's
  // acquisition), or at least claimable by b.
  INFO("row: " << rowOf(b, id));
  const bool claimable = inTransaction(b, [&] { return journal::claimDelivery(b, id, kT0); });
  CHECK(claimable);
}

TEST_CASE("a second process with the relay's name cannot make the first one's claims pass the fence") {
  // relay a is paused (a VM freeze, a stop-the-world) or cut off from the
  // database for more than kLiveWithin; the operator's standby host, with the
  // same configuration file and so the same [relay] name, starts: its
  // awaitNameFree passes (a's beat is stale) and it takes a's leases at once
  // (acquireLease: owner = excluded.owner), unexpired as they are. a resumes
  // with its local validity not yet ended for the claim it is about to make.
  // (Fixed: a lease's owner, and a writer's fence, is the process: name/instance.)
  test::DeliveryRows rows;
  const auto location = test::journalAt(rows.dir.file("relay.db"));
  const std::string first_owner = journal::leaseOwner("a", "instance-1");
  const std::string second_owner = journal::leaseOwner("a", "instance-2");
  auto first = fencedAs(location, first_owner);
  auto second = fencedAs(location, second_owner);
  const std::int64_t one = rows.receive(kT0, {"t"}).front();
  const std::int64_t two = rows.receive(kT0, {"t"}).front();
  REQUIRE(journal::acquireLease(first, "t", first_owner, 0ms, kT0) == 1);
  journal::heartbeat(first, {"a", "instance-1", "host-1", "v", "t", "f", "x:1", 0}, true);

  // The second process: the lease is unexpired, yet it is a's.
  const auto taken = journal::acquireLease(second, "t", second_owner, 0ms, kT0);
  CHECK_FALSE(taken);
  journal::heartbeat(second, {"a", "instance-2", "host-2", "v", "t", "f", "x:1", 0}, true);

  // Both claim; under fencing at most one of them may.
  const bool first_claims = inTransaction(first, [&] { return journal::claimDelivery(first, one, kT0); });
  const bool second_claims = inTransaction(second, [&] { return journal::claimDelivery(second, two, kT0); });
  CHECK_FALSE((first_claims && second_claims));

  // The first process's keeper sees the twin (it logs an error naming the
  // relay: cluster.cpp round()).
  CHECK(journal::otherInstanceAge(first, "a", "instance-1").has_value());
}

TEST_CASE("relays whose target secret or header differs are reported like any other differing definition") {
  // An operator rotates the target's signing secret (or its Authorization
  // header) on one relay host only. Whichever relay holds the lease signs:
  // after a takeover the target rejects every signature. The fingerprint
  // hashes the masked values (cluster.cpp fingerprintOf), so nothing reports it.
  test::TempDir dir;
  test::Sink sink;
  const std::string journal = dir.file("relay.db");
  const auto section = [&](const std::string& secret, const std::string& bearer) {
    return test::targetSection("pms", sink.url(), "secret = " + secret + "\nheader.Authorization = Bearer " + bearer);
  };
  auto first = test::startRelay(test::relayConfigWithTargets(
      journal, section("whsec_YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh", "old"), "[relay]\nname = first\n"));
  auto second = test::startRelay(test::relayConfigWithTargets(
      journal, section("whsec_YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJi", "new"), "[relay]\nname = second\n"));
  const auto metrics = [&] { return test::httpRequest(test::adminPort(*first), "GET", "/metrics").body; };
  REQUIRE(test::waitUntil([&] { return metrics().find("\nmews_relay_cluster_relays 2\n") != std::string::npos; }, 5s));
  std::this_thread::sleep_for(1500ms);  // a keeper round or two after both are live
  // Anchored at the line's start: "# HELP mews_relay_cluster_definitions_differ 1 when ..." contains
  // the unanchored text, so cluster_test's check of the same metric passes whatever the value.
  CHECK(metrics().find("\nmews_relay_cluster_definitions_differ 1\n") != std::string::npos);
  // Neither secret nor header value reaches the relays table.
  for (const auto* secret : {"YWFhYWFh", "YmJiYmJi", "Bearer"})
    CHECK(
        test::queryInt(journal, fmt::format("SELECT count(*) FROM relays WHERE fingerprint || targets || admin || host "
                                            "LIKE '%{}%'",
                                            secret)) == 0);
}

TEST_CASE("the metric's sample, not its help text: cluster_test's unanchored check passes with the relays agreeing") {
  test::TempDir dir;
  test::Sink sink;
  const std::string journal = dir.file("relay.db");
  const std::string targets = test::targetSection("pms", sink.url());
  auto first = test::startRelay(test::relayConfigWithTargets(journal, targets, "[relay]\nname = first\n"));
  auto second = test::startRelay(test::relayConfigWithTargets(journal, targets, "[relay]\nname = second\n"));
  const auto metrics = [&] { return test::httpRequest(test::adminPort(*first), "GET", "/metrics").body; };
  REQUIRE(test::waitUntil([&] { return metrics().find("\nmews_relay_cluster_relays 2\n") != std::string::npos; }, 5s));
  CHECK(metrics().find("\nmews_relay_cluster_definitions_differ 0\n") != std::string::npos);
  // cluster_test.cpp's check, anchored to the sample (it matched the HELP text before).
  CHECK_FALSE(metrics().find("\nmews_relay_cluster_definitions_differ 1\n") != std::string::npos);
}

TEST_CASE("an attempt claimed under an older epoch of this relay's own lease cannot record over the newer claim") {
  // The keeper's round is slow (the database stalls 4 to 6 s): the guard drops
  // the lease locally, and the next round re-acquires it (same owner: at once,
  // epoch + 1, the target's in_flight rows back to pending). A work item
  // claimed under the old epoch, still queued, is sent (dispatches() is true
  // again) while the dispatcher claims the same row again under the new one.
  // The fence compares the row's claim with the lease's *current* epoch, not
  // with the epoch the attempt was claimed under, so the stale attempt's
  // record passes and the fresh attempt's is refused.
  test::DeliveryRows rows;
  const auto location = test::journalAt(rows.dir.file("relay.db"));
  auto a = fencedAs(location, "a");
  const std::int64_t id = rows.receive(kT0, {"t"}).front();
  REQUIRE(journal::acquireLease(a, "t", "a", 0ms, kT0) == 1);
  REQUIRE(inTransaction(a, [&] { return journal::claimDelivery(a, id, kT0); }));  // the stale item: epoch 1
  REQUIRE(journal::acquireLease(a, "t", "a", 0ms, kT0) == 2);                     // dropped locally, re-acquired
  REQUIRE(inTransaction(a, [&] { return journal::claimDelivery(a, id, kT0); }));  // the fresh item: epoch 2
  journal::AttemptRecord stale = attemptOn(id, journal::AttemptOutcome::Retry, 500);
  stale.claim = 1;  // the engine records the epoch each item was claimed under
  CHECK_FALSE(inTransaction(a, [&] { return journal::recordAttempt(a, stale); }));
  INFO("row: " << rowOf(a, id));
  CHECK(rowOf(a, id) == "in_flight claim 2");  // the fresh attempt's claim, untouched
}

TEST_CASE(
    "a lease handed over to its preferred relay goes to the preferred relay, not to whichever standby looks first") {
  // Relay a holds t; b joins and is t's preferred owner; a hands over
  // (releaseLease). A standby (c: live, configured for t, not preferred)
  // waits kStandbyGrace after expiry before it may acquire, so that the
  // preferred relay wins without a race (journal/leases.h). The release sets
  // expires_at an hour back: the standby's grace has long passed.
  test::TempDir dir;
  const auto location = test::journalAt(dir.file("relay.db"));
  auto a = fencedAs(location, "a");
  auto c = fencedAs(location, "c");
  REQUIRE(journal::acquireLease(a, "t", "a", 0ms, kT0) == 1);
  journal::releaseLease(a, "t", "a", 1);
  CHECK_FALSE(journal::acquireLease(c, "t", "c", journal::kStandbyGrace, kT0));
}

TEST_CASE("a relay that vanished inside a lease transaction does not stall every other relay's keeper") {
  // Relay a's host is cut off between its renewal's UPDATE and its COMMIT
  // (the keeper is inside such a transaction for most of its round with many
  // targets). Its session stays open at the server, holding the lease row's
  // lock: the keeper's connection has no server-side keepalives (cluster.cpp
  // keepLoop: JournalOptions{}, so keepServingSessionShort is not applied:
  // the OS default, 2 h), no idle_in_transaction_session_timeout and no
  // lock_timeout. Relay b's keeper, taking the expired lease over, waits on
  // the lock; its round is sequential, so it renews nothing else meanwhile
  // and every lease b holds runs out locally within kLeaseTtl - kLeaseMargin.
  test::TempDir dir;
  const auto location = test::journalAt(dir.file("relay.db"));
  auto a = fencedAs(location, "a");
  auto b_session = journal::openLeaseSession(location);  // as b's keeper opens it
  auto& b = *b_session;
  REQUIRE(journal::acquireLease(a, "t", "a", 0ms, kT0) == 1);
  a.db().exec("UPDATE target_leases SET expires_at = clock_timestamp() - interval '1 minute'");
  a.db().exec("BEGIN");  // a's renewal, its COMMIT never arrives
  a.db().exec("UPDATE target_leases SET expires_at = expires_at WHERE target = 't' AND owner = 'a' AND epoch = 1");

  std::atomic<bool> returned{false};
  std::thread keeper_b([&] {
    try {
      (void)journal::acquireLease(b, "t", "b", 0ms, kT0);
    } catch (const std::exception&) {  // a lock_timeout: the round goes on
    }
    returned = true;
  });
  const auto limit = std::chrono::steady_clock::now() + journal::kLeaseTtl - journal::kLeaseMargin;
  while (!returned && std::chrono::steady_clock::now() < limit) std::this_thread::sleep_for(50ms);
  CHECK(returned);          // lock_timeout on the keeper's session
  a.db().exec("ROLLBACK");  // the server would notice the vanished host only after its TCP keepalive (2 h)
  keeper_b.join();
}
