// Routing by property: the `enterprises` and `integrations` filters of a
// target, from the INI text to the planned delivery rows.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>

#include "batch/payload.h"
#include "batch/routing.h"
#include "config/config.h"
#include "support/test_support.h"

using namespace mews;

namespace {

constexpr const char* kHotelA = "851df8c8-90f2-4c4a-8e01-a4fc46b25178";  // tests/data/general.json
constexpr const char* kHotelB = "8865aa96-f62d-4f9b-a912-ab2100f60f42";  // tests/data/integration.json
constexpr const char* kIntegrationB = "9e5e84e9-974d-4f16-9662-ab2200f27cb1";

config::Settings settingsWith(const std::string& targets) {
  return config::parseSettings("[server]\ntokens = aaaaaaaaaaaaaaaaaaaa\n" + targets, "relay.ini");
}

std::string errorOf(const std::string& targets) {
  try {
    settingsWith(targets);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> routedTo(const std::string& body, const config::Settings& settings) {
  auto parsed = batch::parseBatch(body);
  REQUIRE(parsed.ok());
  std::vector<std::string> names;
  for (const auto& planned : batch::planDeliveries(std::get<0>(parsed.result), settings.targets))
    names.push_back(planned.target);
  std::sort(names.begin(), names.end());  // targets come in the INI reader's order
  return names;
}

}  // namespace

TEST_CASE("enterprises and integrations: * by default, lists lowercased, shown by check-config") {
  const auto settings =
      settingsWith(fmt::format("[target.a]\nurl = http://127.0.0.1:9000/a\nenterprises = {}, {}\n"
                               "[target.b]\nurl = http://127.0.0.1:9000/b\nintegrations = {}\n",
                               "851DF8C8-90F2-4C4A-8E01-A4FC46B25178", kHotelB, kIntegrationB));
  REQUIRE(settings.targets.size() == 2);
  CHECK(settings.targets[0].enterprises == std::vector<std::string>{kHotelA, kHotelB});
  CHECK(settings.targets[0].integrations.empty());
  CHECK(settings.targets[1].enterprises.empty());
  CHECK(settings.targets[1].integrations == std::vector<std::string>{kIntegrationB});
  bool shown = false;
  for (const auto& entry : settings.effective)
    if (entry.section == "target.b" && entry.key == "integrations") shown = entry.value == kIntegrationB;
  CHECK(shown);
}

TEST_CASE("a bad id list names the target and the key") {
  CHECK(errorOf("[target.a]\nurl = http://x/\nenterprises = \n").find("[target.a] enterprises: use * or list") !=
        std::string::npos);
  CHECK(errorOf("[target.a]\nurl = http://x/\nenterprises = a b\n").find("'a b' is not an id") != std::string::npos);
  CHECK(errorOf("[target.a]\nurl = http://x/\nintegrations = *, abc\n").find("[target.a] integrations: * stands") !=
        std::string::npos);
}

TEST_CASE("the Mews samples go to the targets of their property only") {
  const auto settings = settingsWith(
      fmt::format("[target.hotel_a]\nurl = http://127.0.0.1:9000/a\nenterprises = {}\n"
                  "[target.hotel_b]\nurl = http://127.0.0.1:9000/b\nenterprises = {}\n"
                  "[target.chain]\nurl = http://127.0.0.1:9000/c\n"
                  "[target.b_integration]\nurl = http://127.0.0.1:9000/d\nenterprises = {}\nintegrations = {}\n",
                  kHotelA, kHotelB, kHotelB, kIntegrationB));
  CHECK(routedTo(test::sample("general.json"), settings) == std::vector<std::string>{"chain", "hotel_a"});
  CHECK(routedTo(test::sample("integration.json"), settings) ==
        std::vector<std::string>{"b_integration", "chain", "hotel_b"});
  // A batch of unknown shape names no property: only unfiltered targets get it.
  CHECK(routedTo(R"({"Something":"new"})", settings) == std::vector<std::string>{"chain"});
}

TEST_CASE("a property no target wants plans nothing; the batch is still journaled by ingest") {
  const auto settings =
      settingsWith(fmt::format("[target.hotel_b]\nurl = http://127.0.0.1:9000/b\nenterprises = {}\n", kHotelB));
  CHECK(routedTo(test::sample("general.json"), settings).empty());
}

TEST_CASE("property and event filters combine") {
  const auto settings =
      settingsWith(fmt::format("[target.a]\nurl = http://127.0.0.1:9000/a\nmode = event\nenterprises = {}\n"
                               "events = CustomerAdded, CustomerUpdated\n",
                               kHotelA));
  CHECK(routedTo(test::sample("general.json"), settings) == std::vector<std::string>{"a", "a"});
  CHECK(routedTo(test::sample("integration.json"), settings).empty());
}
