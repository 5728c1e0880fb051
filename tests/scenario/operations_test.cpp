// Running it in production: /metrics validated by promtool, the public
// listener's defences against slow and oversized clients, and TLS. The real
// relay on loopback port 0; clients are raw sockets where the test needs to
// misbehave on purpose, Poco's HTTP(S) client otherwise.
#include <doctest/doctest.h>

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <regex>
#include <sstream>
#include <thread>

#include "config/config.h"
#include "relay/relay.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
using test::httpRequest;

namespace {

const std::string& kUri = test::kIngestUri;
using test::adminPort;
using test::startRelay;

// Runs a shell command; its exit status and what it printed (stdout and stderr).
std::pair<int, std::string> shell(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  while (const std::size_t got = std::fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, got);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// The lines of `openssl s_client` output that say how the handshake ended.
std::string handshakeSummary(const std::string& output) {
  std::string summary;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);)
    if (line.find("error") != std::string::npos || line.find("Protocol  :") != std::string::npos ||
        line.find("Cipher is") != std::string::npos)
      summary += line + "\n";
  return summary;
}

// A client that misbehaves on purpose: raw bytes, paced by the test.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    socket_.connect(Poco::Net::SocketAddress("127.0.0.1", port), Poco::Timespan(5, 0));
    socket_.setReceiveTimeout(Poco::Timespan(10, 0));
  }
  // False once the server has closed (or reset) the connection.
  bool send(std::string_view bytes) {
    try {
      socket_.sendBytes(bytes.data(), static_cast<int>(bytes.size()));
      return true;
    } catch (const Poco::Exception&) {
      return false;
    }
  }
  // True when the server has sent something (or closed) within `wait`: a client
  // that reads while it sends, as curl does, sees the answer before any reset.
  bool answered(std::chrono::milliseconds wait) {
    return socket_.poll(Poco::Timespan(std::chrono::duration_cast<std::chrono::microseconds>(wait).count()),
                        Poco::Net::Socket::SELECT_READ);
  }
  // Everything until the server closes (or resets), or 10 s.
  std::string readAll() {
    std::string out;
    char buffer[4096];
    try {
      while (const int got = socket_.receiveBytes(buffer, sizeof buffer)) {
        if (got < 0) break;
        out.append(buffer, static_cast<std::size_t>(got));
      }
    } catch (const Poco::Exception&) {
      // reset or timeout: what arrived is the answer
    }
    return out;
  }

 private:
  Poco::Net::StreamSocket socket_;
};

std::string head(std::size_t content_length) {
  return fmt::format(
      "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", kUri,
      content_length);
}

}  // namespace

TEST_CASE("/metrics after traffic: promtool accepts it, the figures are there, no secret is") {
  test::TempDir dir;
  test::Sink sink;
  const std::string ini = fmt::format(
      "[server]\nlisten = 127.0.0.1:0\ntokens = {}, ops-secret-token-3141592653\n[admin]\nlisten = 127.0.0.1:0\n"
      "[journal]\npath = {}\nmin_free = 0B\n"
      "[target.pms]\nurl = {}\nheader.Authorization = Bearer ops-header-credential-271828\n"
      "secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
      test::kToken, dir.file("relay.db"), sink.url());
  auto relay = startRelay(ini);
  REQUIRE(httpRequest(relay->ingestPort(), "POST", kUri, test::sample("general.json")).status == 202);
  REQUIRE(httpRequest(relay->ingestPort(), "POST", kUri, test::sample("integration.json")).status == 202);
  REQUIRE(httpRequest(relay->ingestPort(), "POST", "/webhooks/mews?token=wrong-token-0123456789", "{}").status == 401);
  REQUIRE(httpRequest(relay->ingestPort(), "POST", kUri, "[1]").status == 400);
  REQUIRE(sink.waitForRequests(2, 5s));
  // An outcome is counted once its record committed, which a worker does not
  // wait for: the page is read again until both deliveries are recorded.
  test::HttpResult page;
  REQUIRE(test::waitUntil(
      [&] {
        page = httpRequest(adminPort(*relay), "GET", "/metrics");
        return page.body.find("mews_relay_deliveries_total{target=\"pms\",outcome=\"delivered\"} 2\n") !=
                   std::string::npos &&
               page.body.find("mews_relay_queue_depth{target=\"pms\"} 0\n") != std::string::npos;
      },
      5s));
  REQUIRE(page.status == 200);
  CHECK(page.headers.at("Content-Type").find("text/plain; version=0.0.4") == 0);
  test::writeFile(dir.path() / "metrics.txt", page.body);
  const auto [exit_code, output] = shell(std::string(MEWS_PROMTOOL) + " check metrics < " + dir.file("metrics.txt"));
  INFO("promtool: " << output);
  CHECK(exit_code == 0);

  const std::string& text = page.body;
  CHECK(text.find("mews_relay_batches_received_total{kind=\"general\"} 1\n") != std::string::npos);
  CHECK(text.find("mews_relay_batches_received_total{kind=\"integration\"} 1\n") != std::string::npos);
  CHECK(text.find("mews_relay_events_received_total{kind=\"general\"} 5\n") != std::string::npos);
  CHECK(text.find("mews_relay_requests_rejected_total{reason=\"unauthorized\"} 1\n") != std::string::npos);
  CHECK(text.find("mews_relay_requests_rejected_total{reason=\"malformed\"} 1\n") != std::string::npos);
  CHECK(text.find("mews_relay_deliveries_total{target=\"pms\",outcome=\"delivered\"} 2\n") != std::string::npos);
  CHECK(text.find("mews_relay_delivery_attempt_duration_seconds_count{target=\"pms\"} 2\n") != std::string::npos);
  CHECK(text.find("mews_relay_queue_depth{target=\"pms\"} 0\n") != std::string::npos);
  CHECK(text.find("mews_relay_dead_letters{target=\"pms\"} 0\n") != std::string::npos);
  CHECK(text.find("mews_relay_circuit_state{target=\"pms\",state=\"closed\"} 1\n") != std::string::npos);
  CHECK(text.find("mews_relay_journal_readable 1\n") != std::string::npos);
  CHECK(std::regex_search(text, std::regex(R"(\nmews_relay_journal_commit_duration_seconds_count [1-9]\d*\n)")));
  CHECK(std::regex_search(text, std::regex(R"(\nmews_relay_journal_size_bytes [1-9]\d*\n)")));
  for (const char* secret : {test::kToken, "ops-secret-token-3141592653", "ops-header-credential-271828",
                             "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "wrong-token"})
    CHECK(text.find(secret) == std::string::npos);

  // With free disk above min_free (0B here) the relay is ready.
  CHECK(httpRequest(adminPort(*relay), "GET", "/readyz").status == 200);
}

TEST_CASE("a body sent at 1 byte/s gets 408 and is cut off while a normal client is served") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  auto relay = startRelay(test::relayConfig(journal, "[server]\nrequest_timeout = 5s\nmin_body_rate = 100B\n"));
  const std::string body = test::sample("general.json");

  std::string slow_answer;
  std::chrono::milliseconds slow_took{};
  std::thread slow([&] {
    const auto started = std::chrono::steady_clock::now();
    RawClient client(relay->ingestPort());
    client.send(head(body.size()));
    // One byte a second until the relay closes; at most 8 (it answers after ~2).
    for (std::size_t i = 0; i < 8 && client.send(body.substr(i, 1)) && !client.answered(1s); ++i) {
    }
    slow_answer = client.readAll();
    slow_took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  });
  // Meanwhile the normal client is served at its normal pace.
  std::this_thread::sleep_for(300ms);
  int accepted = 0;
  for (int i = 0; i < 10; ++i) {
    const auto started = std::chrono::steady_clock::now();
    if (httpRequest(relay->ingestPort(), "POST", kUri, body).status == 202) ++accepted;
    CHECK(std::chrono::steady_clock::now() - started < 1s);
  }
  slow.join();
  CHECK(accepted == 10);
  CHECK(slow_answer.find("HTTP/1.1 408 ") == 0);
  CHECK(slow_answer.find(R"({"error":"body not received in time)") != std::string::npos);
  // Cut off by the rate (after 1 s of body, 100 B/s), well before request_timeout (5 s).
  CHECK(slow_took < 3500ms);
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 10);
}

TEST_CASE("a request head that trickles in, or a body that stops, gets 408 at request_timeout") {
  test::TempDir dir;
  auto relay = startRelay(test::relayConfig(dir.file("relay.db"), "[server]\nrequest_timeout = 2s\n"));

  const auto started = std::chrono::steady_clock::now();
  RawClient loris(relay->ingestPort());
  const std::string partial = fmt::format("POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\n", kUri);
  loris.send(partial);
  for (int i = 0; i < 10 && loris.send("X-Slow: 1\r\n") && !loris.answered(400ms); ++i) {
  }
  const std::string loris_answer = loris.readAll();
  const auto loris_took = std::chrono::steady_clock::now() - started;
  CHECK(loris_answer.find("HTTP/1.1 408") == 0);
  CHECK(loris_took >= 2s);
  CHECK(loris_took < 4s);

  RawClient stalled(relay->ingestPort());
  stalled.send(head(100) + "{\"Events\"");
  const std::string stalled_answer = stalled.readAll();
  CHECK(stalled_answer.find("HTTP/1.1 408") == 0);

  const auto page = httpRequest(adminPort(*relay), "GET", "/metrics");
  CHECK(page.body.find("mews_relay_requests_rejected_total{reason=\"timeout\"} 2\n") != std::string::npos);
}

TEST_CASE("200 header fields are refused with 400, nothing stored") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  auto relay = startRelay(test::relayConfig(journal));
  RawClient client(relay->ingestPort());
  std::string request = fmt::format("POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\n", kUri);
  for (int i = 0; i < 200; ++i) request += fmt::format("X-Field-{}: {}\r\n", i, i);
  request += "Content-Length: 2\r\n\r\n{}";
  client.send(request);
  const std::string answer = client.readAll();
  const bool refused = answer.find("HTTP/1.1 400") == 0 || answer.find("HTTP/1.1 431") == 0;
  CHECK(refused);
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 0);

  RawClient long_value(relay->ingestPort());
  long_value.send(
      fmt::format("POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: {}\r\n\r\n", kUri, std::string(20000, 'a')));
  const std::string long_answer = long_value.readAll();
  const bool long_refused = long_answer.find("HTTP/1.1 400") == 0 || long_answer.find("HTTP/1.1 431") == 0;
  CHECK(long_refused);
}

TEST_CASE("TLS: an HTTPS post with the self-signed certificate is accepted; plain HTTP on that port is not") {
  test::TempDir dir;
  const std::string cert = dir.file("cert.pem");
  const std::string key = dir.file("key.pem");
  const auto [made, openssl_output] = shell(fmt::format(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost -keyout {} -out {}",
      key, cert));
  INFO(openssl_output);
  REQUIRE(made == 0);
  const std::string journal = dir.file("relay.db");
  auto relay = startRelay(
      test::relayConfig(journal, fmt::format("[server]\ntls_certificate = {}\ntls_private_key = {}\n", cert, key)));

  // The client trusts exactly this certificate, and checks the host name.
  Poco::Net::Context::Ptr context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", cert,
                                                           Poco::Net::Context::VERIFY_RELAXED, 9, false);
  Poco::Net::HTTPSClientSession session("localhost", relay->ingestPort(), context);
  session.setTimeout(Poco::Timespan(10, 0));
  const std::string body = test::sample("general.json");
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, kUri, Poco::Net::HTTPMessage::HTTP_1_1);
  request.setContentType("application/json");
  request.setContentLength64(static_cast<Poco::Int64>(body.size()));
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  std::string answer(std::istreambuf_iterator<char>(session.receiveResponse(response)), {});
  CHECK(response.getStatus() == Poco::Net::HTTPResponse::HTTP_ACCEPTED);
  CHECK(answer.find("\"events\":5") != std::string::npos);
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 1);

  RawClient plain(relay->ingestPort());
  plain.send(head(body.size()) + body);
  const std::string plain_answer = plain.readAll();
  CHECK(plain_answer.find("HTTP/") == std::string::npos);
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 1);

  // TLS 1.1 is refused by the server (TLS 1.2 at least). Debian's OpenSSL 3
  // client, at its default security level, gives up on TLS 1.1 by itself (it
  // will not verify the SHA-1 signature TLS 1.1 uses), so the probe runs at
  // level 0 and the refusal must be the server's: its "protocol version" alert.
  // The same probe with TLS 1.2 connects, so the probe itself works.
  const auto probe = [&](const char* version) {
    return shell(
        fmt::format("echo | timeout 10 openssl s_client -connect 127.0.0.1:{} {} -cipher 'DEFAULT:@SECLEVEL=0' "
                    "-CAfile {} -verify_return_error",
                    relay->ingestPort(), version, cert));
  };
  const auto [tls12, tls12_output] = probe("-tls1_2");
  INFO("TLS 1.2 probe: " << handshakeSummary(tls12_output));
  CHECK(tls12 == 0);
  const auto [tls11, tls11_output] = probe("-tls1_1");
  INFO("TLS 1.1 probe: " << handshakeSummary(tls11_output));
  CHECK(tls11 != 0);
  CHECK(tls11_output.find("alert protocol version") != std::string::npos);
  CHECK(tls11_output.find("no protocols available") == std::string::npos);
}

TEST_CASE("a malformed chunked body is a 400 and the connection is closed: its rest is not a next request") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  auto relay = startRelay(test::relayConfig(journal));
  RawClient client(relay->ingestPort());
  client.send(fmt::format(
      "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n", kUri));
  const std::string answer = client.readAll();
  CHECK(answer.find("HTTP/1.1 400 ") == 0);
  CHECK(answer.find(R"({"error":)") != std::string::npos);
  CHECK(answer.find("HTTP/1.1", 1) == std::string::npos);  // one answer, then closed
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 0);
}
