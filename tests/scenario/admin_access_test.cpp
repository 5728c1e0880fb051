// Who may change the journal through the admin listener (issue 10 item 5):
// only the operator, who presents the credential the relay writes beside the
// journal (<journal>.admin, mode 0640). A browser on the relay's box (a plain
// cross-origin form post, or a DNS-rebinding page whose Host is its own name)
// is refused before anything runs; health and metrics stay readable.
#include <doctest/doctest.h>

#include <Poco/Net/StreamSocket.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <regex>

#include "relay/relay.h"
#include "support/operator_fixture.h"

using namespace mews;
using namespace std::chrono_literals;
using test::adminRequest;

namespace {

std::map<std::string, std::string> headers(std::uint16_t port, const std::string& credential = "",
                                           const std::string& origin = "") {
  std::map<std::string, std::string> out{{"Host", fmt::format("127.0.0.1:{}", port)}};
  if (!credential.empty()) out["Authorization"] = "Bearer " + credential;
  if (!origin.empty()) out["Origin"] = origin;
  return out;
}

// The admin port a `serve` child published in <journal>.lock.
std::uint16_t publishedAdminPort(const std::string& journal) {
  std::smatch match;
  const std::string published = test::readFile(journal + ".lock");
  REQUIRE(std::regex_search(published, match, std::regex(R"(admin=\S+:(\d+))")));
  return static_cast<std::uint16_t>(std::stoi(match[1]));
}

// The status of the answer to exactly `request` (no header added), 0 when none.
int rawStatus(std::uint16_t port, const std::string& request) {
  Poco::Net::StreamSocket socket(Poco::Net::SocketAddress("127.0.0.1", port));
  socket.setReceiveTimeout(Poco::Timespan(10, 0));
  socket.sendBytes(request.data(), static_cast<int>(request.size()));
  std::string answer;
  char buffer[1024];
  for (int n; answer.find("\r\n") == std::string::npos && (n = socket.receiveBytes(buffer, sizeof buffer)) > 0;)
    answer.append(buffer, static_cast<std::size_t>(n));
  std::smatch status;
  return std::regex_search(answer, status, std::regex(R"(^HTTP/1\.\d (\d{3}))")) ? std::stoi(status[1]) : 0;
}

// setpriv in front of the binary: run it as `nobody`, in `groups` only.
std::vector<std::string> asNobody(const std::string& groups) {
  return {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
          groups.empty() ? "--clear-groups" : "--groups=" + groups};
}

}  // namespace

TEST_CASE("a cross-origin form post, a foreign Host or a missing credential changes nothing") {
  test::OperatorFixture f;
  auto relay = f.startRelay();
  const std::uint16_t port = test::adminPort(*relay);
  const std::string credential = f.credential();
  REQUIRE(credential.size() == 64);
  REQUIRE(f.deadLetters() == 2);

  SUBCASE("a plain HTML form on another origin: refused, whatever it carries") {
    auto form = headers(port, "", "http://evil.example");
    form["Content-Type"] = "application/x-www-form-urlencoded";
    const auto refused = adminRequest(port, "POST", "/admin/purge", form, "x=1");
    CHECK(refused.status == 403);
    CHECK(refused.body.find(R"("error":)") != std::string::npos);
    // Even with the credential: the CLI never sends an Origin.
    CHECK(adminRequest(port, "POST", "/admin/purge", headers(port, credential, "null"), "").status == 403);
    CHECK(adminRequest(port, "POST", "/admin/replay?received_since_ms=0&target=pms",
                       headers(port, credential, "http://127.0.0.1:" + std::to_string(port)))
              .status == 403);
  }
  SUBCASE("DNS rebinding: the page's own name in Host") {
    auto rebound = headers(port, credential);
    rebound["Host"] = fmt::format("rebind.evil.example:{}", port);
    CHECK(adminRequest(port, "POST", "/admin/purge", rebound).status == 421);
    CHECK(adminRequest(port, "GET", "/metrics", rebound).status == 421);
    rebound["Host"] = "127.0.0.1:1";  // another port: not this listener
    CHECK(adminRequest(port, "POST", "/admin/purge", rebound).status == 421);
  }
  SUBCASE("no credential, or a wrong one") {
    const auto missing = adminRequest(port, "POST", "/admin/purge", headers(port));
    CHECK(missing.status == 401);
    CHECK(missing.headers.count("WWW-Authenticate") == 1);
    if (missing.headers.count("WWW-Authenticate")) CHECK(missing.headers.at("WWW-Authenticate") == "Bearer");
    CHECK(missing.body.find(R"("error":)") != std::string::npos);
    std::string wrong = credential;
    wrong[10] = wrong[10] == 'a' ? 'b' : 'a';
    CHECK(adminRequest(port, "POST", "/admin/purge", headers(port, wrong)).status == 401);
    CHECK(adminRequest(port, "POST", "/admin/purge", headers(port, credential + "0")).status == 401);
    auto basic = headers(port);
    basic["Authorization"] = "Basic " + credential;
    CHECK(adminRequest(port, "POST", "/admin/purge", basic).status == 401);
    CHECK(adminRequest(port, "POST", "/admin/replay?received_since_ms=0&target=pms", headers(port)).status == 401);
    CHECK(test::queryInt(f.journal, "SELECT count(*) FROM deliveries WHERE state = 'pending'") == 0);
  }
  CHECK(f.deadLetters() == 2);

  // Health and metrics need no credential, under any of the listener's names.
  for (const std::string& host : {fmt::format("127.0.0.1:{}", port), fmt::format("localhost:{}", port)}) {
    CHECK(adminRequest(port, "GET", "/healthz", {{"Host", host}}).status == 200);
    CHECK(adminRequest(port, "GET", "/readyz", {{"Host", host}}).status == 200);
    CHECK(adminRequest(port, "GET", "/metrics", {{"Host", host}}).status == 200);
  }
  // An HTTP/1.0 probe without a Host (never a browser) may read health, not purge.
  CHECK(rawStatus(port, "GET /healthz HTTP/1.0\r\n\r\n") == 200);
  CHECK(rawStatus(port, "GET /metrics HTTP/1.0\r\n\r\n") == 200);
  CHECK(rawStatus(port, "POST /admin/purge HTTP/1.0\r\nAuthorization: Bearer " + credential +
                            "\r\nContent-Length: 0\r\n\r\n") == 421);
  CHECK(f.deadLetters() == 2);
  // The operator's request goes through.
  const auto purged = adminRequest(port, "POST", "/admin/purge", headers(port, credential));
  CHECK(purged.status == 200);
  CHECK(purged.body == R"({"count":2})");
  CHECK(f.deadLetters() == 0);
}

TEST_CASE("the credential: fresh at each start, 0640, gone at stop, never in the log; the CLI presents it") {
  test::OperatorFixture f;
  const std::string credential_file = f.journal + ".admin";
  std::string first;
  {
    test::ServeProcess serve(f.config, f.journal);
    REQUIRE(serve.waitServing(10s));
    first = f.credential();
    REQUIRE(first.size() == 64);
    struct stat info {};
    REQUIRE(::stat(credential_file.c_str(), &info) == 0);
    CHECK((info.st_mode & 07777) == 0640);

    // The CLI still works while the relay serves: it reads the file and presents it.
    const auto dry = test::runCommand(f.config, {"dlq", "purge", "--dry-run"});
    CHECK(dry.exit == 0);
    CHECK(dry.out == "would purge 2 dead letters (through the running relay)\n");
    const auto replayed = test::runCommand(f.config, {"replay", "1", "--dry-run", "--json"});
    CHECK(replayed.out == "{\"replayed\":1,\"dry_run\":true,\"via_relay\":true}\n");
    // Refused requests are logged, without what they presented.
    const std::uint16_t port = publishedAdminPort(f.journal);
    CHECK(adminRequest(port, "POST", "/admin/purge", headers(port, first, "http://evil.example")).status == 403);
    CHECK(adminRequest(port, "POST", "/admin/purge", headers(port, first + "x")).status == 401);
    CHECK(f.deadLetters() == 2);
    CHECK(serve.stop() == 0);
    CHECK(serve.log().find(first) == std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(credential_file));
  test::ServeProcess again(f.config, f.journal);
  REQUIRE(again.waitServing(10s));
  CHECK(f.credential().size() == 64);
  CHECK(f.credential() != first);
}

TEST_CASE("a local user who cannot read the credential cannot purge; a member of the relay's group can") {
  if (::geteuid() != 0 || !std::filesystem::exists("/usr/bin/setpriv")) {
    MESSAGE("skipped: needs root and setpriv to run the CLI as another user");
    return;
  }
  test::OperatorFixture f;
  // As an older version left it: the relay makes it readable for its group again.
  std::filesystem::permissions(f.journal + ".lock",
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  test::ServeProcess serve(f.config, f.journal);
  REQUIRE(serve.waitServing(10s));
  // Everything but the credential is readable by anyone here (the config, the
  // directory, the lock with the admin address), so that the credential file's
  // mode is the only thing in the way. The relay runs as root: its group is 0.
  std::filesystem::permissions(f.journal + ".lock", std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  const auto outsider = test::runCommand(f.config, {"dlq", "purge"}, "", asNobody(""));
  CHECK(outsider.exit == 1);
  CHECK(outsider.err.find(f.journal + ".admin") != std::string::npos);
  CHECK(outsider.err.find("Permission denied") != std::string::npos);
  CHECK(f.deadLetters() == 2);
  // Without the CLI: any local user reaches the port, but not the credential.
  const std::uint16_t port = publishedAdminPort(f.journal);
  CHECK(adminRequest(port, "POST", "/admin/purge", headers(port)).status == 401);
  CHECK(f.deadLetters() == 2);

  const auto member = test::runCommand(f.config, {"dlq", "purge"}, "", asNobody("0"));
  CHECK(member.exit == 0);
  CHECK(member.out == "purged 2 dead letters (through the running relay)\n");
  CHECK(f.deadLetters() == 0);
}
