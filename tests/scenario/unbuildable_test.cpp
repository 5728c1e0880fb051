// An item whose request cannot be built becomes a dead letter without touching
// its target's circuit (issue 10, item 14): an open circuit stays open, so the
// backlog does not flood a target that is down. Every body ingest accepts can
// be built, so the unbuildable one is written into the journal directly while
// no relay runs: a batch whose stored body no longer parses, for an event-mode
// target (which must take the one event out of it).
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "common/clock.h"
#include "delivery/engine.h"
#include "journal/journal.h"
#include "relay/relay.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::queryInt;
using test::queryText;
using test::Sink;
using test::SinkRequest;
using test::SinkResponse;

namespace {

constexpr std::int64_t kStart = 1'795'860'000'000;  // 2026-11-28T10:00:00Z

// A General batch received at `received_ms` whose stored body was cut short.
void journalUnbuildableBatch(const std::string& path, std::int64_t received_ms) {
  journal::Journal journal(path, {});
  journal::IncomingBatch batch;
  batch.received_at_ms = received_ms;
  batch.content_type = "application/json";
  batch.body = R"({"EnterpriseId":"851df8c8-90f2-4c4a-8e01-a4fc46b25178","Events":[{"Discriminator":"Reserv)";
  batch.summary.kind = journal::BatchKind::General;
  batch.summary.events.push_back({"ReservationUpdated", std::nullopt});
  batch.deliveries.push_back({"pms", 0});
  journal::Transaction transaction(journal.db());
  journal.insertBatch(batch);
  transaction.commit();
}

}  // namespace

TEST_CASE("an unbuildable item is a dead letter and leaves an open circuit open") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  // Due an hour after the start: only once the circuit is open and the clock moved.
  journalUnbuildableBatch(journal, kStart + 3'600'000);

  Sink sink;
  sink.setScript([](const SinkRequest&, std::size_t) { return SinkResponse{503, "", "", "down"}; });
  ManualClock clock(kStart);
  auto relay = test::startRelay(
      test::relayConfigWithTargets(journal, fmt::format("[target.pms]\nurl = {}\nmode = event\nmax_attempts = 1\n"
                                                        "backoff = 1s..2s\n",
                                                        sink.url())),
      clock);
  // Five failures in a row open the circuit (each item dies: max_attempts = 1).
  for (int i = 0; i < delivery::CircuitBreaker::kOpenAfter; ++i)
    REQUIRE(test::httpRequest(relay->ingestPort(), "POST", test::kIngestUri, test::generalBatch(1)).status == 202);
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 5; }, 5s));
  REQUIRE(queryText(journal, "SELECT circuit FROM target_state WHERE target = 'pms'") == "open");

  // Probe time and the unbuildable item's due time have come: it is the next item dispatched.
  clock.advance(std::chrono::hours(2));
  relay->delivery().wake();
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 6; }, 5s));
  const std::string letter = " FROM dead_letters WHERE batch_id = 1";
  CHECK(queryText(journal, "SELECT reason" + letter) == "rejected");
  CHECK(queryText(journal, "SELECT last_error" + letter).rfind("cannot build the request: ", 0) == 0);
  CHECK(queryText(journal,
                  "SELECT outcome FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
                  " WHERE d.batch_id = 1") == "dead");

  // The circuit is as the five failures left it, in the engine, the journal and /metrics.
  CHECK(relay->delivery().targets().at(0).circuit == delivery::CircuitState::Open);
  CHECK(relay->delivery().targets().at(0).consecutive_failures == 5);
  CHECK(queryText(journal, "SELECT circuit FROM target_state WHERE target = 'pms'") == "open");
  CHECK(queryInt(journal, "SELECT consecutive_failures FROM target_state WHERE target = 'pms'") == 5);
  const auto metrics = test::httpRequest(test::adminPort(*relay), "GET", "/metrics");
  CHECK(metrics.body.find(R"(mews_relay_circuit_state{target="pms",state="open"} 1)") != std::string::npos);
  CHECK(sink.requests().size() == 5);  // nothing was sent for it
}
