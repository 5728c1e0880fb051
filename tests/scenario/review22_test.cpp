// Review of issue 22 (several relays on one PostgreSQL journal): holes in the
// fencing, statement by statement, as a hostile network and a careless
// operator would find them. Each case states what the design promises
// (journal/leases.h) and checks it; PostgreSQL only.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <thread>

#include "journal/journal.h"
#include "journal/leases.h"
#include "journal/queue.h"
#include "relay/relay.h"
#include "support/delivery_rows.h"
#include "support/relay_process.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::fencedAs;
using test::inTransaction;

namespace {

using test::kT0;

std::string rowOf(journal::Journal& journal, std::int64_t id) {
  journal::Statement select(journal.db(), "SELECT state || ' claim ' || claim FROM deliveries WHERE id = ?");
  select.bind(1, id);
  REQUIRE(select.step());
  return select.columnText(0);
}

}  // namespace

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
  journal::AttemptRecord stale;
  stale.delivery_id = id;
  stale.target = "t";
  stale.started_ms = kT0;
  stale.duration_ms = 5;
  stale.status = 500;
  stale.outcome = journal::AttemptOutcome::Retry;
  stale.spends_attempt = true;
  stale.next_due_ms = kT0 + 60'000;
  stale.now_ms = kT0 + 10;
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
