#include <doctest/doctest.h>

#include "batch/routing.h"

using namespace mews;

namespace {

config::TargetSettings target(const std::string& name, config::DeliveryMode mode, std::vector<std::string> events) {
  config::TargetSettings t;
  t.name = name;
  t.mode = mode;
  t.events = std::move(events);
  return t;
}

journal::BatchSummary general(std::vector<std::string> discriminators) {
  journal::BatchSummary summary;
  summary.kind = journal::BatchKind::General;
  for (auto& d : discriminators) summary.events.push_back({std::move(d), std::nullopt});
  return summary;
}

}  // namespace

TEST_CASE("batch mode: one delivery when any event matches") {
  const auto all = target("all", config::DeliveryMode::Batch, {});
  const auto customers = target("crm", config::DeliveryMode::Batch, {"CustomerAdded"});
  const auto rooms = target("rooms", config::DeliveryMode::Batch, {"ResourceUpdated"});
  const auto planned = batch::planDeliveries(general({"CustomerAdded", "CustomerUpdated"}), {all, customers, rooms});
  REQUIRE(planned.size() == 2);
  CHECK(planned[0].target == "all");
  CHECK_FALSE(planned[0].event_seq.has_value());
  CHECK(planned[1].target == "crm");
}

TEST_CASE("event mode: one delivery per matching event") {
  const auto per_event = target("pe", config::DeliveryMode::Event, {"B", "C"});
  const auto planned = batch::planDeliveries(general({"A", "B", "C", "B"}), {per_event});
  REQUIRE(planned.size() == 3);
  CHECK(planned[0].event_seq == 1);
  CHECK(planned[1].event_seq == 2);
  CHECK(planned[2].event_seq == 3);
}

TEST_CASE("integration webhooks match on Action") {
  journal::BatchSummary summary;
  summary.kind = journal::BatchKind::Integration;
  summary.events.push_back({"IntegrationCreated", std::nullopt});
  const auto planned = batch::planDeliveries(summary, {target("a", config::DeliveryMode::Batch, {"IntegrationCreated"}),
                                                       target("b", config::DeliveryMode::Batch, {"IntegrationDeleted"}),
                                                       target("c", config::DeliveryMode::Event, {})});
  REQUIRE(planned.size() == 2);
  CHECK(planned[0].target == "a");
  CHECK(planned[1].target == "c");
  CHECK(planned[1].event_seq == 0);
}

TEST_CASE("unknown batches go whole to targets with events = * only") {
  journal::BatchSummary unknown;
  const auto planned =
      batch::planDeliveries(unknown, {target("all-batch", config::DeliveryMode::Batch, {}),
                                      target("all-event", config::DeliveryMode::Event, {}),
                                      target("filtered", config::DeliveryMode::Batch, {"CustomerAdded"})});
  REQUIRE(planned.size() == 2);
  CHECK(planned[0].target == "all-batch");
  CHECK(planned[1].target == "all-event");
  CHECK_FALSE(planned[1].event_seq.has_value());
}

TEST_CASE("a batch that matches no target plans nothing") {
  CHECK(batch::planDeliveries(general({"A"}), {target("x", config::DeliveryMode::Batch, {"B"})}).empty());
  CHECK(batch::planDeliveries(general({}), {target("x", config::DeliveryMode::Batch, {})}).empty());
}

TEST_CASE("a dead letter names the event types its target wanted, read from the stored body") {
  const std::string body =
      R"({"Events":[{"Discriminator":"CustomerAdded","Value":{"Id":"a"}},)"
      R"({"Discriminator":"Customer\u0055pdated","Value":{"Id":"b"}},)"
      R"({"Discriminator":"CustomerAdded","Value":{"Id":"c"}},{"Discriminator":"ResourceUpdated","Value":{}}]})";
  const auto all = batch::deadLetterTypes(target("all", config::DeliveryMode::Batch, {}));
  const auto customers =
      batch::deadLetterTypes(target("crm", config::DeliveryMode::Batch, {"CustomerAdded", "CustomerUpdated"}));
  const auto each = batch::deadLetterTypes(target("each", config::DeliveryMode::Event, {}));
  // Distinct, in the order received; names decoded.
  CHECK(all(body, std::nullopt) == "CustomerAdded,CustomerUpdated,ResourceUpdated");
  CHECK(customers(body, std::nullopt) == "CustomerAdded,CustomerUpdated");
  // Event mode: the one event.
  CHECK(each(body, 3) == "ResourceUpdated");
  CHECK(each(body, 1) == "CustomerUpdated");
  // An integration webhook names its action; an unknown or unreadable body names none.
  CHECK(all(R"({"Action":"IntegrationCreated","Data":{}})", std::nullopt) == "IntegrationCreated");
  CHECK(all(R"({"Something":"else"})", std::nullopt).empty());
  CHECK(all("not json", std::nullopt).empty());
}
