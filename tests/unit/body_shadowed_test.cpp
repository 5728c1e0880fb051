// A filtered target never receives the bytes of events it did not ask for,
// also when every event of the (last) Events member passes its filter: an
// earlier Events member, which every JSON reader ignores, is still in the
// received bytes.
#include <doctest/doctest.h>

#include "batch/body.h"

using namespace mews;
using journal::BatchKind;

namespace {

config::TargetSettings filteredTarget(std::vector<std::string> events) {
  config::TargetSettings t;
  t.mode = config::DeliveryMode::Batch;
  t.events = std::move(events);
  return t;
}

}  // namespace

TEST_CASE("every event passes the filter but a shadowed Events holds others: not the body as received") {
  const std::string body =
      R"({"Events":[{"Discriminator":"Secret"}], "a":1, "Events":[{"Discriminator":"A"},{"Discriminator":"B"}]})";
  const std::string built = batch::buildBody(BatchKind::General, body, std::nullopt, filteredTarget({"A", "B"}));
  CHECK(built.find("Secret") == std::string::npos);
  CHECK(built == R"({"a":1,"Events":[{"Discriminator":"A"},{"Discriminator":"B"}]})");
  // Spelled differently, the same name.
  const std::string escaped = R"({"Even\u0074s":[{"Discriminator":"Secret"}],"Events":[{"Discriminator":"A"}]})";
  CHECK(batch::buildBody(BatchKind::General, escaped, std::nullopt, filteredTarget({"A"})) ==
        R"({"Events":[{"Discriminator":"A"}]})");
}

TEST_CASE("one Events member, every event passing: still the exact bytes received") {
  const std::string body = "\xEF\xBB\xBF { \"Events\" : [ {\"Discriminator\":\"A\"} ] , \"x\" : 1.50 }";
  CHECK(batch::buildBody(BatchKind::General, body, std::nullopt, filteredTarget({"A"})) == body);
}
