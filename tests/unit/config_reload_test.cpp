// What a reload reads: ${file:PATH} values (re-read at every load, so a token
// file can rotate), [log] level, and which keys wait for a restart.
#include <doctest/doctest.h>

#include "config/config.h"
#include "support/test_support.h"

using namespace mews;

namespace {

const std::string kTarget = "[target.pms]\nurl = http://127.0.0.1:9000/mews\n";

std::string errorOf(const std::string& ini, config::Secrets secrets = config::Secrets::Required) {
  try {
    config::parseSettings(ini, "relay.ini", secrets);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("${file:PATH}: the file's one line, read at every load") {
  test::TempDir dir;
  const std::string path = dir.file("tokens");
  const std::string ini = "[server]\ntokens = ${file:" + path + "}\n" + kTarget;
  test::writeFile(path, "file-token-aaaaaaaaaaaa\n");
  CHECK(config::parseSettings(ini, "relay.ini").server.tokens == std::vector<std::string>{"file-token-aaaaaaaaaaaa"});
  test::writeFile(path, "file-token-aaaaaaaaaaaa, file-token-bbbbbbbbbbbb");
  CHECK(config::parseSettings(ini, "relay.ini").server.tokens.size() == 2);
  // The operator's commands need no secret: an unreadable file is no error for them.
  std::filesystem::remove(path);
  CHECK(errorOf(ini).find("[server] tokens: cannot read " + path) != std::string::npos);
  CHECK(errorOf(ini, config::Secrets::Optional).empty());
  test::writeFile(path, "two\nlines\n");
  CHECK(errorOf(ini).find("must hold one line") != std::string::npos);
  // Only a whole value: anything else is refused by name.
  CHECK(errorOf("[server]\ntokens = x${file:" + path + "}\n" + kTarget).find("cannot expand") != std::string::npos);
}

TEST_CASE("[log] level: info by default, checked") {
  CHECK(config::parseSettings("[server]\ntokens = aaaaaaaaaaaaaaaaaaaa\n" + kTarget, "relay.ini").log.level ==
        log::Level::Info);
  CHECK(config::parseSettings("[server]\ntokens = aaaaaaaaaaaaaaaaaaaa\n[log]\nlevel = warn\n" + kTarget, "relay.ini")
            .log.level == log::Level::Warn);
  CHECK(errorOf("[server]\ntokens = aaaaaaaaaaaaaaaaaaaa\n[log]\nlevel = loud\n" + kTarget)
            .find("[log] level: 'loud' is not debug, info, warn or error") != std::string::npos);
}

TEST_CASE("restart-only keys: listeners, their limits, TLS, the journal, the workers; not tokens or targets") {
  for (const auto& [section, key] : std::vector<std::pair<std::string, std::string>>{{"server", "listen"},
                                                                                     {"server", "max_connections"},
                                                                                     {"server", "tls_certificate"},
                                                                                     {"admin", "listen"},
                                                                                     {"journal", "path"},
                                                                                     {"delivery", "workers"}})
    CHECK(config::restartOnly(section, key));
  for (const auto& [section, key] : std::vector<std::pair<std::string, std::string>>{
           {"server", "tokens"}, {"server", "max_body"}, {"journal", "retention"}, {"log", "level"}})
    CHECK_FALSE(config::restartOnly(section, key));
  const auto settings = config::parseSettings("[server]\ntokens = aaaaaaaaaaaaaaaaaaaa\n" + kTarget, "relay.ini");
  for (const auto& entry : settings.effective)
    if (entry.section == "target.pms") CHECK_FALSE(entry.restart_only);
}
