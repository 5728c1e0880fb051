// Reload without a restart, on the built binary: SIGHUP re-reads the file
// while a bounded load runs from a thread. Tokens rotate with no 401 for the
// old token before its removal and no 202 for it after; targets are added and
// removed with nothing lost (a removed target's work waits in the journal
// until it is moved with `replay --from S --to T`); a broken file keeps the
// running configuration and logs every error.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "support/operator_fixture.h"
#include "support/relay_process.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::queryInt;
using Steady = std::chrono::steady_clock;

namespace {

// Listed in tests/data/secrets.txt: never in a log.
constexpr const char* kOldToken = "rotation-old-token-5550123";
constexpr const char* kNewToken = "rotation-new-token-5550456";

std::string body(std::size_t n) {
  return fmt::format(
      R"({{"EnterpriseId":"851df8c8-90f2-4c4a-8e01-a4fc46b25178","IntegrationId":"c8bee838-7fb1-4f4e-8fac-ac87008b2f90",)"
      R"("Events":[{{"Discriminator":"ReservationUpdated","Value":{{"Id":"00000000-0000-0000-0000-{:012}"}}}}]}})",
      n);
}

// One post on a kept-alive session: a reload must not drop the connection.
struct Posted {
  std::string token;
  Steady::time_point started;
  int status = 0;  // 0: the connection failed
  std::int64_t batch = 0;
};

Posted post(Poco::Net::HTTPClientSession& session, const std::string& token, std::size_t n) {
  Posted posted{token, Steady::now()};
  try {
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, "/webhooks/mews?token=" + token,
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    const std::string text = body(n);
    request.setContentType("application/json");
    request.setContentLength64(static_cast<Poco::Int64>(text.size()));
    request.setKeepAlive(true);
    session.sendRequest(request) << text;
    Poco::Net::HTTPResponse response;
    std::string answer;
    Poco::StreamCopier::copyToString(session.receiveResponse(response), answer);
    posted.status = static_cast<int>(response.getStatus());
    std::smatch match;
    if (std::regex_search(answer, match, std::regex(R"("batch":(\d+))"))) posted.batch = std::stoll(match[1]);
  } catch (const Poco::Exception&) {
    session.reset();
  }
  return posted;
}

// Posts from a thread until stopped: bounded in count and time.
class Load {
 public:
  Load(std::uint16_t port, std::vector<std::string> tokens) : tokens_(std::move(tokens)) {
    thread_ = std::thread([this, port] {
      Poco::Net::HTTPClientSession session("127.0.0.1", port);
      session.setTimeout(Poco::Timespan(10, 0));
      session.setKeepAlive(true);
      const auto deadline = Steady::now() + 60s;
      for (std::size_t n = 0; n < 20'000 && !stop_ && Steady::now() < deadline; ++n) {
        std::string token;
        {
          const std::lock_guard lock(mutex_);
          token = tokens_[n % tokens_.size()];
        }
        Posted posted = post(session, token, n);
        const std::lock_guard lock(mutex_);
        posted_.push_back(std::move(posted));
      }
    });
  }
  ~Load() { finish(); }

  void setTokens(std::vector<std::string> tokens) {
    const std::lock_guard lock(mutex_);
    tokens_ = std::move(tokens);
  }
  std::vector<Posted> finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    const std::lock_guard lock(mutex_);
    return posted_;
  }
  [[nodiscard]] std::size_t count() const {
    const std::lock_guard lock(mutex_);
    return posted_.size();
  }
  // Waits until `more` further posts were answered.
  void waitFor(std::size_t more) const {
    const std::size_t target = count() + more;
    REQUIRE(test::waitUntil([&] { return count() >= target; }, 20s));
  }

 private:
  std::vector<std::string> tokens_;
  mutable std::mutex mutex_;
  std::vector<Posted> posted_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string configText(const std::string& journal, const std::string& server_extra, const std::string& targets,
                       const std::string& tokens = test::kToken) {
  return fmt::format(
      "[server]\nlisten = 127.0.0.1:0\ntokens = {}\n{}[admin]\nlisten = 127.0.0.1:0\n"
      "[journal]\npath = {}\nmin_free = 0B\n{}",
      tokens, server_extra, journal, targets);
}

std::string target(const std::string& name, const test::Sink& sink, const std::string& extra = "") {
  return fmt::format("[target.{}]\nurl = {}\nbackoff = 10ms..100ms\n{}", name, sink.url(), extra);
}

// Sends SIGHUP and waits for the reload's log line (the n-th since start).
void reload(test::RelayProcess& relay, const std::string& expect = "msg=\"configuration reloaded\"") {
  const std::size_t from = relay.logSize();
  relay.signal(SIGHUP);
  REQUIRE(relay.waitForLog(expect, 10s, from));
}

std::int64_t batchOfWebhookId(const std::string& id) {
  return std::stoll(id.substr(id.rfind('_') + 1));
}

}  // namespace

TEST_CASE("token rotation by reload under load: the old token works until removed, never after") {
  test::TempDir dir;
  test::Sink sink;
  const std::string journal = dir.file("relay.db");
  const std::string config = dir.file("relay.ini");
  const std::string tokens_file = dir.file("tokens");
  // Tokens in a file of their own (${file:PATH}), re-read at every reload.
  test::writeFile(tokens_file, std::string(kOldToken) + "\n");
  test::writeFile(config, configText(journal, "", target("pms", sink), "${file:" + tokens_file + "}"));
  test::RelayProcess relay(config);
  Load load(relay.ingestPort(), {kOldToken});
  load.waitFor(20);

  // Step 1 of a rotation: both tokens.
  test::writeFile(tokens_file, fmt::format("{}, {}\n", kOldToken, kNewToken));
  reload(relay);
  const auto both_at = Steady::now();
  load.setTokens({kOldToken, kNewToken});
  load.waitFor(40);

  // Step 2: Mews uses the new one; the old one is removed.
  const auto removing_at = Steady::now();
  test::writeFile(tokens_file, std::string(kNewToken) + "\n");
  reload(relay);
  const auto removed_at = Steady::now();
  load.waitFor(40);
  const auto posted = load.finish();

  std::size_t accepted = 0, old_refused = 0, new_accepted = 0;
  for (const auto& p : posted) {
    INFO("token " << p.token << " status " << p.status);
    CHECK(p.status != 0);  // no connection dropped by a reload
    if (p.token == kOldToken && p.started < removing_at) CHECK(p.status == 202);
    if (p.token == kOldToken && p.started > removed_at) CHECK(p.status == 401);
    if (p.token == kNewToken && p.started > both_at) CHECK(p.status == 202);
    if (p.token == kNewToken && p.status == 202) ++new_accepted;
    if (p.token == kOldToken && p.status == 401) ++old_refused;
    if (p.status == 202) ++accepted;
  }
  CHECK(new_accepted >= 20);
  CHECK(old_refused >= 20);
  // Every 202 is a batch in the journal.
  CHECK(queryInt(journal, "SELECT count(*) FROM batches") == static_cast<std::int64_t>(accepted));
  CHECK(relay.log().find(kOldToken) == std::string::npos);
  CHECK(relay.log().find(kNewToken) == std::string::npos);
}

TEST_CASE("targets added and removed by reload under load: nothing lost; a removed target's work waits, then moves") {
  test::TempDir dir;
  test::Sink pms;
  test::Sink crm;
  std::atomic<bool> pms_down{false};
  pms.setScript([&](const test::SinkRequest&, std::size_t) {
    return pms_down ? test::SinkResponse{503, "", "", "down"} : test::SinkResponse{};
  });
  // Each answer takes a moment, so attempts are in flight when the reloads land.
  crm.setScript([](const test::SinkRequest&, std::size_t) {
    test::SinkResponse answer;
    answer.hang = 20ms;
    return answer;
  });
  const std::string journal = dir.file("relay.db");
  const std::string config = dir.file("relay.ini");
  test::writeFile(config, configText(journal, "", target("pms", pms)));
  test::RelayProcess relay(config);
  Load load(relay.ingestPort(), {test::kToken});
  load.waitFor(20);

  // crm added: batches from now on go to both.
  test::writeFile(config, configText(journal, "", target("pms", pms) + target("crm", crm)));
  reload(relay, "msg=\"targets reloaded\" added=crm");
  const std::int64_t first_for_crm = queryInt(journal, "SELECT coalesce(max(id), 0) FROM batches") + 1;
  load.waitFor(30);

  // pms goes down, then is removed (its retries wait in the journal); crm's
  // timeout changes while its attempts are in flight.
  pms_down = true;
  load.waitFor(30);
  test::writeFile(config, configText(journal, "", target("crm", crm, "timeout = 5s\n")));
  reload(relay, "msg=\"targets reloaded\" added=- changed=crm removed=pms");
  // One load thread: at most the one batch in progress during the reload was planned with pms.
  const std::int64_t at_removal = queryInt(journal, "SELECT max(id) FROM batches") + 1;
  load.waitFor(30);
  const auto posted = load.finish();
  CHECK(queryInt(journal, fmt::format("SELECT count(*) FROM deliveries WHERE target = 'pms' AND batch_id > {}",
                                      at_removal)) == 0);

  // The removed target's work is reported, not dropped: status, metrics, the warning.
  CHECK(relay.log().find("msg=\"work for a target that is not configured waits in the journal\" target=pms") !=
        std::string::npos);
  REQUIRE(test::waitUntil(
      [&] { return queryInt(journal, "SELECT count(*) FROM deliveries WHERE state = 'in_flight'") == 0; }, 10s));
  const std::int64_t waiting =
      queryInt(journal, "SELECT count(*) FROM deliveries WHERE target = 'pms' AND state != 'delivered'");
  CHECK(waiting > 0);
  const auto status = test::runCommand(config, {"status"});
  CHECK(std::regex_search(status.out, std::regex(R"(\npms +\d+ +0 +\d+ +0 +\S+ +unknown target)")));
  CHECK(status.out.find("replay --from pms --to TARGET") != std::string::npos);
  CHECK(test::runCommand(config, {"status", "--json"}).out.find(R"("target":"pms",)") != std::string::npos);
  CHECK(test::httpRequest(relay.adminPort(), "GET", "/metrics")
            .body.find(fmt::format("mews_relay_unknown_target_deliveries{{target=\"pms\"}} {}", waiting)) !=
        std::string::npos);
  // A reload says so again.
  reload(relay, "target=pms waiting=");

  // crm's attempts, some in flight at the reloads, all ended delivered (no retry).
  CHECK(queryInt(journal,
                 "SELECT count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
                 " WHERE d.target = 'crm' AND a.outcome != 'delivered'") == 0);
  // Moved to crm through the running relay.
  CHECK(test::runCommand(config, {"replay", "--from", "pms", "--to", "pms"}).exit == 1);  // pms is not configured
  const auto moved = test::runCommand(config, {"replay", "--from", "pms", "--to", "crm"});
  CHECK(moved.exit == 0);
  CHECK(moved.out == fmt::format("replayed {} deliveries to crm (through the running relay)\n", waiting));
  REQUIRE(test::waitUntil(
      [&] { return queryInt(journal, "SELECT count(*) FROM deliveries WHERE state != 'delivered'") == 0; }, 20s));

  // Nothing lost: every acknowledged batch reached pms or crm; every batch
  // since crm was added reached crm; nothing is dead.
  std::set<std::int64_t> acknowledged;
  for (const auto& p : posted) {
    CHECK(p.status == 202);
    acknowledged.insert(p.batch);
  }
  std::set<std::int64_t> at_pms, at_crm;
  for (const auto& request : pms.requests()) at_pms.insert(batchOfWebhookId(request.headers.at("webhook-id")));
  for (const auto& request : crm.requests()) at_crm.insert(batchOfWebhookId(request.headers.at("webhook-id")));
  for (const auto batch : acknowledged) {
    INFO("batch " << batch);
    CHECK((at_pms.count(batch) + at_crm.count(batch)) > 0);
    if (batch >= first_for_crm) CHECK(at_crm.count(batch) == 1);
  }
  CHECK(queryInt(journal, "SELECT count(*) FROM dead_letters") == 0);
}

TEST_CASE("a broken file keeps the running configuration and logs every error; restart-only keys are named") {
  test::TempDir dir;
  test::Sink pms;
  const std::string journal = dir.file("relay.db");
  const std::string config = dir.file("relay.ini");
  const std::string good = configText(journal, "", target("pms", pms));
  test::writeFile(config, good);
  test::RelayProcess relay(config);
  REQUIRE(test::httpRequest(relay.ingestPort(), "POST", test::kIngestUri, test::sample("general.json")).status == 202);

  test::writeFile(config,
                  configText(journal, "max_body = 1MB\nfrobnicate = 1\n",
                             "[target.pms]\nurl = ftp://nowhere\n[target.crm]\nurl = http://127.0.0.1:9/\n", "short"));
  reload(relay, "msg=\"reload refused; the running configuration stays\"");
  REQUIRE(relay.waitForLog("[target.pms] url:", 2s));
  const std::string log = relay.log();
  for (const char* error :
       {"[server] tokens:", "[server] max_body:", "[server] frobnicate: unknown key", "[target.pms] url:"})
    CHECK(log.find(error) != std::string::npos);
  CHECK(log.find("msg=\"configuration reloaded\"") == std::string::npos);
  // The old token, the old target: still in force.
  CHECK(test::httpRequest(relay.ingestPort(), "POST", test::kIngestUri, test::sample("general.json")).status == 202);
  REQUIRE(pms.waitForRequests(2, 5s));
  CHECK(queryInt(journal, "SELECT count(*) FROM deliveries WHERE target = 'crm'") == 0);

  // A good file with a new listen address and log level: the address waits
  // for a restart (named), the level applies.
  test::writeFile(
      config, configText(journal, "", target("pms", pms) + "[log]\nlevel = warn\n")
                  .replace(0, std::string("[server]\nlisten = 127.0.0.1:0").size(), "[server]\nlisten = 127.0.0.1:1"));
  reload(relay, "settings=\"[server] listen\"");
  const std::size_t before = relay.logSize();
  CHECK(test::httpRequest(relay.ingestPort(), "POST", test::kIngestUri, test::sample("general.json")).status == 202);
  REQUIRE(pms.waitForRequests(3, 5s));
  std::this_thread::sleep_for(200ms);
  CHECK(relay.log().find("msg=\"batch accepted\"", before) == std::string::npos);  // info is off now
  CHECK(test::runCommand(config, {"check-config"}).out.find("; restart to change") != std::string::npos);
}

TEST_CASE("a reload that meets a FIFO as a token file refuses it at once; SIGTERM still stops the relay") {
  test::TempDir dir;
  test::Sink pms;
  const std::string journal = dir.file("relay.db");
  const std::string config = dir.file("relay.ini");
  const std::string fifo = dir.file("tokens.fifo");
  test::writeFile(config, configText(journal, "", target("pms", pms)));
  test::RelayProcess relay(config);
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  test::writeFile(config, configText(journal, "", target("pms", pms), "${file:" + fifo + "}"));
  const std::size_t from = relay.logSize();
  relay.signal(SIGHUP);
  CHECK(relay.waitForLog("is a FIFO, not a regular file", 5s, from));
  CHECK(relay.log().find("[server] tokens: " + fifo, from) != std::string::npos);
  CHECK(test::httpRequest(relay.ingestPort(), "POST", test::kIngestUri, test::sample("general.json")).status == 202);
  const auto stopping = Steady::now();
  CHECK(relay.stop() == 0);  // before the fix: SIGTERM unanswered, killed after 20 s
  CHECK(Steady::now() - stopping < 10s);
}

TEST_CASE("replay --to and dlq purge --from: dead letters to another target; a removed target re-added or purged") {
  test::TempDir dir;
  test::Sink pms;
  test::Sink crm;
  std::atomic<int> pms_answer{400};
  pms.setScript([&](const test::SinkRequest&, std::size_t) { return test::SinkResponse{pms_answer, "", "", "no"}; });
  const std::string journal = dir.file("relay.db");
  const std::string config = dir.file("relay.ini");
  const std::string with_pms =
      configText(journal, "", target("pms", pms, "max_attempts = 1000\n") + target("crm", crm));
  const std::string without_pms = configText(journal, "", target("crm", crm));
  test::writeFile(config, with_pms);
  test::RelayProcess relay(config);
  auto deliveries = [&](const std::string& where) {
    return queryInt(journal, "SELECT count(*) FROM deliveries WHERE " + where);
  };

  // A dead letter of pms goes to crm instead: same webhook-id, the letter follows.
  REQUIRE(test::httpRequest(relay.ingestPort(), "POST", test::kIngestUri, body(1)).status == 202);
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 1; }, 5s));
  REQUIRE(crm.waitForRequests(1, 5s));
  CHECK(test::runCommand(config, {"replay", "1", "--to", "nope"}).err.find("no target 'nope'") != std::string::npos);
  CHECK(test::runCommand(config, {"replay", "--received-since", "1h", "--target", "crm", "--to", "crm"}).exit == 2);
  const auto to_crm = test::runCommand(config, {"replay", "1", "--to", "crm"});
  CHECK(to_crm.out == "replayed 1 delivery to crm (through the running relay)\n");
  REQUIRE(crm.waitForRequests(2, 5s));
  CHECK(crm.requests()[1].headers.at("webhook-id") == crm.requests()[0].headers.at("webhook-id"));
  REQUIRE(test::waitUntil([&] { return queryInt(journal, "SELECT count(*) FROM dead_letters") == 0; }, 5s));

  // pms down (retried), removed: its work waits; re-added, it drains by itself.
  pms_answer = 503;
  REQUIRE(test::httpRequest(relay.ingestPort(), "POST", test::kIngestUri, body(2)).status == 202);
  REQUIRE(test::waitUntil([&] { return deliveries("target = 'pms' AND attempts > 0 AND state != 'dead'") == 1; }, 5s));
  test::writeFile(config, without_pms);
  reload(relay, "not configured waits in the journal\" target=pms");
  CHECK(test::runCommand(config, {"dlq", "purge", "--from", "crm"}).err.find("target 'crm' is in") !=
        std::string::npos);
  CHECK(test::runCommand(config, {"replay", "--from", "crm", "--to", "crm"}).exit == 1);
  pms_answer = 200;
  test::writeFile(config, with_pms);
  reload(relay, "msg=\"targets reloaded\" added=pms");
  REQUIRE(test::waitUntil([&] { return deliveries("target = 'pms' AND state != 'delivered'") == 0; }, 10s));
  CHECK(pms.requests().back().headers.at("webhook-id").ends_with("_2"));

  // Down and removed again, then its work is purged: gone from status and metrics.
  pms_answer = 503;
  REQUIRE(test::httpRequest(relay.ingestPort(), "POST", test::kIngestUri, body(3)).status == 202);
  REQUIRE(
      test::waitUntil([&] { return deliveries("target = 'pms' AND attempts > 0 AND state != 'delivered'") == 1; }, 5s));
  test::writeFile(config, without_pms);
  reload(relay, "not configured waits in the journal\" target=pms");
  REQUIRE(test::waitUntil([&] { return deliveries("target = 'pms' AND state = 'in_flight'") == 0; }, 5s));
  CHECK(test::runCommand(config, {"dlq", "purge", "--from", "pms", "--dry-run"}).out ==
        "would purge 1 delivery of pms (through the running relay)\n");
  CHECK(test::runCommand(config, {"dlq", "purge", "--from", "pms"}).out ==
        "purged 1 delivery of pms (through the running relay)\n");
  CHECK(deliveries("target = 'pms' AND state != 'delivered'") == 0);
  CHECK(test::runCommand(config, {"status"}).out.find("unknown target") == std::string::npos);
  CHECK(test::httpRequest(relay.adminPort(), "GET", "/metrics").body.find("mews_relay_unknown_target_deliveries{") ==
        std::string::npos);
  const std::size_t from = relay.logSize();
  reload(relay);
  CHECK(relay.log().find("target=pms", from) == std::string::npos);

  // With no relay running the CLI writes the journal itself.
  relay.stop();
  CHECK(test::runCommand(config, {"replay", "--from", "pms", "--to", "crm"}).out == "replayed 0 deliveries to crm\n");
}
