// More clients than [server] max_connections: idle keep-alive connections give
// their thread to a waiting client, a bounded number of connections wait for
// a thread, and beyond that a client reads a 503 with Retry-After — never a
// reset, never a silent close. The real relay on 127.0.0.1 with
// max_connections = 4 (the smallest allowed) and raw-socket clients.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <vector>

#include "relay/relay.h"
#include "support/raw_client.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::RawClient;

namespace {

constexpr int kMaxConnections = 4;
constexpr int kMaxWaiting = 64;  // max(max_connections, 64), server.cpp

const std::string kBody = R"({"Events":[]})";

std::string post(const std::string& body = kBody) {
  return fmt::format(
      "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
      test::kIngestUri, body.size(), body);
}

std::string relayIni(const std::string& journal, const std::string& request_timeout) {
  return test::relayConfig(
      journal, fmt::format("[server]\nmax_connections = {}\nrequest_timeout = {}\n", kMaxConnections, request_timeout));
}

}  // namespace

TEST_CASE("idle keep-alive connections beyond max_connections do not keep new clients waiting") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  // Poco would close an idle keep-alive connection after 5 s (half of it).
  auto relay = test::startRelay(relayIni(journal, "10s"));
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < kMaxConnections + 2; ++i) {
    CAPTURE(i);
    const auto started = std::chrono::steady_clock::now();
    auto client = std::make_unique<RawClient>(relay->ingestPort());
    client->send(post());
    const std::string answer = client->readResponse(8s);
    CHECK(answer.rfind("HTTP/1.1 202 ", 0) == 0);
    CHECK(std::chrono::steady_clock::now() - started < 1s);
    idle.push_back(std::move(client));  // kept open: an idle keep-alive connection
  }
  // A new client while more idle connections than threads are open.
  const auto started = std::chrono::steady_clock::now();
  RawClient fresh(relay->ingestPort());
  fresh.send(post());
  CHECK(fresh.readResponse(8s).rfind("HTTP/1.1 202 ", 0) == 0);
  CHECK(std::chrono::steady_clock::now() - started < 1s);
  // Once the idle ones are gone, new clients are served as ever.
  idle.clear();
  CHECK(test::httpRequest(relay->ingestPort(), "POST", test::kIngestUri, kBody).status == 202);
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == kMaxConnections + 4);
}

TEST_CASE("every thread busy and the queue full: a 503 with Retry-After, then service when they are done") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(relayIni(journal, "3s"));
  // Each thread held by a body that stops half-way (not idle: it is cut off
  // with a 408 at request_timeout).
  std::vector<std::unique_ptr<RawClient>> stalled;
  const std::string whole = post();
  for (int i = 0; i < kMaxConnections; ++i) {
    stalled.push_back(std::make_unique<RawClient>(relay->ingestPort()));
    stalled.back()->send(whole.substr(0, whole.size() - 4));
  }
  // Whole requests that wait for a thread.
  std::vector<std::unique_ptr<RawClient>> waiting;
  for (int i = 0; i < kMaxWaiting; ++i) {
    waiting.push_back(std::make_unique<RawClient>(relay->ingestPort()));
    waiting.back()->send(whole);
  }
  // One more: refused at once, with an answer it can read.
  const auto started = std::chrono::steady_clock::now();
  RawClient refused(relay->ingestPort());
  refused.send(whole);
  const std::string answer = refused.readAll(5s);
  CAPTURE(answer);
  CHECK(answer.rfind("HTTP/1.1 503 ", 0) == 0);
  CHECK(answer.find("\r\nRetry-After: 1\r\n") != std::string::npos);
  CHECK(answer.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(answer.find(R"({"error":"too many connections; retry later"})") != std::string::npos);
  CHECK(refused.end() == RawClient::End::Eof);
  CHECK(std::chrono::steady_clock::now() - started < 1s);

  // The stalled bodies get their 408; every waiting request is then served.
  for (auto& client : stalled) CHECK(client->readAll(6s).rfind("HTTP/1.1 408 ", 0) == 0);
  int accepted = 0;
  for (auto& client : waiting)
    if (client->readResponse(10s).rfind("HTTP/1.1 202 ", 0) == 0) ++accepted;
  CHECK(accepted == kMaxWaiting);
  waiting.clear();
  CHECK(test::httpRequest(relay->ingestPort(), "POST", test::kIngestUri, kBody).status == 202);
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == kMaxWaiting + 1);
  CHECK(test::waitUntil(
      [&]() -> bool {
        const auto page = test::httpRequest(test::adminPort(*relay), "GET", "/metrics");
        return page.body.find("mews_relay_requests_rejected_total{reason=\"over_capacity\"} 1\n") != std::string::npos;
      },
      3s));
}
