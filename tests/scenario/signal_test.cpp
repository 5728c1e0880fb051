// Signals to the built binary: SIGHUP never stops it (it reloads the
// configuration, or logs why it cannot and keeps the running one); SIGTERM
// then stops it cleanly with exit 0. What a reload changes: reload_test.
#include <doctest/doctest.h>

#include <Poco/Exception.h>
#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <fmt/format.h>

#include <csignal>
#include <mutex>
#include <regex>
#include <thread>

#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;

namespace {

// The relay's log (its stderr), collected by a thread while it runs.
class LogReader {
 public:
  explicit LogReader(Poco::Pipe& pipe) : stream_(pipe), thread_([this] { collect(); }) {}
  ~LogReader() { thread_.join(); }  // returns once the process has exited (end of the pipe)
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  std::string text() const {
    const std::lock_guard lock(mutex_);
    return text_;
  }
  // The first match of `pattern`'s group 1, within `limit`.
  std::string await(const std::regex& pattern, std::chrono::milliseconds limit) const {
    std::string found;
    test::waitUntil(
        [&]() -> bool {
          std::smatch match;
          const std::string log = text();
          if (!std::regex_search(log, match, pattern)) return false;
          found = match[1];
          return true;
        },
        limit);
    return found;
  }

 private:
  void collect() {
    std::string line;
    while (std::getline(stream_, line)) {
      const std::lock_guard lock(mutex_);
      text_ += line + "\n";
    }
  }

  Poco::PipeInputStream stream_;
  mutable std::mutex mutex_;
  std::string text_;
  std::thread thread_;
};

// Kills the process when a failed REQUIRE leaves the test early, so that the
// log reader (destroyed after it) sees the end of the pipe.
struct KillUnlessExited {
  Poco::ProcessHandle::PID pid;
  bool exited = false;
  ~KillUnlessExited() {
    if (!exited) ::kill(pid, SIGKILL);
  }
};

}  // namespace

TEST_CASE("SIGHUP reloads, a broken file included: the relay keeps serving; SIGTERM still stops it with exit 0") {
  test::TempDir dir;
  test::writeFile(dir.path() / "relay.ini", test::relayConfig(dir.file("relay.db")));
  Poco::Pipe err_pipe;
  auto handle = Poco::Process::launch(MEWS_RELAY_BINARY, {"-c", dir.file("relay.ini"), "serve"}, dir.path().string(),
                                      nullptr, nullptr, &err_pipe);
  LogReader log(err_pipe);
  KillUnlessExited killer{handle.id()};
  const std::string port = log.await(std::regex(R"(msg=serving .* port=(\d+))"), 10s);
  const std::string admin = log.await(std::regex(R"(msg=serving .* admin=127\.0\.0\.1:(\d+))"), 1s);
  REQUIRE(!port.empty());
  REQUIRE(!admin.empty());

  const auto ingest_port = static_cast<std::uint16_t>(std::stoi(port));
  const auto admin_port = static_cast<std::uint16_t>(std::stoi(admin));
  auto stillServing = [&](const char* after) {
    test::HttpResult posted;
    test::HttpResult health;
    try {
      posted = test::httpRequest(ingest_port, "POST", test::kIngestUri, test::sample("general.json"));
      health = test::httpRequest(admin_port, "GET", "/healthz");
    } catch (const Poco::Exception& e) {
      FAIL_CHECK("the relay did not answer after " << after << ": " << e.displayText());
    }
    CHECK(posted.status == 202);
    CHECK(health.status == 200);
  };

  ::kill(handle.id(), SIGHUP);
  CHECK(!log.await(std::regex("(msg=\"configuration reloaded\")"), 5s).empty());
  stillServing("a SIGHUP");

  // A file that no longer loads: the reload is refused, the relay serves on.
  test::writeFile(dir.path() / "relay.ini", "[server]\nlisten = nowhere\n");
  ::kill(handle.id(), SIGHUP);
  CHECK(!log.await(std::regex("(msg=\"reload refused; the running configuration stays\")"), 5s).empty());
  stillServing("a SIGHUP with a broken file");

  ::kill(handle.id(), SIGTERM);
  const int exit_code = handle.wait();
  killer.exited = true;
  CHECK(exit_code == 0);
  CHECK(!log.await(std::regex("(msg=stopping signal=SIGTERM)"), 5s).empty());
  CHECK(!log.await(std::regex("(msg=stopped )"), 5s).empty());
}
