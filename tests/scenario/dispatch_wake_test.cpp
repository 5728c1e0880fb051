// The dispatcher skips the pass a received batch would cause when no target
// could take it (every one full, or its circuit open before its probe time):
// under load against a target that is down that is a pass per batch saved
// (delivery/engine.cpp, wake()). What must still hold: new work for a target
// goes out as soon as the target could take it.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "relay/relay.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;

namespace {

int post(const relay::Relay& relay) {
  return test::httpRequest(relay.ingestPort(), "POST", test::kIngestUri, test::generalBatch(1)).status;
}

// 503 to the first five requests (with max_attempts = 1 each one is a dead
// letter, and the fifth failure opens the circuit), 200 after.
void failFirstFive(test::Sink& sink) {
  sink.setScript([](const test::SinkRequest&, std::size_t index) {
    test::SinkResponse answer;
    if (index < 5) answer.status = 503;
    return answer;
  });
}

}  // namespace

TEST_CASE("work that arrives while a circuit is open, after its probe time, goes out at once") {
  test::TempDir dir;
  test::Sink sink;
  failFirstFive(sink);
  const std::string journal = dir.file("relay.db");
  auto relay =
      test::startRelay(test::deliveryConfig(journal, test::targetSection("pms", sink.url(), "max_attempts = 1\n")));
  // Five batches, each dead after its one failed attempt: the circuit opens
  // with nothing left waiting.
  for (int i = 0; i < 5; ++i) REQUIRE(post(*relay) == 202);
  REQUIRE(test::waitUntil([&] { return test::queryInt(journal, "SELECT count(*) FROM dead_letters") == 5; }, 10s));
  CHECK(test::queryText(journal, "SELECT circuit FROM target_state WHERE target = 'pms'") == "open");
  std::this_thread::sleep_for(300ms);  // past the probe time (backoff at most 50 ms)

  const auto posted = std::chrono::steady_clock::now();
  REQUIRE(post(*relay) == 202);
  REQUIRE(sink.waitForRequests(6, 10s));
  const auto waited = sink.requests().at(5).at - posted;
  // Not held until the dispatcher's idle check (5 s).
  CHECK(waited < 1s);
  CHECK(test::waitUntil(
      [&] { return test::queryInt(journal, "SELECT count(*) FROM deliveries WHERE state = 'delivered'") == 1; }, 5s));
}

TEST_CASE("work that arrives while a circuit is open waits for the probe time, then goes out") {
  test::TempDir dir;
  test::Sink sink;
  failFirstFive(sink);
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(test::deliveryConfig(
      journal, "[target.pms]\nurl = " + sink.url() + "\nbackoff = 1500ms..1500ms\ntimeout = 2s\nmax_attempts = 1\n"));
  for (int i = 0; i < 5; ++i) REQUIRE(post(*relay) == 202);
  REQUIRE(test::waitUntil([&] { return test::queryInt(journal, "SELECT count(*) FROM dead_letters") == 5; }, 10s));
  // The circuit is open and its probe is up to 1.5 s away: this batch waits for it.
  REQUIRE(post(*relay) == 202);
  REQUIRE(sink.waitForRequests(6, 10s));
  const auto opened = sink.requests().at(4).at;
  const auto probed = sink.requests().at(5).at;
  CHECK(probed - opened >= 1400ms);
  CHECK(probed - opened < 3s);  // at the probe time, not at the next idle check after it
}
