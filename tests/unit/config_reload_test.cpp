// What a reload reads: ${file:PATH} values (re-read at every load, so a token
// file can rotate), [log] level, and which keys wait for a restart.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>

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

// A reload reads ${file:PATH} on the thread that waits for signals: a read
// that blocks or never ends there leaves SIGTERM unanswered.
TEST_CASE("${file:PATH}: a FIFO is refused at once, naming the key and the path") {
  test::TempDir dir;
  const std::string fifo = dir.file("tokens.fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto loading =
      std::async(std::launch::async, [&] { return errorOf("[server]\ntokens = ${file:" + fifo + "}\n" + kTarget); });
  const bool finished = loading.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  if (!finished) {
    // Let the blocked open go (a writer arrives and leaves), so the test ends.
    const int writer = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (writer >= 0) ::close(writer);
  }
  CHECK(finished);
  CHECK(loading.get().find("[server] tokens: " + fifo + " is a FIFO, not a regular file") != std::string::npos);
}

TEST_CASE("${file:PATH}: a device, a directory, more than 64KiB are refused unread, by key and path") {
  test::TempDir dir;
  const auto tokens = [&](const std::string& path) {
    return errorOf("[server]\ntokens = ${file:" + path + "}\n" + kTarget);
  };
  CHECK(tokens("/dev/zero").find("[server] tokens: /dev/zero is a device, not a regular file") != std::string::npos);
  CHECK(tokens(dir.path().string())
            .find("[server] tokens: " + dir.path().string() + " is a directory, not a regular file") !=
        std::string::npos);
  // 64 KiB is the most: a token or a secret is small.
  const std::string big = dir.file("big");
  test::writeFile(big, std::string(64 * 1024, 'a'));
  CHECK(tokens(big).empty());
  test::writeFile(big, std::string(64 * 1024 + 1, 'a'));
  CHECK(tokens(big).find("[server] tokens: " + big + " is larger than 64KiB") != std::string::npos);
  // A 1 GiB file (sparse: no disk used) is refused before it is read.
  std::filesystem::resize_file(big, 1ULL << 30);
  const auto started = std::chrono::steady_clock::now();
  CHECK(tokens(big).find("[server] tokens: " + big + " is larger than 64KiB") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
}

TEST_CASE("${file:PATH}: a refused value names the key and the file, never the content") {
  test::TempDir dir;
  const std::string path = dir.file("value");
  const auto errorWith = [&](const std::string& content, const std::string& ini) {
    test::writeFile(path, content + "\n");
    return errorOf(ini);
  };
  const std::string server = "[server]\ntokens = aaaaaaaaaaaaaaaaaaaa\n";
  std::string error =
      errorWith("hunter2-secret-words", server + "[delivery]\nworkers = ${file:" + path + "}\n" + kTarget);
  CHECK(error.find("[delivery] workers: the value in " + path + " is refused: ") != std::string::npos);
  CHECK(error.find("hunter2") == std::string::npos);
  error = errorWith("0", server + "[delivery]\nworkers = ${file:" + path + "}\n" + kTarget);
  CHECK(error.find("is outside 1..256") != std::string::npos);
  CHECK(error.find("'0'") == std::string::npos);
  CHECK(error.find(" 0 ") == std::string::npos);
  error = errorWith("hunter2-secret, bad id!",
                    server + "[target.pms]\nurl = http://127.0.0.1:9000/\nenterprises = ${file:" + path + "}\n");
  CHECK(error.find("[target.pms] enterprises: the value in " + path + " is refused") != std::string::npos);
  CHECK(error.find("hunter2") == std::string::npos);
  CHECK(error.find("bad id") == std::string::npos);
}

TEST_CASE("an ESC in a target's name or a key is escaped in the error, not sent to the terminal") {
  const std::string error = errorOf(
      "[server]\ntokens = aaaaaaaaaaaaaaaaaaaa\n[target.pm\x1b[31m\x07s]\nurl = "
      "http://127.0.0.1:9000/\n\x1b[2Jkey = 1\n");
  CHECK_FALSE(error.empty());
  CHECK(error.find('\x1b') == std::string::npos);
  CHECK(error.find('\x07') == std::string::npos);
  CHECK(error.find("\\x1b") != std::string::npos);
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
