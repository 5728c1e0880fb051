#include <doctest/doctest.h>

#include <cstdlib>

#include "config/config.h"
#include "support/test_support.h"

using namespace mews;
using config::ConfigError;
using config::parseSettings;

namespace {

const std::string kMinimal =
    "[server]\ntokens = aaaaaaaaaaaaaaaaaaaa\n"
    "[target.pms]\nurl = http://127.0.0.1:9000/mews\n";

// The whole error text for `ini`, or "" when it loads.
std::string errorOf(const std::string& ini) {
  try {
    parseSettings(ini, "relay.ini");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("defaults fill everything the file leaves out") {
  const auto settings = parseSettings(kMinimal, "relay.ini");
  CHECK(settings.server.listen == "0.0.0.0:8080");
  CHECK(settings.server.path == "/webhooks/mews");
  CHECK(settings.server.max_body == 1024 * 1024);
  CHECK(settings.admin.listen == "127.0.0.1:9090");
  CHECK(settings.journal.path == "data/relay.db");
  CHECK(settings.journal.retention == Millis(7 * 86'400'000LL));
  CHECK(settings.journal.min_free == 1ULL << 30);
  CHECK(settings.delivery.workers == 8);
  REQUIRE(settings.targets.size() == 1);
  const auto& target = settings.targets[0];
  CHECK(target.name == "pms");
  CHECK(target.mode == config::DeliveryMode::Batch);
  CHECK(target.acceptsAllEvents());
  CHECK(target.timeout == Millis(10'000));
  CHECK(target.max_attempts == 20);
  CHECK(target.backoff_min == Millis(1'000));
  CHECK(target.backoff_max == Millis(3'600'000));
  CHECK(target.max_age == Millis(3 * 86'400'000LL));
  CHECK(target.concurrency == 4);
}

TEST_CASE("the contract's example parses, inline comments and all") {
  setenv("MEWS_RELAY_TEST_TOKEN", "env-token-1234567890", 1);
  const auto settings = parseSettings(
      "[server]\n"
      "listen    = 0.0.0.0:8080        ; the public listener Mews posts to\n"
      "path      = /webhooks/mews      ; General and Integration webhooks may share it\n"
      "tokens    = ${system.env.MEWS_RELAY_TEST_TOKEN}, second-token-abcdefgh ; rotation\n"
      "max_body  = 1MiB\n"
      "[target.pms]\n"
      "url          = http://127.0.0.1:9000/mews\n"
      "mode         = event            ; one request per event\n"
      "events       = ServiceOrderUpdated, CustomerAdded\n"
      "backoff      = 2s..30m\n"
      "secret       = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
      "header.Authorization = Bearer change-me;x\n"
      "header.X-Site = lobby\n",
      "relay.ini");
  CHECK(settings.server.tokens == std::vector<std::string>{"env-token-1234567890", "second-token-abcdefgh"});
  const auto& target = settings.targets.at(0);
  CHECK(target.mode == config::DeliveryMode::Event);
  CHECK(target.events == std::vector<std::string>{"ServiceOrderUpdated", "CustomerAdded"});
  CHECK(target.accepts("CustomerAdded"));
  CHECK_FALSE(target.accepts("CustomerUpdated"));
  CHECK(target.backoff_min == Millis(2'000));
  CHECK(target.backoff_max == Millis(1'800'000));
  REQUIRE(target.headers.size() == 2);
  CHECK(target.headers[0] == std::pair<std::string, std::string>{"Authorization", "Bearer change-me;x"});
}

TEST_CASE("effective settings mask every secret") {
  const auto settings = parseSettings(
      "[server]\ntokens = super-secret-token-1, super-secret-token-2\n"
      "[target.pms]\nurl = http://127.0.0.1:9000/mews\nsecret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
      "header.Authorization = Bearer hidden-value\n",
      "relay.ini");
  std::string all;
  for (const auto& entry : settings.effective) all += entry.section + " " + entry.key + " = " + entry.value + "\n";
  CHECK(all.find("super-secret") == std::string::npos);
  CHECK(all.find("MfKQ9r8") == std::string::npos);
  CHECK(all.find("hidden-value") == std::string::npos);
  CHECK(all.find("tokens = (2 set, masked)") != std::string::npos);
  CHECK(all.find("max_attempts = 20") != std::string::npos);
}

TEST_CASE("every error names file, section, key and reason") {
  struct Case {
    std::string ini;
    std::string expected;
  };
  const std::string target = "[target.pms]\nurl = http://127.0.0.1:9000/mews\n";
  const std::string tokens = "[server]\ntokens = aaaaaaaaaaaaaaaaaaaa\n";
  for (const Case& c : std::initializer_list<Case>{
           {tokens + target + "[server]\nlisten = nowhere\n", "relay.ini: [server] listen: 'nowhere' is not HOST:PORT"},
           {tokens + target + "[server]\nlisten = 1.2.3.4:99999\n", "[server] listen:"},
           {tokens + "path = webhooks\n" + target, "[server] path: must start with /"},
           {tokens + "max_body = 1MB\n" + target, "[server] max_body: '1MB' has an unknown unit 'MB'"},
           {tokens + "max_body = 1GiB\n" + target, "[server] max_body: 1GiB is outside 1KiB..64MiB"},
           {tokens + "colour = blue\n" + target, "relay.ini: [server] colour: unknown key"},
           {tokens + target + "[journal]\nretention = forever\n", "[journal] retention: 'forever' is not a number"},
           {tokens + target + "[journal]\nretention = 5m\n", "[journal] retention: 5m is outside 1h..365d"},
           {tokens + target + "[journal]\nmax_size = 1KiB\n", "[journal] max_size: must be 0B or at least 1MiB"},
           {tokens + target + "[delivery]\nworkers = many\n", "[delivery] workers: 'many' is not a whole number"},
           {tokens + target + "[delivery]\nworkers = 0\n", "[delivery] workers: 0 is outside 1..256"},
           {tokens + target + "[mystery]\na = 1\n", "relay.ini: [mystery]: unknown section"},
           {target, "[server] tokens: is required"},
           {"[server]\ntokens = short\n" + target, "[server] tokens: each token needs at least 16 characters"},
           {"[server]\ntokens = ${system.env.MEWS_RELAY_SURELY_UNSET_VAR}\n" + target,
            "[server] tokens: environment variable MEWS_RELAY_SURELY_UNSET_VAR is not set"},
           {"[server]\ntokens = aaaaaaaaaaaaaaaaaaaa&b\n" + target, "may not contain"},
           {tokens, "[target.NAME]: no target configured"},
           {tokens + "[target.pms]\nmode = event\n", "relay.ini: [target.pms] url: is required"},
           {tokens + "[target.pms]\nurl = ftp://x/y\n", "[target.pms] url: must be an http:// or https:// URL"},
           {tokens + "[target.pms]\nurl = http://user:pw@x/y\n", "[target.pms] url: must not carry user:password"},
           {tokens + target + "mode = stream\n", "[target.pms] mode: 'stream' is not batch or event"},
           {tokens + target + "events = Customer Added\n",
            "[target.pms] events: 'Customer Added' is not an event type"},
           {tokens + target + "timeout = 1ms\n", "[target.pms] timeout: 1ms is outside 100ms..5m"},
           {tokens + target + "max_attempts = 0\n", "[target.pms] max_attempts: 0 is outside 1..1000"},
           {tokens + target + "backoff = 1s\n", "[target.pms] backoff: must be MIN..MAX"},
           {tokens + target + "backoff = 1h..1s\n", "[target.pms] backoff: MIN is larger than MAX"},
           {tokens + target + "max_age = 1s\n", "[target.pms] max_age: 1s is outside 1m..365d"},
           {tokens + target + "concurrency = 1000\n", "[target.pms] concurrency: 1000 is outside 1..256"},
           {tokens + target + "secret = hunter2\n", "[target.pms] secret: must start with whsec_"},
           {tokens + target + "secret = whsec_c2hvcnQ=\n", "[target.pms] secret: decodes to 5 bytes"},
           {tokens + target + "header.Content-Type = text/plain\n",
            "[target.pms] header.Content-Type: is set by the relay"},
           {tokens + target + "header.webhook-id = x\n", "[target.pms] header.webhook-id: is set by the relay"},
           {tokens + target + "retries = 3\n", "[target.pms] retries: unknown key"},
           {tokens + target + "[target]\nurl = http://x/\n", "[target] url: a target needs its own section"},
           {tokens + target + "[admin]\nlisten = 0.0.0.0:8080\n",
            "[admin] listen: must not share the public listener's port"},
       }) {
    CAPTURE(c.ini);
    const std::string error = errorOf(c.ini);
    CHECK(error.find(c.expected) != std::string::npos);
  }
}

TEST_CASE("all problems are reported at once") {
  const std::string error = errorOf("[server]\ntokens = short\nmax_body = x\n[target.a]\nmode = y\n");
  CHECK(error.find("tokens") != std::string::npos);
  CHECK(error.find("max_body") != std::string::npos);
  CHECK(error.find("[target.a] url: is required") != std::string::npos);
  CHECK(error.find("[target.a] mode") != std::string::npos);
}

TEST_CASE("a missing file is named") {
  try {
    config::loadSettings("/nonexistent/relay.ini");
    FAIL("expected ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("cannot read config file /nonexistent/relay.ini") != std::string::npos);
  }
}

TEST_CASE("the example config in the repository is valid") {
  setenv("MEWS_RELAY_TOKEN", "example-token-for-the-test", 1);
  const auto settings = config::loadSettings(std::string(MEWS_TEST_DATA_DIR) + "/../../examples/mews-relay.ini");
  CHECK(settings.targets.size() >= 1);
}

TEST_CASE("operator commands may load the config without the secrets' environment variables") {
  const std::string ini =
      "[server]\ntokens = ${system.env.MEWS_RELAY_SURELY_UNSET_TOKEN}\n"
      "[target.pms]\nurl = http://127.0.0.1:9000/mews\nsecret = ${system.env.MEWS_RELAY_SURELY_UNSET_SECRET}\n"
      "header.Authorization = ${system.env.MEWS_RELAY_SURELY_UNSET_HEADER}\n";
  CHECK(errorOf(ini).find("MEWS_RELAY_SURELY_UNSET_TOKEN is not set") != std::string::npos);
  const auto settings = parseSettings(ini, "relay.ini", config::Secrets::Optional);
  CHECK(settings.server.tokens.empty());
  CHECK(settings.targets.at(0).secret.empty());
  CHECK(settings.targets.at(0).headers.empty());
  // Only secrets may be missing: any other key still fails.
  CHECK_THROWS_AS(
      parseSettings("[server]\ntokens = aaaaaaaaaaaaaaaaaaaa\nlisten = ${system.env.MEWS_RELAY_SURELY_UNSET_LISTEN}\n"
                    "[target.pms]\nurl = http://127.0.0.1:9000/mews\n",
                    "relay.ini", config::Secrets::Optional),
      ConfigError);
}

TEST_CASE("a listen address is TCP HOST:PORT, never a socket path (found by fuzz_config)") {
  CHECK(errorOf(kMinimal + "[server]\nlisten = /run/relay.sock\n") ==
        "relay.ini: [server] listen: '/run/relay.sock' is not HOST:PORT (a TCP address, not a socket path)");
  CHECK(errorOf(kMinimal + "[admin]\nlisten = /dy = 2MiB\n").find("relay.ini: [admin] listen: ") == 0);
}

TEST_CASE("hardening and TLS keys: defaults, bounds, both-or-neither, readable files") {
  const auto defaults = parseSettings(kMinimal, "relay.ini");
  CHECK(defaults.server.request_timeout == Millis(10'000));
  CHECK(defaults.server.min_body_rate == 1024);
  CHECK(defaults.server.tls_certificate.empty());
  CHECK(defaults.targets[0].redirects == config::RedirectPolicy::SameOrigin);

  CHECK(errorOf(kMinimal + "[server]\nrequest_timeout = 500ms\n").find("relay.ini: [server] request_timeout: ") == 0);
  CHECK(errorOf(kMinimal + "[server]\nmin_body_rate = fast\n").find("relay.ini: [server] min_body_rate: ") == 0);
  CHECK(errorOf(kMinimal + "[server]\ntls_certificate = /etc/ssl/certs/x.pem\n") ==
        "relay.ini: [server] tls_private_key: must be set too when tls_certificate is set (both or neither)");
  CHECK(errorOf(kMinimal +
                "[server]\ntls_certificate = /nonexistent/cert.pem\ntls_private_key = /nonexistent/key.pem\n") ==
        "relay.ini: [server] tls_certificate: cannot read /nonexistent/cert.pem: No such file or directory\n"
        "relay.ini: [server] tls_private_key: cannot read /nonexistent/key.pem: No such file or directory");
  // Operator commands do not serve: they need not read the key.
  CHECK_NOTHROW(
      parseSettings(kMinimal + "[server]\ntls_certificate = /nonexistent/c.pem\ntls_private_key = /nonexistent/k.pem\n",
                    "relay.ini", config::Secrets::Optional));

  CHECK(parseSettings(kMinimal + "redirects = any\n", "relay.ini").targets[0].redirects == config::RedirectPolicy::Any);
  CHECK(parseSettings(kMinimal + "redirects = none\n", "relay.ini").targets[0].redirects ==
        config::RedirectPolicy::None);
  CHECK(errorOf(kMinimal + "redirects = anywhere\n") ==
        "relay.ini: [target.pms] redirects: must be same-origin, any or none");
}
