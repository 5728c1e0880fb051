// Fidelity: what a target receives is made of the bytes Mews sent. The real
// relay on port 0 and real sinks; every expected body below is built from the
// same pieces as the posted one, so each comparison is byte for byte.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <atomic>
#include <set>
#include <thread>

#include "auth/credential.h"
#include "relay/relay.h"
#include "support/operator_fixture.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::deliveryConfig;
using test::queryInt;
using test::Sink;
using test::SinkRequest;
using test::SinkResponse;
using test::targetSection;

namespace {

// The pieces of one General webhook whose values no double holds, whose
// numbers a re-encoder would rewrite, and whose strings carry escapes (a lone
// surrogate among them), raw non-ASCII text and odd white space.
const std::string kEnterprise = R"("851df8c8-90f2-4c4a-8e01-a4fc46b25178")";
const std::string kIntegration = R"("c8bee838\u002D7fb1-4f4e-8fac-ac87008b2f90")";
const std::vector<std::string> kEvents = {
    R"({"Discriminator": "ReservationUpdated", "Value": {"Id": "r-1", "Amount": 18446744073709551616,)"
    R"( "Rate": 1e2, "Price": 12.30, "Zero": -0, "Tiny": 1e-400, "Huge": 1E+400,)"
    R"( "Exact": 0.10000000000000000555, "Long": 123456789012345678901234567890}})",
    "{ \"Discriminator\" : \"CustomerAdded\" , \"Value\" : { \"Id\" : \"c-\\u00e9\" ,"
    " \"Name\" : \"Zo\xc3\xab \\ud800 \\\"q\\\" \\/ \\u0041 \\t\" ,"
    " \"Note\" : \"\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \\uDBFF \\udc00\" } }",
    "{\"Discriminator\":\"Customer\\u0041dded\",\n\t\t\"Value\":{\"Id\":\"c-2\"},"
    "\"Big\":-1234567890123456789012345678.90e-5}",
    R"({"Discriminator":"ResourceUpdated","Value":{"Id":"x","Flags":[true,false,null,-0.0,0e0,1E400]}})",
};
const std::string kExtraKey = R"("Extr\u0061")";
const std::string kExtra = R"({"Sum": 1.10, "Nul": "\u0000", "Deep": [[[{"a": 2.50e+3}]]]})";

std::string postedBody(const std::vector<std::string>& events) {
  std::string list;
  for (const auto& event : events) list += (list.empty() ? "" : ",\n    ") + event;
  return "{\n  \"EnterpriseId\" : " + kEnterprise + ",\n  \"IntegrationId\":" + kIntegration +
         ",\n  \"Events\": [\n    " + list + "\n  ],\n  " + kExtraKey + ": " + kExtra + "\n}\n";
}

// Batch mode, only CustomerAdded (one of them spells its discriminator with
// an escape): those events, every other top-level member as sent.
std::string expectedFiltered(const std::vector<std::string>& customer_added) {
  std::string list;
  for (const auto& event : customer_added) list += (list.empty() ? "" : ",") + event;
  return "{\"EnterpriseId\":" + kEnterprise + ",\"IntegrationId\":" + kIntegration + ",\"Events\":[" + list + "]," +
         kExtraKey + ":" + kExtra + "}";
}

std::set<std::string> expectedEvents(const std::vector<std::string>& events) {
  std::set<std::string> bodies;
  for (const auto& event : events)
    bodies.insert("{\"EnterpriseId\":" + kEnterprise + ",\"IntegrationId\":" + kIntegration + ",\"Events\":[" + event +
                  "]}");
  return bodies;
}

std::set<std::string> bodiesOf(const Sink& sink) {
  std::set<std::string> bodies;
  for (const auto& request : sink.requests()) bodies.insert(request.body);
  return bodies;
}

}  // namespace

TEST_CASE("filtered, event-mode and unfiltered targets receive the events' own bytes") {
  test::TempDir dir;
  Sink all;
  Sink filtered;
  Sink each;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(deliveryConfig(
      journal, targetSection("all", all.url()) + targetSection("filtered", filtered.url(), "events = CustomerAdded") +
                   targetSection("each", each.url(), "mode = event")));
  const std::string body = postedBody(kEvents);
  const auto posted = test::httpRequest(relay->ingestPort(), "POST", test::kIngestUri, body);
  REQUIRE(posted.status == 202);
  CHECK(posted.body.find("\"events\":4") != std::string::npos);

  REQUIRE(all.waitForRequests(1, 5s));
  REQUIRE(filtered.waitForRequests(1, 5s));
  REQUIRE(each.waitForRequests(kEvents.size(), 5s));
  REQUIRE(test::waitUntil(
      [&] { return queryInt(journal, "SELECT count(*) FROM deliveries WHERE state = 'delivered'") == 6; }, 5s));
  CHECK(queryInt(journal, "SELECT count(*) FROM dead_letters") == 0);

  REQUIRE(all.requests().size() == 1);
  CHECK(all.requests()[0].body == body);
  REQUIRE(filtered.requests().size() == 1);
  CHECK(filtered.requests()[0].body == expectedFiltered({kEvents[1], kEvents[2]}));
  CHECK(each.requests().size() == kEvents.size());
  CHECK(bodiesOf(each) == expectedEvents(kEvents));
}

TEST_CASE("a dead letter of such a batch replays, and the replay carries the same bytes") {
  test::TempDir dir;
  std::atomic<bool> refuse{true};
  const auto script = [&](const SinkRequest&, std::size_t) {
    return refuse ? SinkResponse{400, "", "", "no thanks"} : SinkResponse{};
  };
  Sink filtered;
  Sink each;
  filtered.setScript(script);
  each.setScript(script);
  const std::string journal = dir.file("relay.db");
  auto relay =
      test::startRelay(deliveryConfig(journal, targetSection("filtered", filtered.url(), "events = CustomerAdded") +
                                                   targetSection("each", each.url(), "mode = event")));
  // Without the lone surrogates: the batch an older ingest acknowledged, then
  // could not deliver filtered or per event, nor replay.
  const std::vector<std::string> events{kEvents[0], kEvents[2], kEvents[3]};
  REQUIRE(test::httpRequest(relay->ingestPort(), "POST", test::kIngestUri, postedBody(events)).status == 202);
  const auto dead = static_cast<std::int64_t>(1 + events.size());
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == dead; }, 5s));
  // Each died of the target's answer, not of a body the relay could not build.
  CHECK(queryInt(journal, "SELECT count(*) FROM attempts WHERE status = 400") == dead);
  CHECK(bodiesOf(filtered) == std::set<std::string>{expectedFiltered({kEvents[2]})});
  CHECK(bodiesOf(each) == expectedEvents(events));

  refuse = false;
  std::vector<std::int64_t> dead_ids;
  for (std::int64_t id = 1; id <= dead; ++id) dead_ids.push_back(id);
  const std::uint16_t admin_port = test::adminPort(*relay);
  const auto replayed =
      test::adminRequest(admin_port, "POST", fmt::format("/admin/replay?id={}", fmt::join(dead_ids, "&id=")),
                         {{"Host", fmt::format("127.0.0.1:{}", admin_port)},
                          {"Authorization", "Bearer " + auth::readCredential(journal)}});
  REQUIRE(replayed.status == 200);
  CHECK(replayed.body == fmt::format(R"({{"count":{}}})", dead));
  REQUIRE(test::waitUntil(
      [&] { return queryInt(journal, "SELECT count(*) FROM deliveries WHERE state = 'delivered'") == dead; }, 5s));
  CHECK(queryInt(journal, "SELECT count(*) FROM dead_letters") == 0);
  const auto filtered_requests = filtered.requests();
  REQUIRE(filtered_requests.size() == 2);
  CHECK(filtered_requests[1].body == expectedFiltered({kEvents[2]}));
  CHECK(each.requests().size() == 2 * events.size());
  CHECK(bodiesOf(each) == expectedEvents(events));
}

TEST_CASE("valid JSON that common parsers accept is acknowledged and relayed byte for byte") {
  test::TempDir dir;
  Sink all;
  Sink each;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(
      deliveryConfig(journal, targetSection("all", all.url()) + targetSection("each", each.url(), "mode = event")));
  const std::vector<std::string> bodies = {
      R"({"Events":[{"Discriminator":"A\ud800","Value":{"Id":"\udfff"}}]})",  // lone surrogates, high and low
      R"({"Events":[{"Discriminator":"B","Value":{"Id":"\u0000"}}],"x":"\uDBFF\uDBFF"})",
      "\xef\xbb\xbf{\"Events\":[{\"Discriminator\":\"C\",\"Value\":{\"Id\":\"bom\"}}]}",  // a UTF-8 byte order mark
      " \t\r\n{\"Events\" :\r\n[ {\"Discriminator\"\t:\"D\"} ]\t}\r\n ",
      R"({"Events":[{"Discriminator":"E","n":[-0,1E+2,1e-400,0.1e1,123456789012345678901234567890]}]})",
      "{\"Events\":[{\"Discriminator\":\"F\",\"t\":\"\xf4\x8f\xbf\xbf \xef\xbf\xbf \x7f\"}]}",
      R"({"a":1,"a":2,"Events":"none"})",  // duplicate names (RFC 8259 allows them); of unknown shape
      R"({"Action":"IntegrationCreated","Data":{"Note":"\ud83d"}})",
  };
  for (const auto& body : bodies) {
    CAPTURE(body);
    const auto posted = test::httpRequest(relay->ingestPort(), "POST", test::kIngestUri, body);
    CHECK(posted.status == 202);
  }
  // Every body reaches both targets: as posted to the batch one; to the
  // event-mode one the General batches as one-event webhooks of their own
  // bytes, the others as posted.
  REQUIRE(all.waitForRequests(bodies.size(), 5s));
  REQUIRE(each.waitForRequests(bodies.size(), 5s));
  CHECK(bodiesOf(all) == std::set<std::string>(bodies.begin(), bodies.end()));
  const auto per_event = bodiesOf(each);
  CHECK(per_event.count(R"({"Events":[{"Discriminator":"A\ud800","Value":{"Id":"\udfff"}}]})") == 1);
  CHECK(per_event.count(R"({"Events":[{"Discriminator":"C","Value":{"Id":"bom"}}]})") == 1);
  CHECK(per_event.count("{\"Events\":[{\"Discriminator\"\t:\"D\"}]}") == 1);
  CHECK(per_event.count(bodies[6]) == 1);
  CHECK(per_event.count(bodies[7]) == 1);
  REQUIRE(test::waitUntil(
      [&] {
        return queryInt(journal, "SELECT count(*) FROM deliveries WHERE state = 'delivered'") ==
               static_cast<std::int64_t>(2 * bodies.size());
      },
      5s));
  CHECK(queryInt(journal, "SELECT count(*) FROM dead_letters") == 0);
}
