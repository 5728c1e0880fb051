// The event types a dead letter names (dead_letters.event_types), with the real
// relay and a sink that rejects everything: in event mode each letter names its
// own event; in batch mode the distinct types the target's filter passed, read
// as every reader reads the body (escapes decoded, the last Events member).
// The engine names them from the body it sent, not the writer from the stored
// batch (which in event mode parsed the whole batch again for every event, on
// the thread every acknowledgement waits for).
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <string>
#include <vector>

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

std::string event(const std::string& discriminator, int id) {
  return fmt::format(R"({{"Discriminator":"{}","Value":{{"Id":"e{}"}}}})", discriminator, id);
}

std::string batchOf(const std::string& events_members) {
  return fmt::format(
      R"({{"EnterpriseId":"851df8c8-90f2-4c4a-8e01-a4fc46b25178","IntegrationId":"c8bee838-7fb1-4f4e-8fac-ac87008b2f90",{}}})",
      events_members);
}

void rejectAll(Sink& sink) {
  sink.setScript([](const SinkRequest&, std::size_t) { return SinkResponse{422, "", "", "no"}; });
}

}  // namespace

TEST_CASE("event mode: each dead letter names its own event's type, escapes decoded") {
  test::TempDir dir;
  Sink sink;
  rejectAll(sink);
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(deliveryConfig(journal, targetSection("each", sink.url(), "mode = event")));
  const std::string body =
      batchOf(fmt::format(R"("Events":[{},{},{},{}])", event("CustomerAdded", 1), event("ResourceUpdated", 2),
                          event("CustomerAdded", 3), event(R"(Customer\u0055pdated)", 4)));
  REQUIRE(test::httpRequest(relay->ingestPort(), "POST", test::kIngestUri, body).status == 202);
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 4; }, 10s));
  CHECK(queryText(journal,
                  "SELECT group_concat(event_types, '|') FROM (SELECT l.event_types FROM dead_letters l"
                  " JOIN deliveries d ON d.id = l.delivery_id ORDER BY d.event_seq)") ==
        "CustomerAdded|ResourceUpdated|CustomerAdded|CustomerUpdated");
}

TEST_CASE("batch mode: a dead letter names the distinct types the filter passed, from the last Events member") {
  test::TempDir dir;
  Sink sink;
  rejectAll(sink);
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(
      deliveryConfig(journal, targetSection("crm", sink.url(), "events = CustomerAdded, ResourceUpdated")));
  // A shadowed Events member first: every reader uses the last one.
  const std::string body = batchOf(fmt::format(R"("Events":[{}],"Events":[{},{},{},{}])", event("ResourceUpdated", 0),
                                               event(R"(Customer\u0041dded)", 1), event("MessageAdded", 2),
                                               event("CustomerAdded", 3), event("CustomerUpdated", 4)));
  REQUIRE(test::httpRequest(relay->ingestPort(), "POST", test::kIngestUri, body).status == 202);
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 1; }, 10s));
  CHECK(queryText(journal, "SELECT event_types FROM dead_letters") == "CustomerAdded");
}
