// What the operator's commands print (issue 10 items 7 and 8, issue 11 "one of
// each"): text that came from outside never carries a terminal control
// sequence to the operator's terminal; a URL's query values are masked
// wherever a URL is printed or logged; status and /metrics report one journal
// size; usage errors say what is wrong.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <regex>

#include "relay/relay.h"
#include "support/operator_fixture.h"

using namespace mews;
using namespace std::chrono_literals;

namespace {

// A target's answer meant for the operator's terminal: clear the screen, set
// the window title, ring the bell, an 8-bit CSI (U+009B) and a byte that is not UTF-8.
const std::string kHostileAnswer =
    "\x1b[2J\x1b]0;pwned\x07 \xc2\x9b"
    "31m red \xff tail";

// An event type from outside: JSON escapes decode to ESC and BEL.
const std::string kHostileBatch =
    R"({"EnterpriseId":"e","Events":[{"Discriminator":"Evil\u001b[31mType\u0007","Value":{"Id":"x"}}]})";

// No ESC, BEL, other C0 control but line break and tab, DEL, or C1 (UTF-8 C2 80..C2 9F).
bool terminalSafe(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 && c != '\n' && c != '\t') return false;
    if (c == 0x7f || c == 0xff) return false;
    if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 0xa0) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("control sequences from a target or a sender reach the terminal only as visible escapes") {
  test::OperatorFixture f({400, "", "", kHostileAnswer}, "", kHostileBatch);
  const auto show = test::runCommand(f.config, {"dlq", "show", "1"});
  CHECK(show.exit == 0);
  CHECK(terminalSafe(show.out));
  CHECK(show.out.find(R"(\x1b[2J\x1b]0;pwned\x07)") != std::string::npos);
  CHECK(show.out.find(R"(Evil\x1b[31mType\x07)") != std::string::npos);
  // PostgreSQL's text keeps well-formed UTF-8 only: the stray byte was stored as U+FFFD.
  CHECK(show.out.find(test::onPostgres() ? "\\u009b31m red \xEF\xBF\xBD" : R"(\u009b31m red \xff)") !=
        std::string::npos);
  const auto list = test::runCommand(f.config, {"dlq", "list"});
  CHECK(list.exit == 0);
  CHECK(terminalSafe(list.out));
  CHECK(list.out.find(R"(Evil\x1b[31mType\x07)") != std::string::npos);
  const auto status = test::runCommand(f.config, {"status"});
  CHECK(status.exit == 0);
  CHECK(terminalSafe(status.out));
  // --json keeps the data (JSON escapes) and is as safe.
  for (const auto& args :
       {std::vector<std::string>{"dlq", "show", "1", "--json"}, std::vector<std::string>{"dlq", "list", "--json"},
        std::vector<std::string>{"status", "--json"}}) {
    const auto json = test::runCommand(f.config, args);
    CHECK(json.exit == 0);
    CHECK(terminalSafe(json.out));
  }
  CHECK(test::runCommand(f.config, {"dlq", "show", "1", "--json"}).out.find(R"(\u001b[2J\u001b]0;pwned\u0007)") !=
        std::string::npos);
}

TEST_CASE("a URL's query values are masked in check-config, the start-up log and a refused redirect") {
  constexpr const char* kQuerySecret = "url-query-secret-8086";
  // The target answers with a redirect to another host carrying a password and
  // a signed query: not followed (same-origin), and recorded masked.
  test::OperatorFixture f({307, "", "http://user:url-password-secret-4711@other.example/x?sig=url-query-secret-8086"});
  std::string text = test::readFile(f.config);
  const std::string url = f.sink.url();
  text.replace(text.find(url), url.size(), url + "?code=" + kQuerySecret + "&x=1");
  test::writeFile(f.config, text);

  const auto checked = test::runCommand(f.config, {"check-config"});
  CHECK(checked.exit == 0);
  CHECK(checked.out.find(url + "?code=***&x=***") != std::string::npos);
  const auto json = test::runCommand(f.config, {"check-config", "--json"});
  CHECK(json.out.find(R"("value":")" + url + "?code=***&x=***\"") != std::string::npos);
  for (const auto& out : {checked.out, json.out}) CHECK(out.find(kQuerySecret) == std::string::npos);

  {
    test::ServeProcess serve(f.config, f.journal);
    REQUIRE(serve.waitServing(10s));
    CHECK(serve.stop() == 0);
    CHECK(serve.log().find("code=***") != std::string::npos);
    CHECK(serve.log().find(kQuerySecret) == std::string::npos);
  }

  const auto list = test::runCommand(f.config, {"dlq", "list"});
  CHECK(list.out.find("http://user:***@other.example") != std::string::npos);
  for (const auto& out :
       {list.out, test::runCommand(f.config, {"dlq", "show", "1"}).out, test::runCommand(f.config, {"status"}).out}) {
    CHECK(out.find("url-password-secret-4711") == std::string::npos);
    CHECK(out.find(kQuerySecret) == std::string::npos);
  }

  // A URL the config refuses is not echoed with its query either.
  test::writeFile(f.config, text.replace(text.find("url = http://"), 13, "url = http://[bad"));
  const auto refused = test::runCommand(f.config, {"check-config"});
  CHECK(refused.exit == 1);
  CHECK(refused.err.find("[target.pms] url") != std::string::npos);
  CHECK(refused.err.find(kQuerySecret) == std::string::npos);
}

TEST_CASE("status and /metrics report the same journal size") {
  test::OperatorFixture f;
  auto relay = f.startRelay();
  const std::uint16_t port = test::adminPort(*relay);
  // Settled: nothing is written while both read.
  std::this_thread::sleep_for(200ms);
  const auto page = test::httpRequest(port, "GET", "/metrics");
  std::smatch metric;
  REQUIRE(std::regex_search(page.body, metric, std::regex(R"(\nmews_relay_journal_size_bytes (\d+)\n)")));
  const auto status = test::runCommand(f.config, {"status", "--json"});
  std::smatch bytes;
  REQUIRE(std::regex_search(status.out, bytes, std::regex(R"("bytes":(\d+))")));
  CHECK(bytes[1].str() == metric[1].str());
}

TEST_CASE("dlq list --limit takes a positive count; anything else is a usage error") {
  test::OperatorFixture f;
  for (const std::string& bad : std::vector<std::string>{"abc", "0", "-3", "99999999999"}) {
    const auto run = test::runCommand(f.config, {"dlq", "list", "--limit", bad});
    CHECK(run.exit == 2);
    CHECK(run.err.find(fmt::format("--limit '{}'", bad)) != std::string::npos);
    CHECK(run.err.find("dead letter id") == std::string::npos);
    CHECK(run.err.find("usage: mews-relay") != std::string::npos);
  }
  CHECK(test::runCommand(f.config, {"dlq", "list", "--limit", "1"}).exit == 0);
}
