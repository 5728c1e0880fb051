// Delivery scenarios: the real relay on port 0, real HTTP sinks on port 0 that
// answer as each test scripts them, the journal read back after each.
#include <doctest/doctest.h>

#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <atomic>
#include <regex>
#include <set>
#include <thread>

#include "config/config.h"
#include "journal/journal.h"
#include "relay/relay.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::deliveryConfig;
using test::queryInt;
using test::queryText;
using test::Sink;
using test::SinkRequest;
using test::SinkResponse;
using test::targetSection;

namespace {

const std::string& kUri = test::kIngestUri;
const std::string kSecret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

std::int64_t post(std::uint16_t port, const std::string& body) {
  const auto result = test::httpRequest(port, "POST", kUri, body);
  REQUIRE(result.status == 202);
  std::smatch match;
  REQUIRE(std::regex_search(result.body, match, std::regex(R"("batch":(\d+))")));
  return std::stoll(match[1]);
}

bool allDelivered(const std::string& journal, std::int64_t expected) {
  return queryInt(journal, "SELECT count(*) FROM deliveries WHERE state = 'delivered'") == expected;
}

}  // namespace

TEST_CASE("delivered on the first try: the bytes received, the contract's headers, no token") {
  test::TempDir dir;
  Sink sink;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(deliveryConfig(
      journal, targetSection("pms", sink.url(), "header.X-Site = lobby\nheader.Authorization = Bearer t0psecret")));
  const std::string body = test::sample("general.json");
  const auto batch = post(relay->ingestPort(), body);
  REQUIRE(sink.waitForRequests(1, 5s));
  REQUIRE(test::waitUntil([&] { return allDelivered(journal, 1); }, 5s));
  const SinkRequest request = sink.requests().at(0);
  CHECK(request.body == body);
  CHECK(request.uri == "/hook");
  CHECK(request.headers.at("content-type") == "application/json");
  CHECK(request.headers.at("user-agent").rfind("mews-relay/", 0) == 0);
  CHECK(request.headers.at("x-site") == "lobby");
  CHECK(request.headers.at("authorization") == "Bearer t0psecret");
  CHECK(std::regex_match(request.headers.at("webhook-id"), std::regex(fmt::format("msg_[0-9a-f]{{12}}_{}", batch))));
  const auto timestamp = std::stoll(request.headers.at("webhook-timestamp"));
  CHECK(std::abs(timestamp - std::time(nullptr)) < 60);
  CHECK(request.headers.count("webhook-signature") == 0);  // no secret configured
  for (const auto& [name, value] : request.headers) CHECK(value.find(test::kToken) == std::string::npos);
  CHECK(request.uri.find("token") == std::string::npos);
  CHECK(queryInt(journal, "SELECT count(*) FROM attempts WHERE outcome = 'delivered' AND status = 200") == 1);
  // What was sent is kept for `dlq show`, the configured secret header masked.
  const std::string sent = queryText(journal, "SELECT request_headers FROM attempts");
  CHECK(sent.find("webhook-id") != std::string::npos);
  CHECK(sent.find("t0psecret") == std::string::npos);
}

TEST_CASE("retried, then delivered, under the same webhook-id") {
  test::TempDir dir;
  Sink sink;
  sink.setScript([](const SinkRequest&, std::size_t index) {
    return index < 2 ? SinkResponse{503, "", "", "busy"} : SinkResponse{};
  });
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(deliveryConfig(journal, targetSection("pms", sink.url())));
  post(relay->ingestPort(), test::sample("general.json"));
  REQUIRE(test::waitUntil([&] { return allDelivered(journal, 1); }, 10s));
  const auto requests = sink.requests();
  REQUIRE(requests.size() == 3);
  CHECK(requests[0].headers.at("webhook-id") == requests[2].headers.at("webhook-id"));
  CHECK(queryInt(journal, "SELECT count(*) FROM attempts") == 3);
  CHECK(queryInt(journal, "SELECT count(*) FROM attempts WHERE outcome = 'retry' AND status = 503") == 2);
  CHECK(queryInt(journal, "SELECT attempts FROM deliveries") == 3);
}

TEST_CASE("Retry-After is honoured") {
  test::TempDir dir;
  Sink sink;
  sink.setScript([](const SinkRequest&, std::size_t index) {
    return index == 0 ? SinkResponse{429, "1", "", "slow down"} : SinkResponse{};
  });
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(deliveryConfig(journal, targetSection("pms", sink.url()) + "backoff = 10ms..5s\n"));
  post(relay->ingestPort(), test::sample("general.json"));
  REQUIRE(test::waitUntil([&] { return allDelivered(journal, 1); }, 10s));
  const auto requests = sink.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1].at - requests[0].at >= 950ms);
}

TEST_CASE("a hanging target times out without slowing another target") {
  test::TempDir dir;
  Sink slow;
  Sink fast;
  slow.setScript([](const SinkRequest&, std::size_t) { return SinkResponse{200, "", "", "late", 3s}; });
  const std::string journal = dir.file("relay.db");
  auto relay =
      test::startRelay(deliveryConfig(journal, targetSection("slow", slow.url(), "timeout = 300ms\nconcurrency = 2") +
                                                   targetSection("fast", fast.url())));
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) post(relay->ingestPort(), test::sample("general.json"));
  REQUIRE(fast.waitForRequests(3, 5s));
  CHECK(std::chrono::steady_clock::now() - started < 1s);
  REQUIRE(test::waitUntil(
      [&] { return queryInt(journal, "SELECT count(*) FROM attempts WHERE error LIKE 'timed out%'") >= 1; }, 5s));
  CHECK(queryInt(journal, "SELECT count(*) FROM deliveries WHERE target = 'fast' AND state = 'delivered'") == 3);
  CHECK(queryInt(journal, "SELECT count(*) FROM deliveries WHERE target = 'slow' AND state = 'delivered'") == 0);
}

TEST_CASE("a 400 goes to the dead letters at once, with the response recorded") {
  test::TempDir dir;
  Sink sink;
  sink.setScript([](const SinkRequest&, std::size_t) { return SinkResponse{400, "", "", "bad payload: no Id"}; });
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(deliveryConfig(journal, targetSection("pms", sink.url())));
  const auto batch = post(relay->ingestPort(), test::sample("general.json"));
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 1; }, 5s));
  std::this_thread::sleep_for(200ms);
  CHECK(sink.requests().size() == 1);
  CHECK(queryText(journal, "SELECT reason FROM dead_letters") == "rejected");
  CHECK(queryInt(journal, "SELECT last_status FROM dead_letters") == 400);
  CHECK(queryInt(journal, "SELECT attempts FROM dead_letters") == 1);
  CHECK(queryInt(journal, "SELECT batch_id FROM dead_letters") == batch);
  CHECK(queryText(journal, "SELECT target FROM dead_letters") == "pms");
  CHECK(queryText(journal, "SELECT response_excerpt FROM attempts") == "bad payload: no Id");
  CHECK(queryText(journal, "SELECT event_types FROM dead_letters").find("CustomerAdded") != std::string::npos);
}

TEST_CASE("max_attempts spent: dead, with the whole attempt history") {
  test::TempDir dir;
  Sink sink;
  sink.setScript([](const SinkRequest&, std::size_t) { return SinkResponse{500, "", "", "boom"}; });
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(deliveryConfig(journal, targetSection("pms", sink.url(), "max_attempts = 3")));
  post(relay->ingestPort(), test::sample("integration.json"));
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 1; }, 10s));
  std::this_thread::sleep_for(200ms);
  CHECK(sink.requests().size() == 3);
  CHECK(queryText(journal, "SELECT reason FROM dead_letters") == "max_attempts");
  CHECK(queryInt(journal, "SELECT attempts FROM dead_letters") == 3);
  CHECK(queryText(journal, "SELECT event_types FROM dead_letters") == "IntegrationCreated");
  CHECK(queryInt(journal, "SELECT count(*) FROM attempts WHERE status = 500") == 3);
  CHECK(queryText(journal, "SELECT died_at FROM dead_letters").size() == 24);
}

TEST_CASE("max_age: waiting work dies by age, measured on the injected clock") {
  test::TempDir dir;
  Sink sink;
  sink.setScript([](const SinkRequest&, std::size_t) { return SinkResponse{503, "", ""}; });
  ManualClock clock(1'795'860'000'000);
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(
      deliveryConfig(journal, targetSection("pms", sink.url(), "max_age = 1m\nbackoff = 30s..1h")), clock);
  post(relay->ingestPort(), test::sample("general.json"));
  REQUIRE(sink.waitForRequests(1, 5s));
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM attempts") == 1; }, 5s));
  // Nothing happens while the clock stands still: the retry is 30 s away.
  std::this_thread::sleep_for(300ms);
  CHECK(sink.requests().size() == 1);
  CHECK(queryInt(journal, "SELECT count(*) FROM dead_letters") == 0);
  clock.advance(2min);
  relay->delivery().wake();
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 1; }, 5s));
  CHECK(queryText(journal, "SELECT reason FROM dead_letters") == "max_age");
  CHECK(queryText(journal, "SELECT died_at FROM dead_letters") == "2026-11-28T10:02:00.000Z");
  CHECK(queryInt(journal, "SELECT count(*) FROM attempts") == 1);  // history kept
}

TEST_CASE("an open circuit spends no attempts, and the queue drains in order when the target returns") {
  test::TempDir dir;
  Sink sink;
  std::atomic<bool> down{true};
  sink.setScript([&](const SinkRequest&, std::size_t) { return down ? SinkResponse{503, "", ""} : SinkResponse{}; });
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(deliveryConfig(
      journal, targetSection("pms", sink.url(), "max_attempts = 3\nconcurrency = 1\nbackoff = 10ms..20ms")));
  std::vector<std::int64_t> batches;
  for (int i = 0; i < 10; ++i)
    batches.push_back(post(relay->ingestPort(), test::generalBatch(1, fmt::format("E{}", i))));
  // Far more failed attempts than 10 items x 3 attempts would allow if probes spent them.
  REQUIRE(sink.waitForRequests(40, 20s));
  CHECK(queryInt(journal, "SELECT count(*) FROM dead_letters") == 0);
  CHECK(queryText(journal, "SELECT circuit FROM target_state WHERE target = 'pms'") != "closed");
  CHECK(queryInt(journal, "SELECT count(*) FROM attempts WHERE outcome = 'probe_failed'") > 20);
  down = false;
  REQUIRE(test::waitUntil([&] { return allDelivered(journal, 10); }, 20s));
  CHECK(queryInt(journal, "SELECT count(*) FROM dead_letters") == 0);
  CHECK(queryInt(journal, "SELECT max(attempts) FROM deliveries") <= 3);
  std::vector<std::int64_t> order;
  {
    journal::Journal reader(test::journalAt(journal), {0, true});
    journal::Statement delivered(reader.db(),
                                 "SELECT d.batch_id FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
                                 " WHERE a.outcome = 'delivered' ORDER BY a.id");
    while (delivered.step()) order.push_back(delivered.columnInt(0));
  }
  CAPTURE(fmt::format("{}", fmt::join(order, ",")));
  CAPTURE(fmt::format("{}", fmt::join(batches, ",")));
  CHECK(order == batches);
  CHECK(queryText(journal, "SELECT circuit FROM target_state WHERE target = 'pms'") == "closed");
}

TEST_CASE("filters, batch and event mode: what each target receives") {
  test::TempDir dir;
  Sink crm;
  Sink per_event;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(
      deliveryConfig(journal, targetSection("crm", crm.url(), "events = CustomerAdded, CustomerUpdated") +
                                  targetSection("each", per_event.url(), "mode = event")));
  const auto batch = post(relay->ingestPort(), test::sample("general.json"));
  post(relay->ingestPort(), test::sample("integration.json"));
  REQUIRE(per_event.waitForRequests(6, 5s));
  REQUIRE(crm.waitForRequests(1, 5s));
  std::this_thread::sleep_for(200ms);
  REQUIRE(crm.requests().size() == 1);  // the integration webhook matches no crm filter
  CHECK(
      crm.requests()[0].body ==
      R"({"EnterpriseId":"851df8c8-90f2-4c4a-8e01-a4fc46b25178","IntegrationId":"c8bee838-7fb1-4f4e-8fac-ac87008b2f90",)"
      R"("Events":[{ "Discriminator": "CustomerAdded", "Value": { "Id": "c2f1d888-232e-49eb-87ac-5f75363af13b" } },)"
      R"({ "Discriminator": "CustomerUpdated", "Value": { "Id": "b3ce0fd7-a715-4bfc-969e-ef7a4822963c" } }]})");
  std::set<std::string> ids;
  std::set<std::string> bodies;
  for (const auto& request : per_event.requests()) {
    ids.insert(request.headers.at("webhook-id"));
    bodies.insert(request.body);
  }
  CHECK(ids.size() == 6);
  for (int seq = 0; seq < 5; ++seq)
    CHECK(std::any_of(ids.begin(), ids.end(), [&](const std::string& id) {
      return id.size() > 4 &&
             id.substr(id.size() - fmt::format("_{}_{}", batch, seq).size()) == fmt::format("_{}_{}", batch, seq);
    }));
  CHECK(bodies.count(test::sample("integration.json")) == 1);
  CHECK(
      bodies.count(
          R"({"EnterpriseId":"851df8c8-90f2-4c4a-8e01-a4fc46b25178","IntegrationId":"c8bee838-7fb1-4f4e-8fac-ac87008b2f90",)"
          R"("Events":[{ "Discriminator": "MessageAdded", "Value": { "Id": "4bfe4675-98a9-4428-9ea9-ae5300dbaa93" } }]})") ==
      1);
}

TEST_CASE("signatures verify with an independent implementation of the spec") {
  test::TempDir dir;
  Sink sink;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(deliveryConfig(journal, targetSection("pms", sink.url(), "secret = whsec_" + kSecret)));
  post(relay->ingestPort(), test::sample("general.json"));
  post(relay->ingestPort(), test::generalBatch(50));
  REQUIRE(sink.waitForRequests(2, 5s));
  for (const auto& request : sink.requests()) {
    const std::string expected = test::referenceSignature(kSecret, request.headers.at("webhook-id"),
                                                          request.headers.at("webhook-timestamp"), request.body);
    CHECK(request.headers.at("webhook-signature") == expected);
  }
}

TEST_CASE("a reset connection is retried; a 307 to the same host is followed") {
  test::TempDir dir;
  Sink sink;
  sink.setScript([](const SinkRequest& request, std::size_t index) {
    if (index == 0) return SinkResponse{200, "", "", "", 0ms, /*reset=*/true};
    if (request.uri == "/hook") return SinkResponse{307, "", "/moved", ""};
    return SinkResponse{};
  });
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(deliveryConfig(journal, targetSection("pms", sink.url())));
  post(relay->ingestPort(), test::sample("general.json"));
  REQUIRE(test::waitUntil([&] { return allDelivered(journal, 1); }, 10s));
  const auto requests = sink.requests();
  REQUIRE(requests.size() >= 3);
  CHECK(requests.back().uri == "/moved");
  CHECK(requests.back().body == test::sample("general.json"));
}

TEST_CASE("a redirect to another host is not followed: dead, with the reason") {
  test::TempDir dir;
  Sink sink;
  sink.setScript([](const SinkRequest&, std::size_t) { return SinkResponse{308, "", "http://198.51.100.1/x", ""}; });
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(deliveryConfig(journal, targetSection("pms", sink.url())));
  post(relay->ingestPort(), test::sample("general.json"));
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 1; }, 5s));
  CHECK(queryText(journal, "SELECT last_error FROM dead_letters").find("another host") != std::string::npos);
  CHECK(sink.requests().size() == 1);
}

TEST_CASE("redirects = any follows another origin without the configured headers; none follows nothing") {
  test::TempDir dir;
  Sink elsewhere;  // reached as "localhost": another origin than 127.0.0.1
  Sink first;
  const std::string other = fmt::format("http://localhost:{}/elsewhere", elsewhere.port());
  first.setScript([&](const SinkRequest&, std::size_t) { return SinkResponse{307, "", other, ""}; });
  Sink refusing;
  refusing.setScript([](const SinkRequest&, std::size_t) { return SinkResponse{307, "", "/same-host", ""}; });
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(deliveryConfig(
      journal, targetSection("any", first.url(), "redirects = any\nheader.Authorization = Bearer t0psecret") +
                   targetSection("none", refusing.url(), "redirects = none")));
  post(relay->ingestPort(), test::sample("general.json"));
  REQUIRE(elsewhere.waitForRequests(1, 5s));
  const SinkRequest moved = elsewhere.requests().front();
  CHECK(moved.uri == "/elsewhere");
  CHECK(moved.body == test::sample("general.json"));
  CHECK(moved.headers.count("authorization") == 0);
  CHECK(moved.headers.count("webhook-id") == 1);
  CHECK(first.requests().front().headers.at("authorization") == "Bearer t0psecret");
  REQUIRE(test::waitUntil(
      [&] {
        return queryInt(journal, "SELECT count(*) FROM deliveries WHERE target = 'any' AND state = 'delivered'") == 1;
      },
      5s));
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 1; }, 5s));
  CHECK(
      queryText(journal, "SELECT target || ': ' || last_error FROM dead_letters").find("none: redirect not followed") ==
      0);
  CHECK(refusing.requests().size() == 1);
}

TEST_CASE("kill -9 with work in flight, restart: everything is delivered") {
  test::TempDir dir;
  Sink sink;
  std::atomic<bool> hang{true};
  sink.setScript([&](const SinkRequest&, std::size_t) {
    return hang ? SinkResponse{200, "", "", "", 1500ms} : SinkResponse{};
  });
  const std::string journal = dir.file("relay.db");
  test::writeFile(dir.path() / "relay.ini",
                  deliveryConfig(journal, targetSection("pms", sink.url(), "concurrency = 4")));
  auto launch = [&](Poco::Pipe& err) {
    return Poco::Process::launch(MEWS_RELAY_BINARY, {"-c", dir.file("relay.ini"), "serve"}, dir.path().string(),
                                 nullptr, nullptr, &err);
  };
  auto portOf = [](Poco::PipeInputStream& err) {
    std::string line;
    std::smatch match;
    while (std::getline(err, line))
      if (std::regex_search(line, match, std::regex(R"( port=(\d+))")))
        return static_cast<std::uint16_t>(std::stoi(match[1]));
    return std::uint16_t{0};
  };
  Poco::Pipe first_err;
  auto first = launch(first_err);
  Poco::PipeInputStream first_log(first_err);
  const auto first_port = portOf(first_log);
  REQUIRE(first_port > 0);
  std::set<std::int64_t> batches;
  for (int i = 0; i < 8; ++i) batches.insert(post(first_port, test::sample("general.json")));
  REQUIRE(sink.waitForRequests(4, 5s));  // four in flight, hanging
  CHECK(queryInt(journal, "SELECT count(*) FROM deliveries WHERE state = 'in_flight'") >= 1);
  Poco::Process::kill(first);  // SIGKILL
  first.wait();
  hang = false;

  Poco::Pipe second_err;
  auto second = launch(second_err);
  Poco::PipeInputStream second_log(second_err);
  REQUIRE(portOf(second_log) > 0);
  REQUIRE(test::waitUntil([&] { return allDelivered(journal, 8); }, 15s));
  std::set<std::int64_t> seen;
  for (const auto& request : sink.requests()) {
    const std::string id = request.headers.at("webhook-id");
    seen.insert(std::stoll(id.substr(id.rfind('_') + 1)));
  }
  CHECK(seen == batches);
  Poco::Process::requestTermination(second.id());
  std::string rest(std::istreambuf_iterator<char>(second_log), {});
  CHECK(second.wait() == 0);
}

TEST_CASE("graceful stop: the attempt in progress finishes and is recorded, claimed work goes back to pending") {
  test::TempDir dir;
  Sink sink;
  sink.setScript([](const SinkRequest&, std::size_t) { return SinkResponse{200, "", "", "ok", 1500ms}; });
  const std::string journal = dir.file("relay.db");
  // One worker, four slots: the dispatcher claims four, one is being sent, three wait in the queue.
  auto relay = test::startRelay(deliveryConfig(journal, targetSection("pms", sink.url(), "concurrency = 4"), 1));
  for (int i = 0; i < 4; ++i) post(relay->ingestPort(), test::sample("general.json"));
  REQUIRE(sink.waitForRequests(1, 5s));
  REQUIRE(test::waitUntil(
      [&] { return queryInt(journal, "SELECT count(*) FROM deliveries WHERE state = 'in_flight'") == 4; }, 2s));
  relay->stop();
  CHECK(queryInt(journal, "SELECT count(*) FROM deliveries WHERE state = 'in_flight'") == 0);
  CHECK(queryInt(journal, "SELECT count(*) FROM deliveries WHERE state = 'delivered'") == 1);
  CHECK(queryInt(journal, "SELECT count(*) FROM deliveries WHERE state = 'pending' AND attempts = 0") == 3);
  CHECK(sink.requests().size() == 1);
}

TEST_CASE("a dead letter names the event types its target wanted, not the whole batch's") {
  test::TempDir dir;
  Sink sink;
  sink.setScript([](const SinkRequest&, std::size_t) { return SinkResponse{422, "", "", "no"}; });
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(
      deliveryConfig(journal, targetSection("crm", sink.url(), "events = CustomerUpdated, CustomerAdded")));
  post(relay->ingestPort(), test::sample("general.json"));
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 1; }, 5s));
  CHECK(queryText(journal, "SELECT event_types FROM dead_letters") == "CustomerAdded,CustomerUpdated");
}
