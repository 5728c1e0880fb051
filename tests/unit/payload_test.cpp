#include <doctest/doctest.h>

#include "ingest/payload.h"
#include "support/test_support.h"

using namespace mews;
using journal::BatchKind;

TEST_CASE("the General webhook sample: five events of five kinds") {
  const auto parsed = ingest::parseBatch(test::sample("general.json"));
  REQUIRE(parsed.ok());
  const auto& batch = parsed.value();
  CHECK(batch.kind == BatchKind::General);
  CHECK(batch.enterprise_id == "851df8c8-90f2-4c4a-8e01-a4fc46b25178");
  CHECK(batch.integration_id == "c8bee838-7fb1-4f4e-8fac-ac87008b2f90");
  REQUIRE(batch.events.size() == 5);
  CHECK(batch.events[0].discriminator == "ServiceOrderUpdated");
  CHECK(batch.events[0].entity_id == "bfee2c44-1f84-4326-a862-5289598f6e2d");
  CHECK(batch.events[3].discriminator == "CustomerAdded");
  CHECK(batch.events[4].discriminator == "CustomerUpdated");
  CHECK(batch.events[4].entity_id == "b3ce0fd7-a715-4bfc-969e-ef7a4822963c");
}

TEST_CASE("the Integration webhook sample: one action") {
  const auto parsed = ingest::parseBatch(test::sample("integration.json"));
  REQUIRE(parsed.ok());
  const auto& batch = parsed.value();
  CHECK(batch.kind == BatchKind::Integration);
  CHECK(batch.enterprise_id == "8865aa96-f62d-4f9b-a912-ab2100f60f42");
  CHECK(batch.integration_id == "9e5e84e9-974d-4f16-9662-ab2200f27cb1");
  REQUIRE(batch.events.size() == 1);
  CHECK(batch.events[0].discriminator == "IntegrationCreated");
}

TEST_CASE("a 500-event batch keeps every event in order") {
  const auto parsed = ingest::parseBatch(test::generalBatch(500));
  REQUIRE(parsed.ok());
  REQUIRE(parsed.value().events.size() == 500);
  CHECK(parsed.value().events[499].entity_id == "00000000-0000-0000-0000-000000000499");
}

TEST_CASE("new discriminators and odd values pass through") {
  const auto parsed = ingest::parseBatch(
      R"({"Events":[{"Discriminator":"SomethingNew2030","Value":{"Id":17}},{"Discriminator":"X","Value":null}]})");
  REQUIRE(parsed.ok());
  CHECK(parsed.value().kind == BatchKind::General);
  CHECK(parsed.value().events[0].discriminator == "SomethingNew2030");
  CHECK_FALSE(parsed.value().events[0].entity_id.has_value());
  CHECK_FALSE(parsed.value().enterprise_id.has_value());
}

TEST_CASE("objects of other shapes are unknown, never refused") {
  for (const char* body : {R"({})", R"({"Hello":"world"})", R"({"Events":"not an array"})", R"({"Events":[1,2]})",
                           R"({"Events":[{"Value":{}}]})", R"({"Action":"X"})", R"({"Action":7,"Data":{}})"}) {
    CAPTURE(body);
    const auto parsed = ingest::parseBatch(body);
    REQUIRE(parsed.ok());
    CHECK(parsed.value().kind == BatchKind::Unknown);
    CHECK(parsed.value().events.empty());
  }
}

TEST_CASE("anything that is not one JSON object is refused with a reason") {
  struct Case {
    std::string body;
    std::string reason;
  };
  const std::string deep = std::string(300, '[') + std::string(300, ']');
  const std::string deep_object = "{\"a\":" + std::string(300, '[') + std::string(300, ']') + "}";
  for (const Case& c : std::initializer_list<Case>{
           {"", "empty"},
           {"[1,2,3]", "not a JSON object"},
           {"\"text\"", "not a JSON object"},
           {"42", "not a JSON object"},
           {"null", "not a JSON object"},
           {R"({"Events":[{"Discriminator":"A")", "not valid JSON"},
           {R"({"a":1} {"b":2})", "not valid JSON"},
           {R"({"a":1,})", "not valid JSON"},
           {R"({'a':1})", "not valid JSON"},
           {"{\"a\":\"\xff\xfe\"}", "UTF-8"},
           {"{\"a\":\"\xc3\x28\"}", "UTF-8"},
           {deep, "deeper than"},
           {deep_object, "deeper than"},
           {R"({"a":01})", "not valid JSON"},
           {R"({"a":1.})", "not valid JSON"},
           {R"({"a":--1})", "not valid JSON"},
       }) {
    CAPTURE(c.body);
    const auto parsed = ingest::parseBatch(c.body);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().find(c.reason) != std::string::npos);
    CHECK(parsed.error().find('\n') == std::string::npos);
  }
}

TEST_CASE("huge numbers are valid JSON: accepted, the batch still read") {
  const auto parsed = ingest::parseBatch(
      R"({"EnterpriseId":"e","Events":[{"Discriminator":"A","Value":{"Id":"x","Amount":123456789012345678901234567890}}],"Rate":1e999,"Neg":-1E-999})");
  REQUIRE(parsed.ok());
  CHECK(parsed.value().kind == BatchKind::General);
  CHECK(parsed.value().events.size() == 1);
  CHECK(parsed.value().enterprise_id == "e");
  CHECK(ingest::parseBatch(R"({"s":"1e999 \"2e999\"","n":9e9999})").ok());
}

TEST_CASE("nesting up to the limit is accepted") {
  const std::size_t depth = ingest::kMaxDepth - 1;
  const std::string body = "{\"a\":" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
  CHECK(ingest::parseBatch(body).ok());
}
