// Routing by property, end to end on the built binary: batches for several
// properties (EnterpriseIds) reach only the targets that list them; a batch no
// target wants is journaled, acknowledged and counted as unrouted by `status`
// and /metrics.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>

#include <array>
#include <map>
#include <regex>
#include <thread>

#include "support/relay_process.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;

namespace {

constexpr const char* kHotelA = "851df8c8-90f2-4c4a-8e01-a4fc46b25178";  // tests/data/general.json
constexpr const char* kHotelB = "8865aa96-f62d-4f9b-a912-ab2100f60f42";  // tests/data/integration.json
constexpr const char* kHotelC = "3f0e8a52-9f43-4d0b-b1a5-0c1d2e3f4a5b";
constexpr const char* kHotelD = "c0ffee00-1111-2222-3333-444455556666";  // no target lists it

std::string batchFor(const std::string& enterprise, int n) {
  return fmt::format(R"({{"EnterpriseId":"{}","IntegrationId":"c8bee838-7fb1-4f4e-8fac-ac87008b2f90","Events":[)"
                     R"({{"Discriminator":"ReservationUpdated","Value":{{"Id":"00000000-0000-0000-0000-{:012}"}}}}]}})",
                     enterprise, n);
}

std::string runCli(const std::string& config, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"-c", config};
  argv.insert(argv.end(), args.begin(), args.end());
  Poco::Pipe out_pipe;
  auto handle = Poco::Process::launch(MEWS_RELAY_BINARY, argv, nullptr, &out_pipe, nullptr);
  Poco::PipeInputStream out(out_pipe);
  std::string text(std::istreambuf_iterator<char>(out), {});
  REQUIRE(handle.wait() == 0);
  return text;
}

// How many requests of `sink` carry each EnterpriseId.
std::map<std::string, int> enterprisesSeen(const test::Sink& sink) {
  std::map<std::string, int> seen;
  const std::regex id(R"re("EnterpriseId":\s*"([0-9a-f-]+)")re");
  for (const auto& request : sink.requests()) {
    std::smatch match;
    if (std::regex_search(request.body, match, id)) seen[match[1]]++;
  }
  return seen;
}

}  // namespace

TEST_CASE("two properties, two targets: each gets its own; an unwanted property is journaled as unrouted") {
  test::TempDir dir;
  test::Sink hotel_a;
  test::Sink hotels_bc;
  const std::string journal = dir.file("relay.db");
  const std::string config = dir.file("relay.ini");
  test::writeFile(config, fmt::format("[server]\nlisten = 127.0.0.1:0\ntokens = {}\n[admin]\nlisten = 127.0.0.1:0\n"
                                      "[journal]\npath = {}\nmin_free = 0B\n"
                                      "[target.hotel_a]\nurl = {}\nenterprises = {}\n"
                                      "[target.hotels_bc]\nurl = {}\nenterprises = {}, {}\n",
                                      test::kToken, journal, hotel_a.url(), kHotelA, hotels_bc.url(),
                                      // An operator's copy in capitals matches too.
                                      std::string("8865AA96-F62D-4F9B-A912-AB2100F60F42"), kHotelC));
  test::RelayProcess relay(config);

  // The Mews documentation's samples: General for A, Integration for B.
  REQUIRE(test::httpRequest(relay.ingestPort(), "POST", test::kIngestUri, test::sample("general.json")).status == 202);
  REQUIRE(test::httpRequest(relay.ingestPort(), "POST", test::kIngestUri, test::sample("integration.json")).status ==
          202);
  // Generated batches, interleaved across four properties.
  for (int i = 0; i < 12; ++i) {
    const char* enterprise = std::array{kHotelA, kHotelB, kHotelC, kHotelD}[static_cast<std::size_t>(i % 4)];
    const auto answer = test::httpRequest(relay.ingestPort(), "POST", test::kIngestUri, batchFor(enterprise, i));
    REQUIRE(answer.status == 202);  // unrouted or not: journaled and acknowledged
  }

  REQUIRE(hotel_a.waitForRequests(4, 10s));
  REQUIRE(hotels_bc.waitForRequests(7, 10s));
  std::this_thread::sleep_for(300ms);  // nothing more arrives
  CHECK(enterprisesSeen(hotel_a) == std::map<std::string, int>{{kHotelA, 4}});
  CHECK(enterprisesSeen(hotels_bc) == std::map<std::string, int>{{kHotelB, 3}, {kHotelC, 3}});
  CHECK(hotels_bc.requests().size() == 7);  // the Integration sample has no top-level EnterpriseId
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 14);
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches WHERE unrouted = 1") == 3);
  CHECK(test::queryInt(journal, fmt::format("SELECT count(*) FROM batches WHERE unrouted = 1 AND enterprise_id = '{}'",
                                            kHotelD)) == 3);

  const std::string status = runCli(config, {"status"});
  CHECK(status.find("14 batches") != std::string::npos);
  CHECK(status.find("3 unrouted") != std::string::npos);
  CHECK(runCli(config, {"status", "--json"}).find("\"unrouted_batches\":3") != std::string::npos);
  const auto metrics = test::httpRequest(relay.adminPort(), "GET", "/metrics");
  CHECK(metrics.body.find("mews_relay_batches_unrouted_total{kind=\"general\"} 3") != std::string::npos);
  CHECK(runCli(config, {"check-config"}).find("enterprises") != std::string::npos);
}
