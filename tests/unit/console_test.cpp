// lib/console's pure parts: the credential, escaping and the request rules,
// sessions and the sign-in limit, the charts, and the [console] config keys.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <algorithm>
#include <regex>

#include "auth/password.h"
#include "config/config.h"
#include "console/chart.h"
#include "console/sessions.h"
#include "console/web.h"

using namespace mews;
using namespace mews::console;
using namespace mews::auth;

TEST_CASE("password hashes: PBKDF2 with the parameters in the line, verified; malformed lines refused") {
  const std::string line = hashPassword("correct horse battery", kMinIterations);
  CHECK(std::regex_match(line, std::regex(R"(pbkdf2-sha256\$100000\$[0-9a-f]{32}\$[0-9a-f]{64})")));
  CHECK(hashPassword("correct horse battery", kMinIterations) != line);  // a fresh salt each time
  std::string error;
  const auto parsed = parsePasswordHash(line, error);
  REQUIRE(parsed);
  const auto credential = Credential::fromHash(*parsed);
  CHECK(credential.verify("correct horse battery"));
  CHECK_FALSE(credential.verify("correct horse batterY"));
  CHECK_FALSE(credential.verify(""));

  // An independent implementation's figure: Python's
  // hashlib.pbkdf2_hmac("sha256", b"console password", bytes(16), 100000).hex()
  std::string vector_error;
  const auto known = parsePasswordHash(
      "pbkdf2-sha256$100000$00000000000000000000000000000000$"
      "c314d16f938ed14038dfddc6f07341228774b927002ce5d59f45a83f0055d69b",
      vector_error);
  REQUIRE(known);
  CHECK(Credential::fromHash(*known).verify("console password"));
  CHECK_FALSE(Credential::fromHash(*known).verify("console passworD"));

  for (const char* bad :
       {"", "sha1$1$aa$bb", "pbkdf2-sha256$99999$0011223344556677$" /* too few */, "pbkdf2-sha256$600000$zz$00",
        "pbkdf2-sha256$600000$0011223344556677$00ff", "pbkdf2-sha256$600000$0011223344556677"}) {
    CAPTURE(bad);
    error.clear();
    CHECK_FALSE(parsePasswordHash(bad, error));
    CHECK_FALSE(error.empty());
  }

  const auto secret = Credential::fromSecret("an environment secret");
  CHECK(secret.verify("an environment secret"));
  CHECK_FALSE(secret.verify("an environment secreT"));
  CHECK_FALSE(secret.verify("an environment secret "));
}

TEST_CASE("escape: the five characters that can start markup or end an attribute") {
  CHECK(web::escape(R"(<script>alert("x")</script> & 'y')") ==
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;");
  CHECK(web::escape("plain ünïcode") == "plain ünïcode");
}

TEST_CASE("Origin must be the console's own scheme and Host") {
  CHECK(web::originMatches("http://127.0.0.1:9090", "127.0.0.1:9090", false));
  CHECK(web::originMatches("https://relay.hotel.lan:9443", "relay.hotel.lan:9443", true));
  CHECK_FALSE(web::originMatches("http://relay.hotel.lan:9443", "relay.hotel.lan:9443", true));
  CHECK_FALSE(web::originMatches("http://127.0.0.1:9091", "127.0.0.1:9090", false));
  CHECK_FALSE(web::originMatches("null", "127.0.0.1:9090", false));
  CHECK_FALSE(web::originMatches("", "127.0.0.1:9090", false));
  CHECK_FALSE(web::originMatches("http://evil.example", "127.0.0.1:9090", false));
}

TEST_CASE("cookies are read by exact name") {
  CHECK(web::cookie("a=1; mews_console=abc; mews_console_sign_in=def", "mews_console") == "abc");
  CHECK(web::cookie("mews_console_sign_in=def", "mews_console") == std::nullopt);
  CHECK(web::cookie("", "x") == std::nullopt);
}

TEST_CASE("prettyJson indents without touching a string or a number") {
  CHECK(web::prettyJson(R"({"a":[1.10,2e3,{}],"b":"x,\"y\":{z}","c":[]})") ==
        "{\n  \"a\": [\n    1.10,\n    2e3,\n    {}\n  ],\n  \"b\": \"x,\\\"y\\\":{z}\",\n  \"c\": []\n}");
  CHECK(web::prettyJson("{ \"a\" :\n 1 }") == "{\n  \"a\": 1\n}");
  CHECK(web::prettyJson("\"unterminated") == "\"unterminated");  // not JSON: no crash, nothing lost
}

TEST_CASE("sessions: random ids, their own CSRF token, expiry, sign-out, a bounded number") {
  SessionStore store(60'000, 3);
  const Session a = store.create(1'000);
  const Session b = store.create(2'000);
  CHECK(a.id.size() == 64);
  CHECK(a.csrf.size() == 64);
  CHECK(a.id != b.id);
  CHECK(a.csrf != b.csrf);
  CHECK(store.find(a.id, 1'500)->csrf == a.csrf);
  CHECK_FALSE(store.find(a.id, 61'000));  // expired (and gone)
  CHECK_FALSE(store.find(a.id, 1'500));
  CHECK_FALSE(store.find("", 1'500));
  CHECK_FALSE(store.find(b.id + "0", 2'500));
  CHECK(store.end(b.id));
  CHECK_FALSE(store.find(b.id, 2'500));
  CHECK_FALSE(store.end(b.id));

  const Session c = store.create(3'000);
  const Session d = store.create(4'000);
  const Session e = store.create(5'000);
  const Session f = store.create(6'000);  // the fourth: the oldest (c) goes
  CHECK_FALSE(store.find(c.id, 6'000));
  CHECK(store.find(f.id, 6'000));

  ActionResult result;
  result.summary = "Replayed 2 dead letters";
  result.delivery_ids = {4, 5};
  const int number = store.addAction(d.id, result);
  CHECK(number == 1);
  CHECK(store.action(d.id, number)->delivery_ids == std::vector<std::int64_t>{4, 5});
  CHECK_FALSE(store.action(e.id, number));  // another session's result is not found
  CHECK(store.addAction("no such session", result) == 0);
}

TEST_CASE("sign-in limit: three free failures per address, then waits that double up to 30 s; success clears it") {
  SignInLimiter limiter(3, 30'000, 15 * 60'000);
  std::int64_t now = 1'000'000;
  for (int i = 1; i <= 3; ++i) {
    const auto attempt = limiter.attempt("127.0.0.1", now);
    CHECK(attempt.retry_after_ms == 0);
    CHECK(attempt.failures == i);
  }
  // Attempts sent at once do not all pass: each counts from when it is let through.
  CHECK(limiter.attempt("127.0.0.1", now).retry_after_ms == 1'000);
  CHECK(limiter.attempt("10.0.0.2", now).retry_after_ms == 0);  // another address is not held back
  std::vector<std::int64_t> waits;
  for (int i = 0; i < 40; ++i) {
    const std::int64_t wait = limiter.attempt("127.0.0.1", now).retry_after_ms;
    waits.push_back(wait);
    CHECK(limiter.attempt("127.0.0.1", now + wait - 1).retry_after_ms == 1);
    now += wait;
    CHECK(limiter.attempt("127.0.0.1", now).retry_after_ms == 0);
  }
  CHECK(std::vector<std::int64_t>(waits.begin(), waits.begin() + 7) ==
        std::vector<std::int64_t>{1'000, 2'000, 4'000, 8'000, 16'000, 30'000, 30'000});
  CHECK(*std::max_element(waits.begin(), waits.end()) == 30'000);  // never a lock-out
  CHECK(limiter.waitAfter(1'000'000) == 30'000);
  // Success clears the address; 15 minutes without an attempt forget it.
  limiter.succeeded("127.0.0.1");
  CHECK(limiter.attempt("127.0.0.1", now).failures == 1);
  for (int i = 0; i < 2; ++i) (void)limiter.attempt("127.0.0.1", now);
  CHECK(limiter.attempt("127.0.0.1", now).retry_after_ms > 0);
  CHECK(limiter.attempt("127.0.0.1", now + 15 * 60'000).failures == 1);
}

TEST_CASE("chart: one bar group per bucket, titles for each, the target name escaped") {
  std::vector<journal::ActivityBucket> buckets(12);
  buckets[3] = {10, 0};
  buckets[4] = {0, 5};
  const std::string svg = activityChart("<crm>", buckets, 1'795'770'000'000, 300'000);
  CHECK(svg.find("<svg") == 0);
  CHECK(svg.find("&lt;crm&gt;: 10 delivered, 5 failed") != std::string::npos);
  CHECK(svg.find("<crm>") == std::string::npos);
  std::size_t titles = 0;
  for (std::size_t at = svg.find("<title>"); at != std::string::npos; at = svg.find("<title>", at + 1)) ++titles;
  CHECK(titles == 12);
  CHECK(svg.find("class=\"ok\"") != std::string::npos);
  CHECK(svg.find("class=\"bad\"") != std::string::npos);
}

namespace {

std::string withConsole(const std::string& section) {
  return "[server]\ntokens = a-webhook-token-0123456789\n[target.pms]\nurl = http://127.0.0.1:9/\n" + section;
}

std::string errorOf(const std::string& ini) {
  try {
    config::parseSettings(ini, "relay.ini");
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("config: [console] and the admin TLS pair") {
  const std::string hash = hashPassword("a console password", kMinIterations);
  const auto settings = config::parseSettings(
      withConsole(fmt::format("[console]\npassword_hash = {}\nsession_lifetime = 1h\nhost_names = relay.lan, "
                              "relay\n",
                              hash)),
      "relay.ini");
  CHECK(settings.console.enabled());
  CHECK(settings.console.password_hash == hash);
  CHECK(settings.console.session_lifetime == std::chrono::hours(1));
  CHECK(settings.console.host_names == std::vector<std::string>{"relay.lan", "relay"});
  bool masked = false;
  for (const auto& e : settings.effective)
    if (e.section == "console" && e.key == "password_hash") masked = e.value == "(set, masked)";
  CHECK(masked);

  CHECK_FALSE(config::parseSettings(withConsole(""), "relay.ini").console.enabled());
  CHECK(config::parseSettings(withConsole(""), "relay.ini").console.session_lifetime == std::chrono::hours(8));

  CHECK(errorOf(withConsole("[console]\npassword_hash = sha1$x\n")).find("[console] password_hash: is not") !=
        std::string::npos);
  CHECK(errorOf(withConsole("[console]\npassword = short\n")).find("[console] password: needs at least 12") !=
        std::string::npos);
  CHECK(
      errorOf(withConsole("[console]\npassword = a-webhook-token-0123456789\n")).find("must not be a webhook token") !=
      std::string::npos);
  CHECK(errorOf(withConsole(fmt::format("[console]\npassword = a long console password\npassword_hash = {}\n", hash)))
            .find("not both") != std::string::npos);
  CHECK(errorOf(withConsole("[console]\nsession_lifetime = 1m\n")).find("session_lifetime") != std::string::npos);
  CHECK(errorOf(withConsole("[console]\nhost_names = bad/name\n")).find("not a host name") != std::string::npos);
  CHECK(errorOf(withConsole("[admin]\ntls_certificate = /x.pem\n")).find("[admin] tls_private_key: must be set") !=
        std::string::npos);
}
