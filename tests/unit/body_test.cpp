#include <doctest/doctest.h>

#include "delivery/body.h"
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
  CHECK(delivery::buildBody(BatchKind::General, general, std::nullopt, target(config::DeliveryMode::Batch, {})) ==
        general);
  // A filter that every event passes changes nothing either.
  CHECK(
      delivery::buildBody(BatchKind::General, general, std::nullopt,
                          target(config::DeliveryMode::Batch, {"ServiceOrderUpdated", "ResourceUpdated", "MessageAdded",
                                                               "CustomerAdded", "CustomerUpdated"})) == general);
  const std::string integration = test::sample("integration.json");
  CHECK(delivery::buildBody(BatchKind::Integration, integration, std::nullopt,
                            target(config::DeliveryMode::Batch, {"IntegrationCreated"})) == integration);
  CHECK(delivery::buildBody(BatchKind::Integration, integration, 0, target(config::DeliveryMode::Event, {})) ==
        integration);
  CHECK(delivery::buildBody(BatchKind::Unknown, "{ \"x\" : 1 }", std::nullopt,
                            target(config::DeliveryMode::Event, {})) == "{ \"x\" : 1 }");
}

TEST_CASE("a filtered batch keeps the top-level members and the matching events only") {
  const std::string body =
      delivery::buildBody(BatchKind::General, test::sample("general.json"), std::nullopt,
                          target(config::DeliveryMode::Batch, {"CustomerAdded", "CustomerUpdated"}));
  CHECK(
      body ==
      R"({"EnterpriseId":"851df8c8-90f2-4c4a-8e01-a4fc46b25178","IntegrationId":"c8bee838-7fb1-4f4e-8fac-ac87008b2f90",)"
      R"("Events":[{"Discriminator":"CustomerAdded","Value":{"Id":"c2f1d888-232e-49eb-87ac-5f75363af13b"}},)"
      R"({"Discriminator":"CustomerUpdated","Value":{"Id":"b3ce0fd7-a715-4bfc-969e-ef7a4822963c"}}]})");
}

TEST_CASE("event mode: a General webhook with one event") {
  const std::string body =
      delivery::buildBody(BatchKind::General, test::sample("general.json"), 2, target(config::DeliveryMode::Event, {}));
  CHECK(
      body ==
      R"({"EnterpriseId":"851df8c8-90f2-4c4a-8e01-a4fc46b25178","IntegrationId":"c8bee838-7fb1-4f4e-8fac-ac87008b2f90",)"
      R"("Events":[{"Discriminator":"MessageAdded","Value":{"Id":"4bfe4675-98a9-4428-9ea9-ae5300dbaa93"}}]})");
  CHECK_THROWS(delivery::buildBody(BatchKind::General, test::sample("general.json"), 9,
                                   target(config::DeliveryMode::Event, {})));
}
