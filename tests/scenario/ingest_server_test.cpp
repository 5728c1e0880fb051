// Scenario tests: the real relay on 127.0.0.1 port 0 with a temporary journal,
// real HTTP requests through Poco's client, and the built binary as a process.
#include <doctest/doctest.h>

#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <future>
#include <regex>
#include <set>
#include <thread>

#include "config/config.h"
#include "journal/journal.h"
#include "relay/relay.h"
#include "support/test_support.h"

using namespace mews;
using test::httpRequest;

namespace {

const std::string& kUri = test::kIngestUri;
using test::adminPort;
using test::startRelay;

std::int64_t batchIdOf(const std::string& body) {
  std::smatch match;
  REQUIRE(std::regex_match(body, match, std::regex(R"(\{"batch":(\d+),"events":(\d+)\})")));
  return std::stoll(match[1]);
}

std::string storedBody(const std::string& journal_path, std::int64_t id) {
  journal::Journal journal(journal_path, {0, true});
  journal::Statement select(journal.db(), "SELECT body FROM batches WHERE id = ?");
  select.bind(1, id);
  return select.step() ? select.columnText(0) : std::string("<missing>");
}

// Errors are one line of JSON with an "error" member.
void checkJsonReason(const test::HttpResult& result, const std::string& fragment) {
  CAPTURE(result.body);
  CHECK(result.body.find("{\"error\":\"") == 0);
  CHECK(result.body.find(fragment) != std::string::npos);
  CHECK(result.body.find('\n') == std::string::npos);
  CHECK(result.headers.at("Content-Type") == "application/json");
}

}  // namespace

TEST_CASE("202 after commit for each kind, bytes stored as received") {
  test::TempDir dir;
  const std::string journal_path = dir.file("relay.db");
  auto relay = startRelay(test::relayConfig(journal_path));
  const auto port = relay->ingestPort();

  struct Case {
    std::string body;
    std::string kind;
    int events;
  };
  for (const Case& c : std::initializer_list<Case>{{test::sample("general.json"), "general", 5},
                                                   {test::sample("integration.json"), "integration", 1},
                                                   {R"({"SomethingElse":[1,2,3]})", "unknown", 0},
                                                   {test::generalBatch(500), "general", 500}}) {
    const auto result = httpRequest(port, "POST", kUri, c.body);
    REQUIRE(result.status == 202);
    const auto id = batchIdOf(result.body);
    CHECK(result.body == fmt::format(R"({{"batch":{},"events":{}}})", id, c.events));
    CHECK(storedBody(journal_path, id) == c.body);
    journal::Journal journal(journal_path, {0, true});
    journal::Statement kind(journal.db(), "SELECT kind, event_count FROM batches WHERE id = ?");
    kind.bind(1, id);
    REQUIRE(kind.step());
    CHECK(kind.columnText(0) == c.kind);
    CHECK(kind.columnInt(1) == c.events);
  }
}

TEST_CASE("every refusal has its status, a one-line JSON reason, and stores nothing") {
  test::TempDir dir;
  const std::string journal_path = dir.file("relay.db");
  auto relay = startRelay(test::relayConfig(journal_path));
  const auto port = relay->ingestPort();
  const std::string general = test::sample("general.json");

  auto r = httpRequest(port, "POST", "/webhooks/mews", general);
  CHECK(r.status == 401);
  checkJsonReason(r, "token missing");
  r = httpRequest(port, "POST", "/webhooks/mews?token=wrong-token-0123456789", general);
  CHECK(r.status == 401);
  checkJsonReason(r, "token not accepted");
  r = httpRequest(port, "POST", "/webhooks/mews?token=", general);
  CHECK(r.status == 401);
  r = httpRequest(port, "GET", kUri);
  CHECK(r.status == 405);
  CHECK(r.headers.at("Allow") == "POST");
  checkJsonReason(r, "only POST");
  r = httpRequest(port, "PUT", kUri, general);
  CHECK(r.status == 405);
  r = httpRequest(port, "POST", "/other?token=" + std::string(test::kToken), general);
  CHECK(r.status == 404);
  r = httpRequest(port, "POST", kUri, "[1,2]");
  CHECK(r.status == 400);
  checkJsonReason(r, "not a JSON object");
  r = httpRequest(port, "POST", kUri, R"({"Events":[)");
  CHECK(r.status == 400);
  checkJsonReason(r, "not valid JSON");
  r = httpRequest(port, "POST", kUri, "");
  CHECK(r.status == 400);
  r = httpRequest(port, "POST", kUri, "{\"a\":\"\xff\"}");
  CHECK(r.status == 400);
  checkJsonReason(r, "UTF-8");

  const std::string too_big = "{\"Pad\":\"" + std::string(70 * 1024, 'x') + "\"}";  // max_body is 64KiB
  r = httpRequest(port, "POST", kUri, too_big);
  CHECK(r.status == 413);
  checkJsonReason(r, "max_body");
  r = httpRequest(port, "POST", kUri, too_big, /*chunked=*/true);
  CHECK(r.status == 413);
  // A wrong token is refused before the size is even looked at.
  r = httpRequest(port, "POST", "/webhooks/mews?token=nope", too_big);
  CHECK(r.status == 401);

  journal::Journal journal(journal_path, {0, true});
  CHECK(journal.count("batches") == 0);

  // Chunked within the limit is fine, and any content type is accepted.
  r = httpRequest(port, "POST", kUri, general, /*chunked=*/true);
  CHECK(r.status == 202);
  CHECK(journal.count("batches") == 1);
}

TEST_CASE("413 is answered from Content-Length before the body is sent") {
  test::TempDir dir;
  auto relay = startRelay(test::relayConfig(dir.file("relay.db")));
  Poco::Net::StreamSocket socket(Poco::Net::SocketAddress("127.0.0.1", relay->ingestPort()));
  socket.setReceiveTimeout(Poco::Timespan(5, 0));
  const std::string head = "POST " + kUri + " HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n";
  socket.sendBytes(head.data(), static_cast<int>(head.size()));
  char buffer[512] = {};
  const int got = socket.receiveBytes(buffer, sizeof buffer - 1);
  REQUIRE(got > 0);
  CHECK(std::string(buffer).rfind("HTTP/1.1 413", 0) == 0);
}

TEST_CASE("200 concurrent posts from 16 threads: every ack is in the journal") {
  test::TempDir dir;
  const std::string journal_path = dir.file("relay.db");
  auto relay = startRelay(test::relayConfig(journal_path));
  const auto port = relay->ingestPort();
  constexpr int kThreads = 16;
  constexpr int kPosts = 200;
  std::atomic<int> next{0};
  std::mutex mutex;
  std::map<std::int64_t, std::string> acked;  // batch id -> body sent
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = next++; i < kPosts; i = next++) {
        const std::string body = test::generalBatch(static_cast<std::size_t>(1 + i % 7), fmt::format("Event{}", i));
        try {
          const auto result = httpRequest(port, "POST", kUri, body);
          if (result.status != 202) {
            failures++;
            continue;
          }
          const std::lock_guard lock(mutex);
          acked[batchIdOf(result.body)] = body;
        } catch (...) {
          failures++;
        }
      }
    });
  for (auto& thread : threads) thread.join();
  CHECK(failures.load() == 0);
  CHECK(acked.size() == kPosts);
  for (const auto& [id, body] : acked) CHECK(storedBody(journal_path, id) == body);
  const auto stats = relay->writer().stats();
  MESSAGE("commits: " << stats.commits << " for " << stats.jobs_committed << " batches");
}

TEST_CASE("a restart on the same journal keeps everything and continues") {
  test::TempDir dir;
  const std::string journal_path = dir.file("relay.db");
  std::set<std::int64_t> ids;
  for (int round = 0; round < 3; ++round) {
    auto relay = startRelay(test::relayConfig(journal_path));
    for (int i = 0; i < 5; ++i) {
      const auto result = httpRequest(relay->ingestPort(), "POST", kUri, test::sample("general.json"));
      REQUIRE(result.status == 202);
      ids.insert(batchIdOf(result.body));
    }
    relay->stop();
  }
  CHECK(ids.size() == 15);
  journal::Journal journal(journal_path, {0, true});
  CHECK(journal.count("batches") == 15);
  CHECK(journal.count("events") == 75);
}

TEST_CASE("a full journal answers 503 with Retry-After and stores nothing half-way") {
  test::TempDir dir;
  const std::string journal_path = dir.file("relay.db");
  auto relay = startRelay(test::relayConfig(journal_path, "") + "[journal]\nmax_size = 1MiB\n");
  const std::string big = "{\"Pad\":\"" + std::string(60 * 1024, 'x') + "\"}";
  int accepted = 0;
  test::HttpResult result;
  for (int i = 0; i < 40; ++i) {
    result = httpRequest(relay->ingestPort(), "POST", kUri, big);
    if (result.status != 202) break;
    ++accepted;
  }
  REQUIRE(result.status == 503);
  CHECK(result.headers.at("Retry-After") == "5");
  checkJsonReason(result, "full");
  CHECK(accepted > 0);
  relay->stop();
  journal::Journal journal(journal_path, {0, true});
  CHECK(journal.count("batches") == accepted);
  CHECK(journal.db().queryInt("SELECT count(*) FROM deliveries") == accepted);
  journal::Statement integrity(journal.db(), "PRAGMA integrity_check");
  REQUIRE(integrity.step());
  CHECK(integrity.columnText(0) == "ok");
}

TEST_CASE("shutdown lets a request in progress finish and commit") {
  test::TempDir dir;
  const std::string journal_path = dir.file("relay.db");
  auto relay = startRelay(test::relayConfig(journal_path));
  const std::string body = test::sample("general.json");
  Poco::Net::StreamSocket socket(Poco::Net::SocketAddress("127.0.0.1", relay->ingestPort()));
  socket.setReceiveTimeout(Poco::Timespan(10, 0));
  const std::string head = fmt::format("POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", kUri, body.size());
  socket.sendBytes(head.data(), static_cast<int>(head.size()));
  socket.sendBytes(body.data(), 10);  // the handler is now reading the body
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto stopping = std::async(std::launch::async, [&] { relay->stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(stopping.wait_for(std::chrono::milliseconds(0)) == std::future_status::timeout);
  socket.sendBytes(body.data() + 10, static_cast<int>(body.size() - 10));
  std::string response;
  char buffer[1024];
  for (int got; (got = socket.receiveBytes(buffer, sizeof buffer)) > 0;)
    response.append(buffer, static_cast<std::size_t>(got));
  stopping.get();
  CHECK(response.rfind("HTTP/1.1 202", 0) == 0);
  journal::Journal journal(journal_path, {0, true});
  CHECK(journal.count("batches") == 1);
}

TEST_CASE("the binary serves, never logs the token, and exits 0 on SIGTERM") {
  test::TempDir dir;
  const std::string secret_token = "process-token-never-logged-42";
  test::writeFile(
      dir.path() / "relay.ini",
      fmt::format("[server]\nlisten = 127.0.0.1:0\ntokens = ${{system.env.MEWS_RELAY_TOKEN}}\n"
                  "[admin]\nlisten = 127.0.0.1:0\n[journal]\npath = {}\nmin_free = 0B\n"
                  "[target.pms]\nurl = http://127.0.0.1:9/x\nheader.Authorization = Bearer hidden-header-value\n",
                  dir.file("data/relay.db")));
  Poco::Pipe err_pipe;
  Poco::Process::Env env{{"MEWS_RELAY_TOKEN", secret_token}};
  auto handle = Poco::Process::launch(MEWS_RELAY_BINARY, {"-c", dir.file("relay.ini"), "serve"}, dir.path().string(),
                                      nullptr, nullptr, &err_pipe, env);
  Poco::PipeInputStream err(err_pipe);
  std::string log;
  std::string line;
  int port = 0;
  while (port == 0 && std::getline(err, line)) {
    log += line + "\n";
    std::smatch match;
    if (std::regex_search(line, match, std::regex(R"( port=(\d+))"))) port = std::stoi(match[1]);
  }
  REQUIRE(port > 0);
  const auto port16 = static_cast<std::uint16_t>(port);
  const auto ok = httpRequest(port16, "POST", "/webhooks/mews?token=" + secret_token, test::sample("general.json"));
  CHECK(ok.status == 202);
  CHECK(httpRequest(port16, "POST", "/webhooks/mews?token=" + secret_token + "x", "{}").status == 401);
  CHECK(httpRequest(port16, "GET", "/webhooks/mews?token=" + secret_token).status == 405);
  Poco::Process::requestTermination(handle.id());
  while (std::getline(err, line)) log += line + "\n";
  CHECK(handle.wait() == 0);
  CAPTURE(log);
  CHECK(log.find("batch accepted") != std::string::npos);
  CHECK(log.find("stopped") != std::string::npos);
  CHECK(log.find(secret_token) == std::string::npos);
  CHECK(log.find("token=") == std::string::npos);
  CHECK(log.find("hidden-header-value") == std::string::npos);
}

TEST_CASE("the binary refuses a bad config with exit 1, naming file and key") {
  test::TempDir dir;
  test::writeFile(dir.path() / "bad.ini", "[server]\ntokens = aaaaaaaaaaaaaaaaaaaa\nmax_body = lots\n");
  Poco::Pipe err_pipe;
  auto handle = Poco::Process::launch(MEWS_RELAY_BINARY, {"-c", dir.file("bad.ini"), "serve"}, dir.path().string(),
                                      nullptr, nullptr, &err_pipe);
  Poco::PipeInputStream err(err_pipe);
  const std::string text(std::istreambuf_iterator<char>(err), {});
  CHECK(handle.wait() == 1);
  CHECK(text.find(dir.file("bad.ini") + ": [server] max_body: 'lots'") != std::string::npos);
  CHECK(text.find("no target configured") != std::string::npos);

  Poco::Pipe usage_pipe;
  auto usage =
      Poco::Process::launch(MEWS_RELAY_BINARY, {"--bogus"}, dir.path().string(), nullptr, nullptr, &usage_pipe);
  Poco::PipeInputStream usage_err(usage_pipe);
  const std::string usage_text(std::istreambuf_iterator<char>(usage_err), {});
  CHECK(usage.wait() == 2);
  CHECK(usage_text.find("unknown option '--bogus'") != std::string::npos);
}

TEST_CASE("below the free-disk watermark the relay still starts, answers 503 and is not ready") {
  test::TempDir dir;
  // More free space than this machine's disk has: the watermark is crossed from the start.
  auto relay = startRelay(test::relayConfig(dir.file("relay.db")) + "[journal]\nmin_free = 1000GiB\n");
  auto r = httpRequest(relay->ingestPort(), "POST", kUri, test::sample("general.json"));
  CHECK(r.status == 503);
  checkJsonReason(r, "min_free");
  const auto admin_port = adminPort(*relay);
  CHECK(httpRequest(admin_port, "GET", "/healthz").status == 200);
  const auto ready = httpRequest(admin_port, "GET", "/readyz");
  CHECK(ready.status == 503);
  CHECK(ready.body.find("min_free") != std::string::npos);
  relay->stop();
  journal::Journal journal(dir.file("relay.db"), {0, true});
  CHECK(journal.count("batches") == 0);
}

TEST_CASE("a second relay cannot bind a port the first one listens on (no SO_REUSEPORT)") {
  test::TempDir dir;
  auto first = test::startRelay(test::relayConfig(dir.file("first.db")));
  // The same ingest port, a free admin port: refused at start.
  const std::string same_ingest = test::relayConfig(dir.file("second.db"));
  std::string ini = same_ingest;
  ini.replace(ini.find("listen = 127.0.0.1:0"), 20, fmt::format("listen = 127.0.0.1:{}", first->ingestPort()));
  CHECK_THROWS(test::startRelay(ini));
  // The same admin port, a free ingest port.
  ini = same_ingest;
  const auto admin = ini.find("listen = 127.0.0.1:0", ini.find("[admin]"));
  ini.replace(admin, 20, fmt::format("listen = 127.0.0.1:{}", test::adminPort(*first)));
  CHECK_THROWS(test::startRelay(ini));
  // The first one still gets every post.
  CHECK(test::httpRequest(first->ingestPort(), "POST", test::kIngestUri, test::generalBatch(1)).status == 202);
}
