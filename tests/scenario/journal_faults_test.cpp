// The journal's files changed under the running relay: removed (`rm
// relay.db*`, the -wal alone), renamed (the file, its directory), replaced by
// another file, its lock removed or taken, made read-only and writable again.
// The real relay on loopback port 0 with a real sink; each fault is made with
// the system calls an operator's rm, mv or chattr makes. What must hold: no
// 202 for a batch whose commit did not land in the file at the configured
// path; 503 and /readyz 503 with the reason meanwhile; a log line; recovery
// without a restart; and after a restart every acknowledged batch is there.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <regex>
#include <thread>
#include <vector>

#include "config/config.h"
#include "journal/journal.h"
#include "journal/lock.h"
#include "journal/writer.h"
#include "relay/relay.h"
#include "support/sink.h"
#include "support/test_support.h"

using namespace mews;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr const char* kFilesChanged = "removed or replaced";
constexpr const char* kRefused = "writes refused until an operator acts";

std::string relayIni(const std::string& journal, const std::string& sink_url) {
  return fmt::format(
      "[server]\nlisten = 127.0.0.1:0\npath = /webhooks/mews\ntokens = {}\nmax_body = 64KiB\n"
      "[admin]\nlisten = 127.0.0.1:0\n[journal]\npath = {}\nmin_free = 0B\n"
      "[target.pms]\nurl = {}\nbackoff = 10ms..50ms\ntimeout = 2s\n",
      test::kToken, journal, sink_url);
}

// Copies what the process writes to stderr (the relay's log) into a file the
// test reads, and passes it on to the real stderr at the end, so a sanitizer
// report or the log of a failing test still shows.
class LogCapture {
 public:
  explicit LogCapture(std::string file) : file_(std::move(file)) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    const int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~LogCapture() {
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    const std::string captured = text();
    std::fwrite(captured.data(), 1, captured.size(), stderr);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  [[nodiscard]] std::string text() const {
    std::fflush(stderr);
    try {
      return test::readFile(file_);
    } catch (const std::exception&) {
      return {};
    }
  }

 private:
  std::string file_;
  int saved_ = -1;
};

// chattr +i through its ioctl: a file even root cannot write (the tests run as
// root in CI, and root ignores chmod). "" on success, else why not.
std::string setImmutable(const std::string& path, bool on) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return fmt::format("open {}: {}", path, std::strerror(errno));
  int flags = 0;
  std::string error;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
    error = fmt::format("FS_IOC_GETFLAGS {}: {}", path, std::strerror(errno));
  } else {
    flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    if (::ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
      error = fmt::format("FS_IOC_SETFLAGS {}: {}", path, std::strerror(errno));
  }
  ::close(fd);
  return error;
}

// Files made immutable for a while; always made writable again, in every
// teardown path (before the temporary directory is removed).
class Immutable {
 public:
  explicit Immutable(const std::vector<std::string>& paths) {
    for (const auto& path : paths) {
      error_ = setImmutable(path, true);
      if (!error_.empty()) break;
      set_.push_back(path);
    }
  }
  ~Immutable() { release(); }
  Immutable(const Immutable&) = delete;
  Immutable& operator=(const Immutable&) = delete;
  void release() {
    for (const auto& path : set_) setImmutable(path, false);
    set_.clear();
  }
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  std::vector<std::string> set_;
  std::string error_;
};

// Whether a file made immutable here refuses writes even through a descriptor
// opened before (ext4 does; tmpfs takes the flag but not at write time), which
// is what the relay's open journal meets. Where it does not, the test says so
// and is skipped, except in CI (CI=true), where the mechanism must work.
bool immutableAvailable(const test::TempDir& dir) {
  const std::string probe = dir.file("immutable-probe");
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  std::string error = setImmutable(probe, true);
  if (error.empty()) {
    if (::write(fd, "x", 1) == 1)
      error = "a descriptor opened before chattr +i still writes on this file system (tmpfs?)";
    setImmutable(probe, false);
  }
  ::close(fd);
  fs::remove(probe);
  if (error.empty()) return true;
  const char* ci = std::getenv("CI");
  if (ci != nullptr && std::string(ci) == "true") FAIL("chattr +i is needed for this test in CI: " << error);
  MESSAGE("skipped: cannot make the journal read-only here (" << error << ")");
  return false;
}

struct Answer {
  int status = 0;
  std::string body;
  std::optional<std::int64_t> batch;
};

Answer post(std::uint16_t port, std::size_t n) {
  const auto result =
      test::httpRequest(port, "POST", test::kIngestUri, test::generalBatch(1, fmt::format("Fault{}", n)));
  Answer answer{result.status, result.body, std::nullopt};
  std::smatch match;
  if (result.status == 202 && std::regex_search(result.body, match, std::regex(R"("batch":(\d+))")))
    answer.batch = std::stoll(match[1]);
  if (result.status == 503) CHECK(result.headers.count("Retry-After") == 1);
  return answer;
}

test::HttpResult ready(const relay::Relay& relay) {
  return test::httpRequest(test::adminPort(relay), "GET", "/readyz");
}

// The batch ids acknowledged so far, and how many of them a journal holds.
struct Acked {
  std::vector<std::int64_t> ids;
  void add(const Answer& answer) {
    REQUIRE(answer.status == 202);
    REQUIRE(answer.batch);
    ids.push_back(*answer.batch);
  }
  [[nodiscard]] std::int64_t countIn(const std::string& journal, const std::string& table = "batches",
                                     const std::string& extra = "") const {
    const std::string column = table == "batches" ? "id" : "batch_id";
    return test::queryInt(journal, fmt::format("SELECT count(DISTINCT {}) FROM {} WHERE {} IN ({}){}", column, table,
                                               column, fmt::join(ids, ","), extra));
  }
  [[nodiscard]] std::int64_t size() const { return static_cast<std::int64_t>(ids.size()); }
};

// Holds the writer thread inside a group until released, so that a test can
// queue jobs behind it and have them applied together in the next group.
class WriterGate {
 public:
  explicit WriterGate(journal::JournalWriter& writer) {
    auto opened = open_.get_future().share();
    auto started = std::make_shared<std::promise<void>>();
    auto running = started->get_future();
    held_ = writer.submit([opened, started](journal::Journal&) {
      started->set_value();
      opened.wait();
      return std::int64_t{0};
    });
    REQUIRE(running.wait_for(10s) == std::future_status::ready);
  }
  ~WriterGate() { release(); }
  WriterGate(const WriterGate&) = delete;
  WriterGate& operator=(const WriterGate&) = delete;
  void release() {
    if (released_) return;
    released_ = true;
    open_.set_value();
    held_.wait();
  }

 private:
  std::promise<void> open_;
  std::future<journal::WriteOutcome> held_;
  bool released_ = false;
};

// What the group that meets the fault answers: the fault is made by the first
// job of the group (on the writer thread, so nothing else runs meanwhile), a
// batch and a readiness probe follow in the same group. Delivery is stopped
// first, so that the writer's queue holds the test's jobs only.
struct FaultGroup {
  journal::WriteOutcome fault;
  Answer batch;
  test::HttpResult readiness;
};

FaultGroup faultInGroup(relay::Relay& relay, std::function<void()> fault) {
  relay.delivery().stop();
  auto& writer = relay.writer();
  FaultGroup result;
  std::future<journal::WriteOutcome> fault_outcome;
  std::future<Answer> batch;
  std::future<test::HttpResult> readiness;
  {
    WriterGate gate(writer);
    fault_outcome = writer.submit([fault = std::move(fault)](journal::Journal&) {
      fault();
      return std::int64_t{0};
    });
    batch = std::async(std::launch::async, [port = relay.ingestPort()] { return post(port, 1000); });
    readiness = std::async(std::launch::async, [&relay] { return ready(relay); });
    REQUIRE(test::waitUntil([&] { return writer.queued() == 3; }, 10s));
  }
  result.fault = fault_outcome.get();
  result.batch = batch.get();
  result.readiness = readiness.get();
  return result;
}

std::vector<fs::path> savedCopies(const fs::path& directory) {
  std::vector<fs::path> copies;
  if (!fs::exists(directory)) return copies;
  for (const auto& entry : fs::directory_iterator(directory))
    if (entry.path().filename().string().find(".saved-") != std::string::npos) copies.push_back(entry.path());
  return copies;
}

std::string integrity(const std::string& journal) {
  return test::queryText(journal, "PRAGMA integrity_check");
}

}  // namespace

TEST_CASE("journal files removed or renamed under the running relay: 503 with the reason, put back, nothing lost") {
  test::TempDir dir;
  LogCapture log(dir.file("relay.log"));
  test::Sink sink;
  const fs::path data = dir.path() / "data";
  const std::string journal = (data / "relay.db").string();
  const std::string ini = relayIni(journal, sink.url());
  auto relay = test::startRelay(ini);
  Acked acked;
  for (std::size_t i = 0; i < 5; ++i) acked.add(post(relay->ingestPort(), i));

  std::string fault_name;
  std::function<void()> fault;
  std::string moved_journal;  // where a renamed journal went, to check it was left alone
  SUBCASE("rm relay.db* (journal, -wal, -shm and the lock)") {
    fault_name = "relay.db was removed";
    fault = [journal] {
      for (const char* suffix : {"", "-wal", "-shm", ".lock"}) fs::remove(journal + suffix);
    };
  }
  SUBCASE("only the -wal removed (it holds commits not yet checkpointed)") {
    fault_name = "relay.db-wal was removed";
    fault = [journal] { fs::remove(journal + "-wal"); };
  }
  SUBCASE("mv relay.db x.db, with its -wal") {
    fault_name = "relay.db was removed or renamed";
    moved_journal = (data / "x.db").string();
    fault = [journal, moved_journal] {
      fs::rename(journal, moved_journal);
      fs::rename(journal + "-wal", moved_journal + "-wal");
    };
  }
  SUBCASE("the journal's directory renamed") {
    fault_name = "relay.db was removed or renamed";
    moved_journal = (dir.path() / "data-moved" / "relay.db").string();
    fault = [data, dir = dir.path()] { fs::rename(data, dir / "data-moved"); };
  }

  const auto group = faultInGroup(*relay, fault);
  CHECK(group.fault.status == journal::WriteOutcome::Status::StorageFailure);
  CHECK(group.fault.error.find(kFilesChanged) != std::string::npos);
  CHECK(group.batch.status == 503);
  CHECK(group.batch.body.find(kFilesChanged) != std::string::npos);
  CHECK(group.readiness.status == 503);
  CHECK(group.readiness.body.find(kFilesChanged) != std::string::npos);
  const std::string logged = log.text();
  CHECK(logged.find("journal files are no longer those at the journal's path") != std::string::npos);
  CHECK(logged.find(fault_name) != std::string::npos);
  CHECK(logged.find("journal put back at its path from the saved copy") != std::string::npos);

  // Put back at once: writes go on, readiness with them, no copy left over.
  for (std::size_t i = 5; i < 10; ++i) acked.add(post(relay->ingestPort(), i));
  CHECK(ready(*relay).status == 200);
  CHECK(savedCopies(data).empty());
  CHECK(fs::exists(journal + ".lock"));
  CHECK(journal::JournalLock::readPublished(journal).find("admin=") != std::string::npos);
  // The lock is this relay's again: a second one on the same journal refuses to start.
  CHECK_THROWS_WITH_AS(relay::Relay(config::parseSettings(ini, "test.ini")), doctest::Contains("in use"),
                       std::runtime_error);
  if (!moved_journal.empty()) CHECK(integrity(moved_journal) == "ok");  // left as the operator moved it

  relay.reset();
  relay = test::startRelay(ini);
  CHECK(acked.countIn(journal) == acked.size());
  CHECK(integrity(journal) == "ok");
  CHECK(post(relay->ingestPort(), 99).status == 202);
  CHECK(test::waitUntil(
      [&] { return acked.countIn(journal, "deliveries", " AND state = 'delivered'") == acked.size(); }, 10s));
}

TEST_CASE("journal removed while nothing writes: put back within about a second, lock included") {
  test::TempDir dir;
  test::Sink sink;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(relayIni(journal, sink.url()));
  Acked acked;
  acked.add(post(relay->ingestPort(), 0));
  REQUIRE(test::waitUntil([&] { return acked.countIn(journal, "deliveries", " AND state = 'delivered'") == 1; }, 10s));
  const auto removed = std::chrono::steady_clock::now();
  for (const char* suffix : {"", "-wal", "-shm", ".lock"}) fs::remove(journal + suffix);
  CHECK(test::waitUntil([&] { return fs::exists(journal) && fs::exists(journal + ".lock"); }, 3s));
  MESSAGE("put back "
          << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - removed).count()
          << " ms after the removal, without a write");
  CHECK(acked.countIn(journal) == 1);
  acked.add(post(relay->ingestPort(), 1));
}

TEST_CASE("after the journal is put back, delivery follows it without a restart") {
  test::TempDir dir;
  test::Sink sink;
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(relayIni(journal, sink.url()));
  Acked acked;
  for (std::size_t i = 0; i < 3; ++i) acked.add(post(relay->ingestPort(), i));
  const auto delivered = [&] { return acked.countIn(journal, "deliveries", " AND state = 'delivered'"); };
  REQUIRE(test::waitUntil([&] { return delivered() == 3; }, 10s));
  const auto fault = relay->writer()
                         .submit([journal](journal::Journal&) {
                           for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(journal + suffix);
                           return std::int64_t{0};
                         })
                         .get();
  CHECK(fault.status == journal::WriteOutcome::Status::StorageFailure);
  for (std::size_t i = 3; i < 6; ++i) acked.add(post(relay->ingestPort(), i));
  CHECK(test::waitUntil([&] { return delivered() == 6; }, 10s));
  CHECK(sink.waitForRequests(6, 10s));
}

namespace {

// A writer alone (no relay, so nothing else writes), with a job that puts one row.
struct LoneWriter {
  explicit LoneWriter(std::string journal_path) : path(std::move(journal_path)) {
    journal::WriterOptions options;
    options.path = path;
    options.idle_check = std::chrono::hours(1);  // no check of its own between the test's steps
    writer = std::make_unique<journal::JournalWriter>(options);
  }
  journal::WriteOutcome put(const std::string& key, std::function<void(journal::Journal&)> before = {}) {
    return writer
        ->submit([key, before](journal::Journal& journal) {
          if (before) before(journal);
          journal.db().exec(fmt::format("INSERT INTO meta (key, value) VALUES ('{}', '1')", key));
          return std::int64_t{0};
        })
        .get();
  }
  std::int64_t count(const std::string& key) const {
    return test::queryInt(path, fmt::format("SELECT count(*) FROM meta WHERE key = '{}'", key));
  }
  std::string path;
  std::unique_ptr<journal::JournalWriter> writer;
};

// Removes the -wal from inside COMMIT (a commit hook runs after the writer's
// last look before it), once.
struct RemoveWalDuringCommit {
  std::string path;
  bool done = false;
  static int hook(void* self) {
    auto* remover = static_cast<RemoveWalDuringCommit*>(self);
    if (!remover->done) fs::remove(remover->path + "-wal");
    remover->done = true;
    return 0;  // go on with the commit
  }
};

}  // namespace

TEST_CASE("a file removed between two writes: the next group is refused before it writes anything") {
  test::TempDir dir;
  LoneWriter lone(dir.file("w.db"));
  REQUIRE(lone.put("before").committed());
  fs::remove(lone.path + "-wal");  // "before" is only there: not checkpointed yet
  const auto refused = lone.put("refused");
  CHECK(refused.status == journal::WriteOutcome::Status::StorageFailure);
  CHECK(refused.error.find(kFilesChanged) != std::string::npos);
  REQUIRE(lone.put("after").committed());
  CHECK(lone.count("before") == 1);
  CHECK(lone.count("refused") == 0);  // refused before it was written into the removed file
  CHECK(lone.count("after") == 1);
}

TEST_CASE("a file removed during COMMIT: not acknowledged, yet kept in the journal put back") {
  test::TempDir dir;
  RemoveWalDuringCommit remover{dir.file("w.db")};
  LoneWriter lone(remover.path);
  REQUIRE(lone.put("before").committed());
  const auto during = lone.put("during", [&remover](journal::Journal& journal) {
    sqlite3_commit_hook(journal.sqlite().handle(), &RemoveWalDuringCommit::hook, &remover);
  });
  CHECK(remover.done);
  CHECK(during.status == journal::WriteOutcome::Status::StorageFailure);
  CHECK(during.error.find(kFilesChanged) != std::string::npos);
  REQUIRE(lone.put("after").committed());
  CHECK(lone.count("before") == 1);
  CHECK(lone.count("during") == 1);  // committed into the held file, so in the saved copy: 503 all the same
  CHECK(lone.count("after") == 1);
}

TEST_CASE("journal removed while no copy can be saved: the relay keeps holding it, 503 until it can") {
  test::TempDir dir;
  if (!immutableAvailable(dir)) return;
  LogCapture log(dir.file("relay.log"));
  test::Sink sink;
  const fs::path data = dir.path() / "data";
  const std::string journal = (data / "relay.db").string();
  const std::string ini = relayIni(journal, sink.url());
  auto relay = test::startRelay(ini);
  Acked acked;
  for (std::size_t i = 0; i < 5; ++i) acked.add(post(relay->ingestPort(), i));

  std::unique_ptr<Immutable> frozen_directory;
  const auto group = faultInGroup(*relay, [&] {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(journal + suffix);
    frozen_directory = std::make_unique<Immutable>(std::vector<std::string>{data.string()});
  });
  REQUIRE(frozen_directory->error().empty());
  CHECK(group.batch.status == 503);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto refused = post(relay->ingestPort(), 100 + i);
    CHECK(refused.status == 503);
    CHECK(refused.body.find("cannot save its copy yet") != std::string::npos);
  }
  const auto readiness = ready(*relay);
  CHECK(readiness.status == 503);
  CHECK(readiness.body.find("cannot save its copy yet") != std::string::npos);
  CHECK(log.text().find("cannot save the journal the relay holds") != std::string::npos);

  frozen_directory->release();
  // The next write saves the copy and puts it back (failing itself, as the
  // group that met the change, unless the idle check got there first).
  Answer resumed;
  for (std::size_t attempt = 0; attempt < 3 && resumed.status != 202; ++attempt) {
    resumed = post(relay->ingestPort(), 10 + attempt);
    if (resumed.status != 202) CHECK(resumed.body.find(kFilesChanged) != std::string::npos);
  }
  acked.add(resumed);
  CHECK(ready(*relay).status == 200);
  relay.reset();
  relay = test::startRelay(ini);
  CHECK(acked.countIn(journal) == acked.size());
}

TEST_CASE("journal replaced by another file: never written over, writes refused until an operator acts") {
  test::TempDir dir;
  LogCapture log(dir.file("relay.log"));
  test::Sink sink;
  const fs::path data = dir.path() / "data";
  const std::string journal = (data / "relay.db").string();
  const std::string ini = relayIni(journal, sink.url());
  // Another journal, e.g. a backup an operator restores with mv: a single file.
  const std::string other = dir.file("other.db");
  { journal::Journal created(other, {}); }
  REQUIRE(!fs::exists(other + "-wal"));
  const std::string other_bytes = test::readFile(other);

  auto relay = test::startRelay(ini);
  Acked acked;
  for (std::size_t i = 0; i < 5; ++i) acked.add(post(relay->ingestPort(), i));

  const auto group = faultInGroup(*relay, [other, journal] { fs::rename(other, journal); });
  CHECK(group.fault.status == journal::WriteOutcome::Status::StorageFailure);
  CHECK(group.batch.status == 503);
  CHECK(group.readiness.status == 503);

  // Refused, and it stays so: the other file is not the relay's to write over.
  for (std::size_t i = 0; i < 3; ++i) {
    const auto refused = post(relay->ingestPort(), 100 + i);
    CHECK(refused.status == 503);
    CHECK(refused.body.find(kRefused) != std::string::npos);
  }
  const auto readiness = ready(*relay);
  CHECK(readiness.status == 503);
  CHECK(readiness.body.find(kRefused) != std::string::npos);
  CHECK(test::readFile(journal) == other_bytes);
  const auto copies = savedCopies(data);
  REQUIRE(copies.size() == 1);
  CHECK(acked.countIn(copies[0].string()) == acked.size());  // everything acked is in the saved copy
  CHECK(log.text().find("another file is at the journal's path; writes refused until an operator acts") !=
        std::string::npos);

  SUBCASE("the operator moves the other file away: the saved journal goes back and writes resume") {
    for (const char* suffix : {"", "-wal", "-shm"})
      if (fs::exists(journal + suffix)) fs::rename(journal + suffix, dir.file(std::string("other-kept.db") + suffix));
    const auto resumed = post(relay->ingestPort(), 10);
    CHECK(resumed.status == 202);
    acked.add(resumed);
    CHECK(ready(*relay).status == 200);
    CHECK(savedCopies(data).empty());
    CHECK(test::readFile(dir.file("other-kept.db")) == other_bytes);
    relay.reset();
    relay = test::startRelay(ini);
    CHECK(acked.countIn(journal) == acked.size());
  }
  SUBCASE("the operator restarts the relay: it serves the other file, the saved copy keeps the rest") {
    relay.reset();
    relay = test::startRelay(ini);
    CHECK(post(relay->ingestPort(), 10).status == 202);
    CHECK(acked.countIn(copies[0].string()) == acked.size());
    CHECK(integrity(copies[0].string()) == "ok");
  }
}

namespace {

constexpr const char* kWritten = "written by another process";

// `cp source target` over a live file: same inode, its bytes replaced (open
// with O_TRUNC, write, close), which is what cp does to an existing target.
void copyOver(const std::string& source, const std::string& target) {
  const std::string bytes = test::readFile(source);
  const int fd = ::open(target.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

// `truncate -s0 file`.
void truncateToZero(const std::string& path) {
  REQUIRE(::truncate(path.c_str(), 0) == 0);
}

}  // namespace

TEST_CASE(
    "journal files written in place under the running relay: 503 with the reason, saved, put back, nothing lost") {
  test::TempDir dir;
  LogCapture log(dir.file("relay.log"));
  test::Sink sink;
  const fs::path data = dir.path() / "data";
  const std::string journal = (data / "relay.db").string();
  const std::string ini = relayIni(journal, sink.url());
  const std::string other = dir.file("other.db");  // a backup, say: another valid journal
  { journal::Journal created(other, {}); }
  const std::string other_bytes = test::readFile(other);
  auto relay = test::startRelay(ini);
  Acked acked;
  for (std::size_t i = 0; i < 5; ++i) acked.add(post(relay->ingestPort(), i));
  REQUIRE(fs::file_size(journal + "-wal") > 0);  // the 5 batches are only there: not checkpointed yet

  std::string fault_name;
  std::string batches;
  std::function<void()> fault;
  SUBCASE("cp other.db relay.db over the live file") {
    fault_name = "relay.db was written by another process";
    batches = fmt::format("affected_batches=1..{}", acked.ids.back());
    fault = [other, journal] { copyOver(other, journal); };
  }
  SUBCASE("truncate -s0 relay.db-wal") {
    fault_name = "relay.db-wal was written by another process";
    batches = fmt::format("affected_batches={}..{}", acked.ids.front(), acked.ids.back());
    fault = [journal] { truncateToZero(journal + "-wal"); };
  }

  const auto group = faultInGroup(*relay, fault);
  CHECK(group.fault.status == journal::WriteOutcome::Status::StorageFailure);
  CHECK(group.fault.error.find(kWritten) != std::string::npos);
  CHECK(group.batch.status == 503);
  CHECK(group.batch.body.find(kWritten) != std::string::npos);
  const auto newline = group.batch.body.find('\n');
  CHECK((newline == std::string::npos || newline == group.batch.body.size() - 1));  // one line
  CHECK(group.readiness.status == 503);
  CHECK(group.readiness.body.find(kWritten) != std::string::npos);
  const std::string logged = log.text();
  CHECK(logged.find("journal files were written by another process while the relay held them") != std::string::npos);
  CHECK(logged.find(fault_name) != std::string::npos);
  CHECK(logged.find(batches) != std::string::npos);
  CHECK(logged.find("journal put back at its path from the saved copy") != std::string::npos);
  CHECK(test::readFile(other) == other_bytes);  // the source of the copy is not the relay's

  // Put back at once: writes go on, readiness with them, no copy left over.
  for (std::size_t i = 5; i < 10; ++i) acked.add(post(relay->ingestPort(), i));
  CHECK(ready(*relay).status == 200);
  CHECK(savedCopies(data).empty());

  relay.reset();
  relay = test::startRelay(ini);
  CHECK(integrity(journal) == "ok");
  CHECK(acked.countIn(journal) == acked.size());
  CHECK(post(relay->ingestPort(), 99).status == 202);
  CHECK(test::waitUntil(
      [&] { return acked.countIn(journal, "deliveries", " AND state = 'delivered'") == acked.size(); }, 10s));
}

TEST_CASE("journal files written in place while nothing writes: noticed within about a second, nothing lost") {
  test::TempDir dir;
  LogCapture log(dir.file("relay.log"));
  test::Sink sink;
  const std::string journal = dir.file("relay.db");
  const std::string ini = relayIni(journal, sink.url());
  const std::string other = dir.file("other.db");
  { journal::Journal created(other, {}); }
  auto relay = test::startRelay(ini);
  relay->delivery().stop();  // nothing but the idle check touches the journal
  Acked acked;
  for (std::size_t i = 0; i < 5; ++i) acked.add(post(relay->ingestPort(), i));

  std::function<void()> fault;
  SUBCASE("cp other.db relay.db") {
    fault = [other, journal] { copyOver(other, journal); };
  }
  SUBCASE("truncate -s0 relay.db-wal") {
    fault = [journal] { truncateToZero(journal + "-wal"); };
  }
  const auto made = std::chrono::steady_clock::now();
  fault();
  CHECK(test::waitUntil([&] { return log.text().find("journal put back at its path") != std::string::npos; }, 3s));
  const auto noticed = std::chrono::steady_clock::now() - made;
  MESSAGE("noticed and put back " << std::chrono::duration_cast<std::chrono::milliseconds>(noticed).count()
                                  << " ms after the write, without a request");
  CHECK(noticed < 2s);  // the idle check runs every second; the rest is the copy (margin for a loaded CI)
  CHECK(log.text().find(kWritten) != std::string::npos);
  acked.add(post(relay->ingestPort(), 5));
  relay.reset();
  CHECK(integrity(journal) == "ok");
  CHECK(acked.countIn(journal) == acked.size());
}

TEST_CASE("the -wal truncated between two writes: the next one refused, the first kept") {
  test::TempDir dir;
  LoneWriter lone(dir.file("w.db"));
  REQUIRE(lone.put("before").committed());
  truncateToZero(lone.path + "-wal");  // "before" was only there
  const auto refused = lone.put("refused");
  CHECK(refused.status == journal::WriteOutcome::Status::StorageFailure);
  CHECK(refused.error.find(kWritten) != std::string::npos);
  REQUIRE(lone.put("after").committed());
  CHECK(lone.count("before") == 1);
  CHECK(lone.count("refused") == 0);
  CHECK(lone.count("after") == 1);
}

TEST_CASE("a journal overwritten in place where the relay cannot save it whole: writes refused, nothing removed") {
  // The writer's connection has read little of a large journal when another
  // file is copied over it, so the copy it saves is mostly that file's pages
  // (or none): it must not be served as the journal.
  test::TempDir dir;
  const std::string path = dir.file("w.db");
  {
    journal::Journal filled(path, {});
    filled.db().exec("BEGIN");
    for (int i = 0; i < 200; ++i)
      filled.db().exec(fmt::format("INSERT INTO meta (key, value) VALUES ('old{}', zeroblob(8000))", i));
    filled.db().exec("COMMIT");
  }
  const std::string other = dir.file("other.db");
  { journal::Journal created(other, {}); }
  LoneWriter lone(path);
  copyOver(other, path);
  LogCapture log(dir.file("relay.log"));
  const auto refused = lone.put("refused");
  CHECK(log.text().find("cannot be saved whole") != std::string::npos);
  CHECK(log.text().find("change=\"w.db was written by another process\"") != std::string::npos);
  CHECK(refused.status == journal::WriteOutcome::Status::StorageFailure);
  CHECK(refused.error.find("the relay's copy is incomplete; writes refused until an operator acts") !=
        std::string::npos);
  const auto again = lone.put("again");
  CHECK(again.status == journal::WriteOutcome::Status::StorageFailure);
  CHECK(again.error == refused.error);
  CHECK(test::readFile(path) == test::readFile(other));  // left for the operator
  // The writer's -wal moved aside: the file at the path opens alone, whole.
  CHECK(!fs::exists(path + "-wal"));
  CHECK(log.text().find("wal=" + path + "-wal.saved-") != std::string::npos);
  lone.writer.reset();
  CHECK(integrity(path) == "ok");
  CHECK(lone.count("old1") == 0);  // other.db's rows, not w.db's
}

TEST_CASE("the writer's own checkpoints and -wal restarts, and readers, are not taken for another writer") {
  // Big rows, so that the -wal passes SQLite's 1,000-page checkpoint several
  // times and restarts; a read-only reader (what the CLI and the dispatcher
  // open) between writes. A false alarm would fail a write.
  test::TempDir dir;
  LoneWriter lone(dir.file("w.db"));
  const std::string row(200 * 1024, 'x');
  std::size_t restarts = 0;
  std::string last_salt;
  for (std::size_t i = 0; i < 60; ++i) {
    const auto outcome = lone.writer
                             ->submit([&row, i](journal::Journal& journal) {
                               journal.db()
                                   .prepare("INSERT INTO meta (key, value) VALUES (?, ?)")
                                   .bind(1, fmt::format("big{}", i))
                                   .bind(2, std::string_view(row))
                                   .run();
                               return std::int64_t{0};
                             })
                             .get();
    REQUIRE_MESSAGE(outcome.committed(), outcome.error);
    {
      journal::Journal reader(lone.path, journal::JournalOptions{0, true});
      CHECK(reader.count("meta") >= 1);
    }
    const std::string salt = test::readFile(lone.path + "-wal").substr(16, 4);
    if (!last_salt.empty() && salt != last_salt) ++restarts;
    last_salt = salt;
  }
  CHECK(restarts >= 2);
  CHECK(lone.writer->metrics().file_faults.value() == 0);
  CHECK(test::queryInt(lone.path, "SELECT count(*) FROM meta WHERE key LIKE 'big%'") == 60);
}

TEST_CASE("the journal's lock file removed: taken again, so a second relay cannot become a second writer") {
  test::TempDir dir;
  LogCapture log(dir.file("relay.log"));
  test::Sink sink;
  const std::string journal = dir.file("relay.db");
  const std::string ini = relayIni(journal, sink.url());
  auto relay = test::startRelay(ini);
  Acked acked;
  acked.add(post(relay->ingestPort(), 0));

  SUBCASE("nobody else took it: locked again at the next write") {
    fs::remove(journal + ".lock");
    acked.add(post(relay->ingestPort(), 1));
    CHECK(fs::exists(journal + ".lock"));
    CHECK(journal::JournalLock::readPublished(journal).find("admin=" + relay->adminAddress()) != std::string::npos);
    CHECK_THROWS_WITH_AS(relay::Relay(config::parseSettings(ini, "test.ini")), doctest::Contains("in use"),
                         std::runtime_error);
    CHECK(log.text().find("journal lock file was removed or replaced under the relay; locked again") !=
          std::string::npos);
  }
  SUBCASE("another process took the new lock first: 503 until it lets go") {
    std::unique_ptr<journal::JournalLock> other;
    {
      WriterGate gate(relay->writer());  // so that the relay cannot take it again first
      fs::remove(journal + ".lock");
      other = std::make_unique<journal::JournalLock>(journal);  // its own open file: flock conflicts
    }
    REQUIRE(other->held());
    const auto refused = post(relay->ingestPort(), 1);
    CHECK(refused.status == 503);
    CHECK(refused.body.find("journal lock is held by another process") != std::string::npos);
    const auto readiness = ready(*relay);
    CHECK(readiness.status == 503);
    CHECK(readiness.body.find("journal lock is held by another process") != std::string::npos);
    CHECK(log.text().find("journal lock lost; writes refused until it is held again") != std::string::npos);
    other.reset();
    acked.add(post(relay->ingestPort(), 2));
    CHECK(ready(*relay).status == 200);
    CHECK(journal::JournalLock::readPublished(journal).find("admin=" + relay->adminAddress()) != std::string::npos);
  }
  relay.reset();
  CHECK(acked.countIn(journal) == acked.size());
}

TEST_CASE("journal made read-only, then writable again: 503 meanwhile, writes again without a restart") {
  test::TempDir dir;
  if (!immutableAvailable(dir)) return;
  LogCapture log(dir.file("relay.log"));
  test::Sink sink;
  const std::string journal = dir.file("relay.db");
  const std::string ini = relayIni(journal, sink.url());
  auto relay = test::startRelay(ini);
  Acked acked;
  for (std::size_t i = 0; i < 3; ++i) acked.add(post(relay->ingestPort(), i));

  {
    Immutable read_only({journal, journal + "-wal"});
    REQUIRE(read_only.error().empty());
    for (std::size_t i = 0; i < 3; ++i) CHECK(post(relay->ingestPort(), 100 + i).status == 503);
    const auto readiness = ready(*relay);
    CHECK(readiness.status == 503);
    CHECK(readiness.body.find("journal is read-only") != std::string::npos);
    CHECK(log.text().find("cannot reopen journal") != std::string::npos);
  }
  // Writable again: the next write reopens the journal and commits.
  acked.add(post(relay->ingestPort(), 3));
  CHECK(ready(*relay).status == 200);
  for (std::size_t i = 4; i < 8; ++i) acked.add(post(relay->ingestPort(), i));

  relay.reset();
  relay = test::startRelay(ini);
  CHECK(acked.countIn(journal) == acked.size());
  CHECK(integrity(journal) == "ok");
}

TEST_CASE("a journal that is read-only at start-up fails start-up with the reason") {
  test::TempDir dir;
  if (!immutableAvailable(dir)) return;
  const std::string journal = dir.file("relay.db");
  { journal::Journal created(journal, {}); }
  Immutable read_only({journal});
  REQUIRE(read_only.error().empty());
  CHECK_THROWS_WITH_AS(test::startRelay(relayIni(journal, "http://127.0.0.1:9/")), doctest::Contains("read-only"),
                       journal::SqliteError);
}

TEST_CASE("an attempt whose record cannot be written stays in flight, and is recorded once the journal is writable") {
  // The worker does not wait for its record's commit (delivery/engine.h): the
  // row must stay in_flight (no pass may claim it again) until the record is
  // durable, the failed record must be kept and retried, and the target must
  // get the batch exactly once.
  test::TempDir dir;
  if (!immutableAvailable(dir)) return;
  LogCapture log(dir.file("relay.log"));
  test::Sink sink;
  sink.setScript([](const test::SinkRequest&, std::size_t) {
    test::SinkResponse answer;
    answer.hang = 1500ms;  // the journal is made read-only meanwhile
    return answer;
  });
  const std::string journal = dir.file("relay.db");
  auto relay = test::startRelay(relayIni(journal, sink.url()));
  REQUIRE(post(relay->ingestPort(), 0).status == 202);
  REQUIRE(sink.waitForRequests(1, 5s));
  const auto state = [&] { return test::queryText(journal, "SELECT state || ':' || attempts FROM deliveries"); };
  {
    Immutable read_only({journal, journal + "-wal"});
    REQUIRE(read_only.error().empty());
    CHECK(test::waitUntil([&] { return log.text().find("cannot record an attempt; retrying") != std::string::npos; },
                          10s));
    std::this_thread::sleep_for(1500ms);  // a retry or two, still refused
    CHECK(state() == "in_flight:0");
    CHECK(test::queryInt(journal, "SELECT count(*) FROM attempts") == 0);
  }
  CHECK(test::waitUntil([&] { return state() == "delivered:1"; }, 10s));
  CHECK(test::queryText(journal, "SELECT group_concat(outcome) FROM attempts") == "delivered");
  relay.reset();
  CHECK(sink.requests().size() == 1);
}

TEST_CASE("a journal put back from a backup gives no id out twice: batch ids go on above those acknowledged") {
  test::TempDir dir;
  const std::string journal = dir.file("relay.db");
  const std::string ini = test::relayConfig(journal);
  const auto postedId = [](relay::Relay& relay) {
    const auto answer = test::httpRequest(relay.ingestPort(), "POST", test::kIngestUri, test::generalBatch(1));
    REQUIRE(answer.status == 202);
    std::smatch match;
    REQUIRE(std::regex_search(answer.body, match, std::regex(R"("batch":(\d+))")));
    return std::stoll(match[1]);
  };
  {
    auto relay = test::startRelay(ini);
    CHECK(postedId(*relay) == 1);
    relay->stop();
  }
  // The backup an operator takes (the relay stopped: the -wal is checkpointed).
  fs::copy_file(journal, dir.file("backup.db"));
  {
    auto relay = test::startRelay(ini);
    CHECK(postedId(*relay) == 2);
    CHECK(postedId(*relay) == 3);  // acknowledged, webhook-id msg_<journal>_3
    relay->stop();
  }
  // Put back as the README says: the relay stopped, the backup at the path.
  for (const char* suffix : {"-wal", "-shm"}) fs::remove(journal + suffix);
  fs::copy_file(dir.file("backup.db"), journal, fs::copy_options::overwrite_existing);
  auto relay = test::startRelay(ini);
  CHECK(postedId(*relay) == 4);  // not 2 again
  CHECK(test::readFile(journal + ".ids")
            .rfind(test::queryText(journal, "SELECT value FROM meta WHERE key = 'journal_id'") + " 4 ", 0) == 0);
}
