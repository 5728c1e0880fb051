// Connections that hold a listener without sending a request (issue 20, items
// 4-6): a head that stalls gets its 408, counted and logged; hundreds of
// silent, one-byte, trickling and token-less connections do not make a real
// post wait; and trickling connections to the admin listener do not keep
// `/readyz` or the operator's API from answering. The real relay on 127.0.0.1
// with raw-socket clients; every loop bounded in count and time.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "auth/password.h"
#include "relay/relay.h"
#include "support/raw_client.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::RawClient;

namespace {

const std::string kBody = R"({"Events":[]})";

std::string post(const std::string& uri = test::kIngestUri) {
  return fmt::format(
      "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}", uri,
      kBody.size(), kBody);
}

bool metricSays(const relay::Relay& relay, const std::string& line) {
  return test::waitUntil(
      [&]() -> bool {
        return test::httpRequest(test::adminPort(relay), "GET", "/metrics").body.find(line + "\n") != std::string::npos;
      },
      3s);
}

// Sends one byte to each client every `period` until stopped: heads (or
// bodies) that trickle. Bounded by the test's own lifetime.
class Trickler {
 public:
  Trickler(std::vector<std::unique_ptr<RawClient>>& clients, std::chrono::milliseconds period)
      : thread_([&clients, period, this] {
          while (!stop_.load()) {
            for (auto& client : clients) client->send("X");
            for (auto waited = 0ms; waited < period && !stop_.load(); waited += 10ms) std::this_thread::sleep_for(10ms);
          }
        }) {}
  ~Trickler() {
    stop_.store(true);
    thread_.join();
  }
  Trickler(const Trickler&) = delete;
  Trickler& operator=(const Trickler&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("a head that stalls: 408, closed, counted as a timeout") {
  test::TempDir dir;
  auto relay = test::startRelay(test::relayConfig(dir.file("relay.db"), "[server]\nrequest_timeout = 2s\n"));
  const auto started = std::chrono::steady_clock::now();
  RawClient client(relay->ingestPort());
  client.send(fmt::format("POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le", test::kIngestUri));
  const std::string answer = client.readAll(6s);
  CAPTURE(answer);
  CHECK(answer.rfind("HTTP/1.1 408 ", 0) == 0);
  CHECK(answer.find(R"({"error":"request not received in time"})") != std::string::npos);
  CHECK(client.end() == RawClient::End::Eof);
  CHECK(std::chrono::steady_clock::now() - started < 3500ms);
  CHECK(metricSays(*relay, "mews_relay_requests_rejected_total{reason=\"timeout\"} 1"));
}

TEST_CASE("300 hostile connections (silent, one byte, trickling heads and bodies, no token): a real post within 1 s") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  // The default max_connections (256): fewer threads than hostile connections.
  auto relay = test::startRelay(test::relayConfig(journal));
  const std::uint16_t port = relay->ingestPort();
  std::vector<std::unique_ptr<RawClient>> silent;
  std::vector<std::unique_ptr<RawClient>> trickling;
  for (int i = 0; i < 40; ++i) silent.push_back(std::make_unique<RawClient>(port));
  for (int i = 0; i < 120; ++i) {
    silent.push_back(std::make_unique<RawClient>(port));
    silent.back()->send("P");
  }
  for (int i = 0; i < 110; ++i) {
    trickling.push_back(std::make_unique<RawClient>(port));
    trickling.back()->send("POST /webhooks/mews?token=");
  }
  // A whole head without the token, then a body that trickles.
  for (int i = 0; i < 30; ++i) {
    trickling.push_back(std::make_unique<RawClient>(port));
    trickling.back()->send("POST /webhooks/mews HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n{");
  }
  const Trickler trickler(trickling, 200ms);
  std::this_thread::sleep_for(300ms);  // every hostile connection accepted and under way
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    const auto started = std::chrono::steady_clock::now();
    RawClient mews(port);
    mews.send(post());
    CHECK(mews.readResponse(5s).rfind("HTTP/1.1 202 ", 0) == 0);
    CHECK(std::chrono::steady_clock::now() - started < 1s);
  }
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 3);
}

TEST_CASE("connections trickling into the admin listener: /readyz and the operator's API still answer within 1 s") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(test::relayConfig(journal));
  const std::uint16_t admin = test::adminPort(*relay);
  std::string credential = test::readFile(journal + ".admin");
  while (!credential.empty() && credential.back() == '\n') credential.pop_back();
  std::vector<std::unique_ptr<RawClient>> trickling;
  for (int i = 0; i < 20; ++i) {
    trickling.push_back(std::make_unique<RawClient>(admin));
    trickling.back()->send("GET /readyz HTTP/1.1\r\n");
  }
  const Trickler trickler(trickling, 1000ms);
  std::this_thread::sleep_for(300ms);
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    auto started = std::chrono::steady_clock::now();
    const auto ready = test::adminRequest(admin, "GET", "/readyz", {{"Host", fmt::format("127.0.0.1:{}", admin)}});
    CHECK(ready.status == 200);
    CHECK(std::chrono::steady_clock::now() - started < 1s);
    // What `mews-relay dlq purge --dry-run` sends.
    started = std::chrono::steady_clock::now();
    const auto purge =
        test::adminRequest(admin, "POST", "/admin/purge?dry_run=1",
                           {{"Host", fmt::format("127.0.0.1:{}", admin)}, {"Authorization", "Bearer " + credential}});
    CHECK(purge.status == 200);
    CHECK(std::chrono::steady_clock::now() - started < 1s);
  }
}

TEST_CASE("whole heads with bodies that trickle into the admin listener: /readyz still answers within 1 s") {
  test::TempDir dir;
  // The console on: its sign-in form reads the body it is sent.
  auto relay = test::startRelay(test::relayConfig(
      dir.file("relay.db"), "[console]\npassword = " + std::string(auth::kMinPasswordLength, 'p') + "\n"));
  const std::uint16_t admin = test::adminPort(*relay);
  // More than the listener's 4 threads: each a whole head, then its body a byte a second.
  std::vector<std::unique_ptr<RawClient>> trickling;
  for (int i = 0; i < 8; ++i) {
    trickling.push_back(std::make_unique<RawClient>(admin));
    trickling.back()->send(
        fmt::format("POST /console/sign-in HTTP/1.1\r\nHost: 127.0.0.1:{0}\r\nOrigin: http://127.0.0.1:{0}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\n",
                    admin));
  }
  const Trickler trickler(trickling, 1000ms);
  std::this_thread::sleep_for(300ms);
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    const auto started = std::chrono::steady_clock::now();
    const auto ready = test::adminRequest(admin, "GET", "/readyz", {{"Host", fmt::format("127.0.0.1:{}", admin)}});
    CHECK(ready.status == 200);
    CHECK(std::chrono::steady_clock::now() - started < 1s);
    std::this_thread::sleep_for(500ms);
  }
}
