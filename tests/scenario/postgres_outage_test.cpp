// The PostgreSQL journal when its server goes away: stopped or read-only (503
// with Retry-After, /readyz not ready with the reason, then recovery by itself),
// restarted under load with `pg_ctl restart -m immediate` (every batch
// acknowledged with 202 is delivered; 503s in between), and a server that
// would not make commits durable (refused at start). Each case starts its own
// throwaway server (scripts/pg-throwaway, MEWS_TEST_PG_THROWAWAY), since it
// stops or reconfigures it; registered as a PostgreSQL test only.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "config/config.h"
#include "relay/relay.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::Sink;

namespace {

std::string throwawayScript() {
  const char* script = std::getenv("MEWS_TEST_PG_THROWAWAY");
  if (script == nullptr || *script == '\0')
    throw std::runtime_error("MEWS_TEST_PG_THROWAWAY is not set: run the tests with scripts/test");
  return script;
}

// Runs `command`, returns its stdout; throws when it fails.
std::string run(const std::string& command) {
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::string out;
  char buffer[4096];
  for (std::size_t got = 0; (got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, got);
  const int status = ::pclose(pipe);
  if (status != 0) throw std::runtime_error(fmt::format("'{}' failed ({}): {}", command, status, out));
  return out;
}

// A PostgreSQL server of this test case's own, removed at the end.
class OwnServer {
 public:
  OwnServer() : dir_(fmt::format("/tmp/mews-pg-{:08x}", std::random_device{}())) {
    const std::string out = run(fmt::format("{} start {}", throwawayScript(), dir_));
    std::smatch url;
    if (!std::regex_search(out, url, std::regex(R"(MEWS_TEST_PG_URL=(\S+))")))
      throw std::runtime_error("pg-throwaway printed no URL: " + out);
    // The password from a passfile named in the connection string itself.
    url_ = url[1].str() + "?passfile=" + dir_ + "/pgpass";
  }
  ~OwnServer() { std::system(fmt::format("{} stop {} >/dev/null 2>&1", throwawayScript(), dir_).c_str()); }
  OwnServer(const OwnServer&) = delete;
  OwnServer& operator=(const OwnServer&) = delete;

  [[nodiscard]] const std::string& url() const { return url_; }
  // As the superuser over the server's socket.
  void psqlIn(const std::string& database, const std::string& sql) const {
    run(fmt::format("{} psql {} -d {} -v ON_ERROR_STOP=1 -qc \"{}\" >/dev/null", throwawayScript(), dir_, database,
                    sql));
  }
  void ctl(const std::string& args) const {
    run(fmt::format("{} ctl {} {} >/dev/null", throwawayScript(), dir_, args));
  }
  // As the superuser, in the `postgres` database (so that it works while the
  // journal's database is made read-only).
  void psql(const std::string& sql) const { psqlIn("postgres", sql); }

 private:
  std::string dir_;
  std::string url_;
};

std::string relayIni(const std::string& journal_url, const std::string& sink_url) {
  return fmt::format(
      "[server]\nlisten = 127.0.0.1:0\npath = /webhooks/mews\ntokens = {}\n[admin]\nlisten = 127.0.0.1:0\n"
      "[journal]\nurl = {}\n[target.pms]\nurl = {}\nbackoff = 10ms..50ms\n",
      test::kToken, journal_url, sink_url);
}

// A batch whose one event names `id`: what the sink looks for.
std::string batchNamed(int id) {
  return fmt::format(
      R"({{"EnterpriseId":"e","IntegrationId":"i","Events":[{{"Discriminator":"ReservationUpdated","Value":{{"Id":"batch-{}"}}}}]}})",
      id);
}

std::set<int> delivered(const Sink& sink) {
  std::set<int> ids;
  const std::regex named(R"(batch-(\d+))");
  for (const auto& request : sink.requests())
    for (std::sregex_iterator it(request.body.begin(), request.body.end(), named), end; it != end; ++it)
      ids.insert(std::stoi((*it)[1].str()));
  return ids;
}

// A server, a sink, a relay between them, and batch 1 taken.
struct Served {
  OwnServer server;
  Sink sink;
  std::unique_ptr<relay::Relay> relay = test::startRelay(relayIni(server.url(), sink.url()));
  std::uint16_t port = relay->ingestPort();
  std::uint16_t admin = test::adminPort(*relay);
  Served() {
    if (test::httpRequest(port, "POST", test::kIngestUri, batchNamed(1)).status != 202)
      throw std::runtime_error("batch 1 was not taken");
  }
};

// After the fault: a new batch (3) is taken within the reconnect backoff (at
// most 5 s apart), the relay is ready, and 1 (taken before) and 3 are delivered.
void expectBackByItself(std::uint16_t port, std::uint16_t admin, const Sink& sink) {
  REQUIRE(test::waitUntil(
      [&] { return test::httpRequest(port, "POST", test::kIngestUri, batchNamed(3)).status == 202; }, 20s));
  CHECK(test::httpRequest(admin, "GET", "/readyz").status == 200);
  REQUIRE(test::waitUntil([&] { return delivered(sink).count(1) == 1 && delivered(sink).count(3) == 1; }, 15s));
}

}  // namespace

TEST_CASE("database stopped: 503 with Retry-After and not ready with the reason; back by itself") {
  Served served;
  auto& [server, sink, relay, port, admin] = served;

  server.ctl("stop -m fast -w");
  const auto refused = test::httpRequest(port, "POST", test::kIngestUri, batchNamed(2));
  CHECK(refused.status == 503);
  CHECK(refused.headers.count("Retry-After") == 1);
  CHECK(refused.body.find("journal database") != std::string::npos);
  const auto readiness = test::httpRequest(admin, "GET", "/readyz");
  CHECK(readiness.status == 503);
  CHECK(readiness.body.find("journal database") != std::string::npos);

  server.ctl("start -w");
  expectBackByItself(port, admin, sink);
  CHECK(delivered(sink).count(2) == 0);  // answered 503: not kept, Mews sends it again
}

TEST_CASE("database read-only (as a standby is): 503 and not ready saying so; writable again, back by itself") {
  Served served;
  auto& [server, sink, relay, port, admin] = served;

  // New sessions are read-only; the relay's are ended, so it reconnects into one.
  server.psql("ALTER DATABASE mews SET default_transaction_read_only = on");
  server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'mews'");
  REQUIRE(test::waitUntil(
      [&] {
        const auto refused = test::httpRequest(port, "POST", test::kIngestUri, batchNamed(2));
        return refused.status == 503 && refused.body.find("read-only") != std::string::npos;
      },
      10s));
  const auto readiness = test::httpRequest(admin, "GET", "/readyz");
  CHECK(readiness.status == 503);
  CHECK(readiness.body.find("journal database is read-only") != std::string::npos);

  server.psql("ALTER DATABASE mews RESET default_transaction_read_only");
  expectBackByItself(port, admin, sink);
}

TEST_CASE("restarted under load (pg_ctl restart -m immediate): every acknowledged batch is delivered") {
  OwnServer server;
  Sink sink;
  auto relay = test::startRelay(relayIni(server.url(), sink.url()));
  const auto port = relay->ingestPort();

  std::mutex mutex;
  std::set<int> acked;
  std::atomic<int> unavailable{0};
  std::atomic<int> next{0};
  std::atomic<bool> stop{false};
  // Two senders, as Mews would retry a 503 later with the same body: here a
  // refused batch is simply not acknowledged and must not be counted.
  auto sender = [&] {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!stop && std::chrono::steady_clock::now() < deadline && next < 4000) {
      const int id = next.fetch_add(1);
      try {
        const auto answer = test::httpRequest(port, "POST", test::kIngestUri, batchNamed(id));
        if (answer.status == 202) {
          const std::lock_guard lock(mutex);
          acked.insert(id);
        } else if (answer.status == 503) {
          unavailable.fetch_add(1);
        }
      } catch (const std::exception&) {
        // No answer: not acknowledged either.
      }
    }
  };
  std::thread first(sender);
  std::thread second(sender);
  for (int restart = 0; restart < 3; ++restart) {
    std::this_thread::sleep_for(700ms);
    server.ctl("restart -m immediate -w");
  }
  std::this_thread::sleep_for(1s);
  stop = true;
  first.join();
  second.join();

  MESSAGE(fmt::format("{} acknowledged, {} answered 503", acked.size(), unavailable.load()));
  CHECK(acked.size() > 100);
  CHECK(unavailable.load() > 0);  // the restarts were seen
  std::set<int> missing;
  REQUIRE(test::waitUntil(
      [&] {
        const auto got = delivered(sink);
        missing.clear();
        for (const int id : acked)
          if (got.count(id) == 0) missing.insert(id);
        return missing.empty();
      },
      60s));
  CHECK(missing.empty());
}

TEST_CASE("a server that would not make commits durable is refused at start, saying why") {
  OwnServer server;
  Sink sink;
  SUBCASE("synchronous_commit off for the relay's role") {
    server.psql("ALTER ROLE mews SET synchronous_commit = off");
    CHECK_THROWS_WITH(test::startRelay(relayIni(server.url(), sink.url())),
                      doctest::Contains("synchronous_commit is off"));
  }
  SUBCASE("fsync off on the server") {
    server.psql("ALTER SYSTEM SET fsync = off");
    server.psql("SELECT pg_reload_conf()");
    REQUIRE(test::waitUntil(
        [&] {
          try {
            test::startRelay(relayIni(server.url(), sink.url()));
            return false;
          } catch (const std::exception& e) {
            return std::string(e.what()).find("fsync = off") != std::string::npos;
          }
        },
        5s));
  }
}

TEST_CASE("a second relay (another name) serves the same journal beside the first; another schema is another journal") {
  OwnServer server;
  Sink sink;
  auto relay = test::startRelay(relayIni(server.url(), sink.url()) + "[relay]\nname = first\n");
  auto second = test::startRelay(relayIni(server.url(), sink.url()) + "[relay]\nname = second\n");
  CHECK(test::httpRequest(relay->ingestPort(), "POST", test::kIngestUri, batchNamed(1)).status == 202);
  CHECK(test::httpRequest(second->ingestPort(), "POST", test::kIngestUri, batchNamed(2)).status == 202);
  server.psqlIn("mews", "CREATE SCHEMA other AUTHORIZATION mews");
  auto beside = test::startRelay(relayIni(server.url() + "&options=-csearch_path%3Dother", sink.url()) +
                                 "[relay]\nname = first\n");
  CHECK(test::httpRequest(beside->ingestPort(), "POST", test::kIngestUri, batchNamed(3)).status == 202);
  REQUIRE(sink.waitForRequests(3, 10s));
}
