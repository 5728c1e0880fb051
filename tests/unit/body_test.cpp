#include <doctest/doctest.h>

#include "batch/body.h"
#include "support/test_support.h"

using namespace mews;
using journal::BatchKind;

namespace {

config::TargetSettings target(config::DeliveryMode mode, std::vector<std::string> events) {
  config::TargetSettings t;
  t.mode = mode;
  t.events = std::move(events);
  return t;
}

}  // namespace

TEST_CASE("unfiltered batches go byte for byte") {
  const std::string general = test::sample("general.json");
  CHECK(batch::buildBody(BatchKind::General, general, std::nullopt, target(config::DeliveryMode::Batch, {})) ==
        general);
  // A filter that every event passes changes nothing either.
  CHECK(batch::buildBody(BatchKind::General, general, std::nullopt,
                         target(config::DeliveryMode::Batch, {"ServiceOrderUpdated", "ResourceUpdated", "MessageAdded",
                                                              "CustomerAdded", "CustomerUpdated"})) == general);
  const std::string integration = test::sample("integration.json");
  CHECK(batch::buildBody(BatchKind::Integration, integration, std::nullopt,
                         target(config::DeliveryMode::Batch, {"IntegrationCreated"})) == integration);
  CHECK(batch::buildBody(BatchKind::Integration, integration, 0, target(config::DeliveryMode::Event, {})) ==
        integration);
  CHECK(batch::buildBody(BatchKind::Unknown, "{ \"x\" : 1 }", std::nullopt, target(config::DeliveryMode::Event, {})) ==
        "{ \"x\" : 1 }");
}

TEST_CASE("a filtered batch keeps the top-level members and the matching events only, as received") {
  const std::string body = batch::buildBody(BatchKind::General, test::sample("general.json"), std::nullopt,
                                            target(config::DeliveryMode::Batch, {"CustomerAdded", "CustomerUpdated"}));
  CHECK(
      body ==
      R"({"EnterpriseId":"851df8c8-90f2-4c4a-8e01-a4fc46b25178","IntegrationId":"c8bee838-7fb1-4f4e-8fac-ac87008b2f90",)"
      R"("Events":[{ "Discriminator": "CustomerAdded", "Value": { "Id": "c2f1d888-232e-49eb-87ac-5f75363af13b" } },)"
      R"({ "Discriminator": "CustomerUpdated", "Value": { "Id": "b3ce0fd7-a715-4bfc-969e-ef7a4822963c" } }]})");
}

TEST_CASE("event mode: a General webhook with one event, the event as received") {
  const std::string body =
      batch::buildBody(BatchKind::General, test::sample("general.json"), 2, target(config::DeliveryMode::Event, {}));
  CHECK(
      body ==
      R"({"EnterpriseId":"851df8c8-90f2-4c4a-8e01-a4fc46b25178","IntegrationId":"c8bee838-7fb1-4f4e-8fac-ac87008b2f90",)"
      R"("Events":[{ "Discriminator": "MessageAdded", "Value": { "Id": "4bfe4675-98a9-4428-9ea9-ae5300dbaa93" } }]})");
  CHECK_THROWS(
      batch::buildBody(BatchKind::General, test::sample("general.json"), 9, target(config::DeliveryMode::Event, {})));
}

namespace {

// A General batch whose bytes a re-encoder would change: numbers no double
// holds or that print differently, escapes, raw non-ASCII, odd white space,
// an escaped member name, and a discriminator spelt with an escape.
const std::string kOdd =
    "{ \"Extr\\u0061\" : [1.0, -0, 1E+2] ,\"IntegrationId\":null,\n"
    "\"Events\" : [ {\"Discriminator\":\"A\",\"n\":18446744073709551616} ,\n"
    "  {\"Discriminator\" : \"Customer\\u0041dded\", \"s\":\"\\ud800 \xc3\xa9 \\u0000\", \"x\": 12.30e-400 },"
    "{\"Discriminator\":\"C\",\"n\":123456789012345678901234567890}\t] , \"EnterpriseId\" : \"e\\u002d1\" }";
const std::string kOddEvent0 = R"({"Discriminator":"A","n":18446744073709551616})";
const std::string kOddEvent1 =
    "{\"Discriminator\" : \"Customer\\u0041dded\", \"s\":\"\\ud800 \xc3\xa9 \\u0000\", \"x\": 12.30e-400 }";
const std::string kOddEvent2 = R"({"Discriminator":"C","n":123456789012345678901234567890})";

}  // namespace

TEST_CASE("filtered and per-event bodies are made of the received bytes, whatever they hold") {
  REQUIRE(kOdd.find(kOddEvent0) != std::string::npos);
  REQUIRE(kOdd.find(kOddEvent1) != std::string::npos);
  REQUIRE(kOdd.find(kOddEvent2) != std::string::npos);
  // Filtered: every top-level member in its order with its bytes (the name's
  // escape kept), Events holding the matching events' bytes.
  CHECK(batch::buildBody(BatchKind::General, kOdd, std::nullopt,
                         target(config::DeliveryMode::Batch, {"CustomerAdded", "C"})) ==
        R"({"Extr\u0061":[1.0, -0, 1E+2],"IntegrationId":null,"Events":[)" + kOddEvent1 + "," + kOddEvent2 +
            R"(],"EnterpriseId":"e\u002d1"})");
  CHECK(batch::buildBody(BatchKind::General, kOdd, std::nullopt, target(config::DeliveryMode::Batch, {"Nothing"})) ==
        R"({"Extr\u0061":[1.0, -0, 1E+2],"IntegrationId":null,"Events":[],"EnterpriseId":"e\u002d1"})");
  // Per event: the documented envelope around the event's own bytes.
  const std::vector<std::string> events{kOddEvent0, kOddEvent1, kOddEvent2};
  for (std::size_t seq = 0; seq < events.size(); ++seq) {
    CAPTURE(seq);
    CHECK(batch::buildBody(BatchKind::General, kOdd, static_cast<std::int64_t>(seq),
                           target(config::DeliveryMode::Event, {})) ==
          R"({"EnterpriseId":"e\u002d1","IntegrationId":null,"Events":[)" + events[seq] + "]}");
  }
  // An unfiltered target still gets the exact bytes.
  CHECK(batch::buildBody(BatchKind::General, kOdd, std::nullopt, target(config::DeliveryMode::Batch, {})) == kOdd);
}

TEST_CASE("a repeated Events member: the last counts, and the one it shadows is not sent filtered") {
  const std::string body =
      R"({"Events":[{"Discriminator":"Secret"}],"a":1,"Events":[{"Discriminator":"A"},{"Discriminator":"B"}]})";
  CHECK(batch::buildBody(BatchKind::General, body, std::nullopt, target(config::DeliveryMode::Batch, {"B"})) ==
        R"({"a":1,"Events":[{"Discriminator":"B"}]})");
  CHECK(batch::buildBody(BatchKind::General, body, 0, target(config::DeliveryMode::Event, {})) ==
        R"({"Events":[{"Discriminator":"A"}]})");
}

TEST_CASE("a stored body that no longer reads as its kind is an error, never a guess") {
  const auto each = target(config::DeliveryMode::Event, {});
  CHECK_THROWS(batch::buildBody(BatchKind::General, "{\"Events\":[{\"Discriminator\":\"A\"}", 0, each));
  CHECK_THROWS(batch::buildBody(BatchKind::General, R"({"Events":"none"})", 0, each));
  CHECK_THROWS(batch::buildBody(BatchKind::General, R"({"Events":[{"Discriminator":"A"}]})", -1, each));
  CHECK_THROWS(batch::buildBody(BatchKind::General, R"({"Events":[{"Discriminator":"A"}]})", 1, each));
}
