// Request smuggling (RFC 9112 §6): every request whose body cannot be
// delimited without guessing gets a 400 with a JSON reason and
// `Connection: close`, and the connection ends: a second request hidden behind
// its body, sent in the same write, is never served. Raw sockets against the
// real relay on 127.0.0.1.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "relay/relay.h"
#include "support/raw_client.h"
#include "support/test_support.h"

using namespace mews;
using test::RawClient;

namespace {

const std::string kBody = R"({"Events":[]})";

std::string post(const std::string& fields, const std::string& body, const std::string& version = "HTTP/1.1") {
  return fmt::format("POST {} {}\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{}\r\n{}", test::kIngestUri,
                     version, fields, body);
}

// A well-framed request: if the relay ever answers it on a connection, the
// bytes before it were misread.
const std::string kSmuggled = post(fmt::format("Content-Length: {}\r\n", kBody.size()), kBody);

std::string chunked(const std::string& data) {
  return fmt::format("{:x}\r\n{}\r\n0\r\n\r\n", data.size(), data);
}

struct Case {
  std::string name;
  std::string request;  // the head and body; the smuggled request follows in the same write
  const char* reason;
};

std::vector<Case> ambiguousRequests() {
  const std::string length = fmt::format("Content-Length: {}\r\n", kBody.size());
  return {
      {"Content-Length and chunked", post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", chunked(kBody)),
       "both Content-Length and Transfer-Encoding"},
      {"chunked and Content-Length", post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", chunked(kBody)),
       "both Content-Length and Transfer-Encoding"},
      {"Content-Length and identity", post(length + "Transfer-Encoding: identity\r\n", kBody),
       "both Content-Length and Transfer-Encoding"},
      {"two equal Content-Lengths", post(length + length, kBody), "more than one Content-Length"},
      {"two different Content-Lengths", post(length + "content-length: 0\r\n", kBody), "more than one Content-Length"},
      {"a Content-Length list", post(fmt::format("Content-Length: {0}, {0}\r\n", kBody.size()), kBody),
       "Content-Length is not a number"},
      {"a negative Content-Length", post("Content-Length: -1\r\n", kBody), "Content-Length is not a number"},
      {"a Content-Length with +", post(fmt::format("Content-Length: +{}\r\n", kBody.size()), kBody),
       "Content-Length is not a number"},
      {"a word for a Content-Length", post("Content-Length: abc\r\n", kBody), "Content-Length is not a number"},
      {"a hex Content-Length", post("Content-Length: 0x0d\r\n", kBody), "Content-Length is not a number"},
      {"a Content-Length with a space inside", post("Content-Length: 1 3\r\n", kBody),
       "Content-Length is not a number"},
      {"an empty Content-Length", post("Content-Length:\r\n", kBody), "Content-Length is not a number"},
      {"a Content-Length over 64 bits", post("Content-Length: 99999999999999999999\r\n", kBody),
       "Content-Length is not a number"},
      {"Transfer-Encoding: identity", post("Transfer-Encoding: identity\r\n", kBody),
       "Transfer-Encoding other than chunked"},
      {"Transfer-Encoding: gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n", chunked(kBody)),
       "Transfer-Encoding other than chunked"},
      {"Transfer-Encoding: chunked, chunked", post("Transfer-Encoding: chunked, chunked\r\n", chunked(kBody)),
       "Transfer-Encoding other than chunked"},
      {"two Transfer-Encoding fields",
       post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", chunked(kBody)),
       "Transfer-Encoding other than chunked"},
      {"chunked in HTTP/1.0", post("Transfer-Encoding: chunked\r\n", chunked(kBody), "HTTP/1.0"),
       "Transfer-Encoding in an HTTP/1.0 request"},
      {"chunked in http/1.0 (lower case)", post("Transfer-Encoding: chunked\r\n", chunked(kBody), "http/1.0"),
       "malformed HTTP version"},
      {"Transfer-Encoding as an RFC 2047 encoded word",
       post("Transfer-Encoding: =?UTF-8?Q?chunked?=\r\n", chunked(kBody)), "Transfer-Encoding other than chunked"},
      {"Content-Length as an RFC 2047 encoded word",
       post(fmt::format("Content-Length: =?UTF-8?Q?{}?=\r\n", kBody.size()), kBody), "Content-Length is not a number"},
      {"a vertical tab before the Content-Length", post(fmt::format("Content-Length: \v{}\r\n", kBody.size()), kBody),
       "control character in a header field value"},
      {"a form feed before the Content-Length", post(fmt::format("Content-Length: \f{}\r\n", kBody.size()), kBody),
       "control character in a header field value"},
      {"a space before the colon", post("Transfer-Encoding : chunked\r\n", chunked(kBody)),
       "malformed header field name"},
      {"a chunk size that is not hex", post("Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n"),
       "malformed chunked body: chunk size is not a hex number"},
      {"a chunk longer than its size",
       post("Transfer-Encoding: chunked\r\n", fmt::format("2\r\n{}XX0\r\n\r\n", std::string("{}"))),
       "malformed chunked body: chunk data longer than its size"},
      {"a chunk size over 15 hex digits", post("Transfer-Encoding: chunked\r\n", "1000000000000000d\r\n" + kBody),
       "malformed chunked body: chunk size is too large"},
      {"a bare LF after a chunk size",
       post("Transfer-Encoding: chunked\r\n", fmt::format("{:x}\n{}\r\n0\r\n\r\n", kBody.size(), kBody)),
       "malformed chunked body: bare LF in a chunk size line"},
  };
}

// The answer is one 400, with the reason, `Connection: close`, then the end of the connection.
void checkRefusedAndClosed(RawClient& client, const std::string& answer, const std::string& reason) {
  CAPTURE(answer);
  // HTTP/1.0 for a request that said HTTP/1.0.
  CHECK(answer.rfind("HTTP/1.", 0) == 0);
  CHECK(answer.find(" 400 ") == 8);
  CHECK(answer.find(fmt::format(R"({{"error":"{}"}})", reason)) != std::string::npos);
  std::string lower = answer;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  CHECK(lower.find("\r\nconnection: close\r\n") != std::string::npos);
  CHECK(test::countResponses(answer) == 1);
  CHECK(client.end() == RawClient::End::Eof);
}

}  // namespace

TEST_CASE("ambiguous framing: 400, the connection closed, the request behind it never served, nothing stored") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(test::relayConfig(journal));
  for (const Case& c : ambiguousRequests()) {
    CAPTURE(c.name);
    RawClient client(relay->ingestPort());
    client.send(c.request + kSmuggled);
    const std::string answer = client.readAll(std::chrono::seconds(5));
    checkRefusedAndClosed(client, answer, c.reason);
  }
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 0);
  const auto page = test::httpRequest(test::adminPort(*relay), "GET", "/metrics");
  CHECK(page.body.find(fmt::format("mews_relay_requests_rejected_total{{reason=\"malformed\"}} {}\n",
                                   ambiguousRequests().size())) != std::string::npos);
}

TEST_CASE("a version other than HTTP/1.0 or HTTP/1.1: 505, or 400 when it is not a version; never served") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(test::relayConfig(journal));
  struct Version {
    const char* version;
    const char* status_line;
    const char* reason;
  };
  const std::vector<Version> versions{
      {"HTTP/0.9", "HTTP/1.1 505 ", "HTTP version not supported"},
      {"HTTP/2.0", "HTTP/1.1 505 ", "HTTP version not supported"},
      {"HTTP/1.2", "HTTP/1.1 505 ", "HTTP version not supported"},
      {"HTTP/1.1x", "HTTP/1.1 400 ", "malformed HTTP version"},
      {"HTTP/1", "HTTP/1.1 400 ", "malformed HTTP version"},
      {"HTTPS/1.1", "HTTP/1.1 400 ", "malformed HTTP version"},
      {"Http/1.1", "HTTP/1.1 400 ", "malformed HTTP version"},
  };
  for (const Version& v : versions) {
    for (const bool use_chunked : {false, true}) {
      const std::string version = v.version;
      CAPTURE(version);
      CAPTURE(use_chunked);
      RawClient client(relay->ingestPort());
      client.send(use_chunked ? post("Transfer-Encoding: chunked\r\n", chunked(kBody), v.version)
                              : post(fmt::format("Content-Length: {}\r\n", kBody.size()), kBody, v.version));
      const std::string answer = client.readAll(std::chrono::seconds(5));
      CAPTURE(answer);
      CHECK(answer.rfind(v.status_line, 0) == 0);
      CHECK(answer.find(fmt::format(R"({{"error":"{}"}})", v.reason)) != std::string::npos);
      CHECK(test::countResponses(answer) == 1);
      CHECK(client.end() == RawClient::End::Eof);
    }
  }
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 0);
}

TEST_CASE("a body that ends before its Content-Length or its last chunk: 400 and closed") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(test::relayConfig(journal));

  RawClient short_body(relay->ingestPort());
  short_body.send(post("Content-Length: 100\r\n", kBody));
  short_body.finishSending();
  checkRefusedAndClosed(short_body, short_body.readAll(std::chrono::seconds(5)), "body ended before Content-Length");

  RawClient no_last_chunk(relay->ingestPort());
  no_last_chunk.send(post("Transfer-Encoding: chunked\r\n", fmt::format("{:x}\r\n{}\r\n", kBody.size(), kBody)));
  no_last_chunk.finishSending();
  checkRefusedAndClosed(no_last_chunk, no_last_chunk.readAll(std::chrono::seconds(5)),
                        "body ended before its last chunk");
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 0);
}

TEST_CASE("a POST with neither Content-Length nor chunked: 411 and closed") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(test::relayConfig(journal));
  RawClient client(relay->ingestPort());
  client.send(post("", kBody + kSmuggled));
  const std::string answer = client.readAll(std::chrono::seconds(5));
  CAPTURE(answer);
  CHECK(answer.rfind("HTTP/1.1 411 ", 0) == 0);
  CHECK(answer.find(R"({"error":"Content-Length or Transfer-Encoding: chunked required"})") != std::string::npos);
  CHECK(test::countResponses(answer) == 1);
  CHECK(client.end() == RawClient::End::Eof);
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 0);
}

TEST_CASE("well-framed requests pipelined on one connection are each served, chunked ones included") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(test::relayConfig(journal));
  RawClient client(relay->ingestPort());
  // The chunked body is read to its last CRLF and not a byte further.
  client.send(post("Transfer-Encoding: chunked\r\n", "2\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n") + kSmuggled +
              post("Transfer-Encoding: Chunked\r\n", chunked(kBody)));
  for (int i = 0; i < 3; ++i) {
    const std::string answer = client.readResponse(std::chrono::seconds(5));
    CAPTURE(i);
    CAPTURE(answer);
    CHECK(answer.rfind("HTTP/1.1 202 ", 0) == 0);
  }
  CHECK(test::queryInt(journal, "SELECT count(*) FROM batches") == 3);
}
