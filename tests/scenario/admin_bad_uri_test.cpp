// A request target the admin listener cannot read (a bad percent-escape, say)
// is the client's mistake: 400 with a one-line reason, never a 500 and an
// error in the log, whoever sends it and before any credential is looked at.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "relay/relay.h"
#include "support/raw_client.h"
#include "support/test_support.h"

using namespace mews;

TEST_CASE("a malformed request target on the admin listener is a 400") {
  test::TempDir dir;
  auto relay = test::startRelay(test::relayConfig(dir.file("relay.db")));
  const std::uint16_t port = test::adminPort(*relay);
  for (const std::string target : {"/admin/purge?%zz", "/metrics?a=%", "/readyz%G0"}) {
    CAPTURE(target);
    test::RawClient client(port);
    client.send(fmt::format("POST {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n", target, port));
    const std::string answer = client.readAll();
    CHECK(answer.rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(answer.find(R"({"error":"malformed request target"})") != std::string::npos);
  }
}
