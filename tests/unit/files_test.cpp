// journal/files.h on real files in a temporary directory, with a real SQLite
// journal (Journal, WAL mode): the files' identity (a file removed, renamed
// away or replaced at the path is reported; one that was not there at open is
// not), what removeRecordedFromPath and firstPresent see, the written-in-place
// detection (settle and rewrites: the database file or its -wal written,
// truncated or given another header by another process, told from the
// writer's own commits and checkpoints, and the -wal restarts), and the
// copies the writer saves and puts back (saveCopy, checkCopy, placeCopy,
// moveWalAside, syncDirectoryOf). SQLite only: the doctest suite "sqlite".
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "journal/files.h"
#include "journal/journal.h"
#include "journal/sqlite.h"
#include "support/test_support.h"

using namespace mews;
using namespace mews::journal;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kT0 = 1'795'860'000'000;  // 2026-11-28T10:00:00.000Z
constexpr const char* kCompactT0 = "20261128T100000.000Z";

// Runs `change` in a child process: "another process", whose descriptors and
// POSIX locks are not the test's (closing a descriptor of our own on the
// database file would drop the locks SQLite holds on it for this process).
void inAnotherProcess(const std::function<bool()>& change) {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(change() ? 0 : 1);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}

// Writes `bytes` at `offset` of the file at `path`, in place (same inode).
void writeInPlace(const std::string& path, off_t offset, const std::vector<unsigned char>& bytes) {
  inAnotherProcess([&] {
    const int fd = ::open(path.c_str(), O_WRONLY);
    const bool ok = fd >= 0 && ::pwrite(fd, bytes.data(), bytes.size(), offset) == static_cast<ssize_t>(bytes.size());
    return ::close(fd) == 0 && ok;
  });
}
void truncateInPlace(const std::string& path, off_t size) {
  inAnotherProcess([&] { return ::truncate(path.c_str(), size) == 0; });
}
std::vector<unsigned char> readBytes(const std::string& path, off_t offset, std::size_t count) {
  std::vector<unsigned char> bytes(count);
  const int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  const auto got = ::pread(fd, bytes.data(), count, offset);
  ::close(fd);
  REQUIRE(got == static_cast<ssize_t>(count));
  return bytes;
}

// A journal in WAL mode with a batch committed, its files recorded and settled.
struct OpenJournal {
  test::TempDir dir;
  std::string path = dir.file("relay.db");
  Journal journal{path, {}};
  std::int64_t received = 0;

  OpenJournal() {
    write();
    REQUIRE(journal.files().settle(journal.sqlite(), false).empty());
  }
  // One committed batch (the relay's own write).
  void write() {
    IncomingBatch batch;
    batch.received_at_ms = kT0 + received++;
    batch.content_type = "application/json";
    batch.body = test::generalBatch(1);
    batch.summary.kind = BatchKind::General;
    batch.summary.events.push_back({"ReservationUpdated", std::nullopt});
    Transaction transaction(journal.db());
    journal.insertBatch(batch);
    transaction.commit();
  }
  JournalFiles& files() { return journal.files(); }
  std::string settle(bool checkpointed = false) { return files().settle(journal.sqlite(), checkpointed); }
  std::string rewrites(bool database_only = false) { return files().rewrites(journal.sqlite(), database_only); }
  // After the test changed the files under it: close without checkpointing
  // into, or removing, whatever is at the path now.
  void keepFiles() { journal.sqlite().keepFilesOnClose(); }
};

std::int64_t batchesIn(const std::string& path) {
  Database copy(path, Database::Mode::ReadOnly);
  return copy.queryInt("SELECT count(*) FROM batches");
}

}  // namespace

TEST_SUITE("sqlite") {
  TEST_CASE("identityAt: device and inode of what is at a path, nothing when nothing is") {
    test::TempDir dir;
    const std::string a = dir.file("a");
    CHECK_FALSE(identityAt(a).has_value());
    test::writeFile(a, "x");
    const auto first = identityAt(a);
    REQUIRE(first.has_value());
    CHECK(identityAt(a) == first);
    fs::create_hard_link(a, dir.file("link"));
    CHECK(identityAt(dir.file("link")) == first);  // the same file by another name
    test::writeFile(dir.file("b"), "x");
    CHECK(identityAt(dir.file("b")) != first);  // same bytes, another file
    fs::rename(dir.file("b"), a);
    CHECK(identityAt(a) != first);
  }

  TEST_CASE("changes: each recorded file removed, renamed away or replaced at its path is named") {
    OpenJournal j;
    REQUIRE(fs::exists(j.path + "-wal"));
    REQUIRE(fs::exists(j.path + "-shm"));
    CHECK(j.files().changes().empty());
    CHECK(j.files().databaseAtPath());
    CHECK_FALSE(j.journal.anotherFileAtPath());
    j.keepFiles();

    SUBCASE("the -wal renamed away (a mistaken mv)") {
      fs::rename(j.path + "-wal", j.dir.file("elsewhere"));
      CHECK(j.files().changes() == "relay.db-wal was removed or renamed");
      CHECK(j.files().databaseAtPath());
    }
    SUBCASE("rm relay.db*") {
      for (const char* suffix : kJournalFileSuffixes) fs::remove(j.path + suffix);
      CHECK(
          j.files().changes() ==
          "relay.db was removed or renamed; relay.db-wal was removed or renamed; relay.db-shm was removed or renamed");
      CHECK_FALSE(j.files().databaseAtPath());
    }
    SUBCASE("another database file at the path (a restore over the live one)") {
      test::writeFile(j.dir.file("backup.db"), "not the journal");
      fs::rename(j.dir.file("backup.db"), j.path);
      CHECK(j.files().changes() == "relay.db is another file");
      CHECK_FALSE(j.files().databaseAtPath());
      CHECK(j.journal.anotherFileAtPath());
    }
  }

  TEST_CASE("changes: a file that was not there when recorded holds nothing to lose") {
    test::TempDir dir;
    const std::string path = dir.file("relay.db");
    test::writeFile(path, "");
    const auto files = JournalFiles::at(path);
    CHECK(files.databaseAtPath());
    test::writeFile(path + "-wal", "appeared later");
    CHECK(files.changes().empty());
    fs::remove(path);
    CHECK(files.changes() == "relay.db was removed or renamed");
    // Nothing recorded: no database file is "the recorded one".
    CHECK_FALSE(JournalFiles().databaseAtPath());
    CHECK_FALSE(JournalFiles::at(dir.file("none.db")).databaseAtPath());
  }

  TEST_CASE("removeRecordedFromPath: the recorded files go, a file someone else put at the path stays") {
    OpenJournal j;
    j.keepFiles();
    test::writeFile(j.dir.file("restored.db"), "restored");
    fs::rename(j.dir.file("restored.db"), j.path);
    j.files().removeRecordedFromPath();
    CHECK(test::readFile(j.path) == "restored");
    CHECK_FALSE(fs::exists(j.path + "-wal"));
    CHECK_FALSE(fs::exists(j.path + "-shm"));
    CHECK(JournalFiles::firstPresent(j.path) == j.path);
  }

  TEST_CASE("firstPresent: the first of the journal's files at a path, database file first") {
    test::TempDir dir;
    const std::string path = dir.file("relay.db");
    CHECK(JournalFiles::firstPresent(path).empty());
    test::writeFile(path + "-shm", "");
    CHECK(JournalFiles::firstPresent(path) == path + "-shm");
    test::writeFile(path + "-wal", "");
    CHECK(JournalFiles::firstPresent(path) == path + "-wal");
    test::writeFile(path, "");
    CHECK(JournalFiles::firstPresent(path) == path);
  }

  TEST_CASE("settle and rewrites: the writer's own commits are not changes") {
    OpenJournal j;
    CHECK(j.rewrites().empty());
    j.write();
    // Between the commit and its settle the -wal has grown: database_only
    // looks at the database file alone.
    CHECK(j.rewrites() == "relay.db-wal was written by another process");
    CHECK(j.rewrites(/*database_only=*/true).empty());
    CHECK(j.settle().empty());
    CHECK(j.rewrites().empty());
    CHECK_FALSE(j.files().takeWalRestart());  // it grew: not restarted
  }

  TEST_CASE("settle: a checkpoint writes the database file; the next commit restarts the -wal with new salts") {
    OpenJournal j;
    const auto header = readBytes(j.path + "-wal", 0, 32);
    REQUIRE(j.journal.db().queryInt("PRAGMA wal_checkpoint(RESTART)") == 0);
    CHECK(j.rewrites(true) == "relay.db was written by another process");  // unsettled, a checkpoint is a write
    CHECK(j.settle(/*checkpointed=*/true).empty());
    j.write();
    REQUIRE(readBytes(j.path + "-wal", 0, 32) != header);
    CHECK(j.settle().empty());  // a restart by the writer's own commit: its next salts
    CHECK(j.files().takeWalRestart());
    CHECK_FALSE(j.files().takeWalRestart());  // once
    j.write();
    CHECK(j.settle().empty());
    CHECK_FALSE(j.files().takeWalRestart());
  }

  TEST_CASE("settle and rewrites: the files written in place by another process") {
    OpenJournal j;
    j.keepFiles();

    SUBCASE("the database file (cp backup.db relay.db over the live one)") {
      writeInPlace(j.path, 24, {0xde, 0xad, 0xbe, 0xef});  // the change counter
      CHECK(j.rewrites() == "relay.db was written by another process");
      CHECK(j.rewrites(true) == "relay.db was written by another process");
      CHECK(j.settle() == "relay.db was written by another process");
      CHECK(j.settle().empty());  // recorded as it is now
    }
    SUBCASE("the database file, when a checkpoint ran: the writer's own") {
      writeInPlace(j.path, 24, {0xde, 0xad, 0xbe, 0xef});
      CHECK(j.settle(/*checkpointed=*/true).empty());
    }
    SUBCASE("the -wal truncated (truncate -s0 relay.db-wal)") {
      truncateInPlace(j.path + "-wal", 0);
      CHECK(j.rewrites() == "relay.db-wal was truncated by another process");
      CHECK(j.rewrites(true).empty());
      CHECK(j.settle() == "relay.db-wal was truncated by another process");
    }
    SUBCASE("the -wal's header zeroed, its size kept") {
      writeInPlace(j.path + "-wal", 0, std::vector<unsigned char>(32, 0));
      CHECK(j.rewrites() == "relay.db-wal was written by another process");
      CHECK(j.settle() == "relay.db-wal was written by another process (its header is gone)");
    }
    SUBCASE("the -wal given a valid header that is not the writer's next (another journal's)") {
      auto header = readBytes(j.path + "-wal", 0, 32);
      header[15] = static_cast<unsigned char>(header[15] + 7);  // checkpoint sequence
      header[19] = static_cast<unsigned char>(header[19] + 7);  // first salt
      writeInPlace(j.path + "-wal", 0, header);
      CHECK(j.settle() == "relay.db-wal was written by another process (its header is not the relay's)");
    }
    SUBCASE("both, in one message") {
      writeInPlace(j.path, 24, {1, 2, 3, 4});
      truncateInPlace(j.path + "-wal", 0);
      CHECK(j.settle() == "relay.db was written by another process; relay.db-wal was truncated by another process");
    }
    SUBCASE("a file no longer at its path is changes()'s to report, not a rewrite") {
      test::writeFile(j.dir.file("other"), "x");
      fs::rename(j.dir.file("other"), j.path);
      CHECK(j.rewrites().empty());
      CHECK(j.files().changes() == "relay.db is another file");
    }
  }

  TEST_CASE("moveWalAside: the recorded -wal to <path>-wal.saved-<time>, the -shm removed") {
    OpenJournal j;
    j.keepFiles();
    const auto wal_bytes = test::readFile(j.path + "-wal");
    const std::string aside = j.files().moveWalAside(kT0);
    CHECK(aside == j.path + "-wal.saved-" + kCompactT0);
    CHECK(test::readFile(aside) == wal_bytes);
    CHECK_FALSE(fs::exists(j.path + "-wal"));
    CHECK_FALSE(fs::exists(j.path + "-shm"));
    CHECK(fs::exists(j.path));
    // Nothing recorded at the path any more: nothing moved.
    CHECK(j.files().moveWalAside(kT0 + 1).empty());
    test::writeFile(j.path + "-wal", "another journal's");
    CHECK(j.files().moveWalAside(kT0 + 2).empty());
    CHECK(test::readFile(j.path + "-wal") == "another journal's");
  }

  TEST_CASE("saveCopy: everything the connection holds, WAL included, even with its files removed") {
    OpenJournal j;
    j.write();
    j.write();  // three batches, all in the -wal (no checkpoint yet)
    REQUIRE(j.journal.count("batches") == 3);
    j.keepFiles();
    for (const char* suffix : kJournalFileSuffixes) fs::remove(j.path + suffix);  // rm relay.db*

    const std::string copy = saveCopy(j.journal.sqlite(), j.path, kT0);
    CHECK(copy == j.path + ".saved-" + kCompactT0);
    CHECK(checkCopy(copy) == "ok");
    CHECK(batchesIn(copy) == 3);
    CHECK_FALSE(fs::exists(copy + "-wal"));  // one self-contained file
    // Never over an existing file: the same millisecond gets another name.
    const std::string second = saveCopy(j.journal.sqlite(), j.path, kT0);
    CHECK(second == copy + "-1");
    CHECK(batchesIn(second) == 3);

    // Put back where nothing is; never over a file that is there.
    CHECK(placeCopy(copy, j.path));
    CHECK_FALSE(fs::exists(copy));
    CHECK(batchesIn(j.path) == 3);
    CHECK_FALSE(placeCopy(second, j.path));
    CHECK(fs::exists(second));
    CHECK(batchesIn(j.path) == 3);
    CHECK_THROWS_AS(placeCopy(j.dir.file("missing"), j.dir.file("elsewhere.db")), std::runtime_error);
  }

  TEST_CASE("saveCopy: the directory renamed away is made again; an impossible place throws") {
    test::TempDir outer;
    const std::string place = (outer.path() / "data").string();
    fs::create_directory(place);
    const std::string path = place + "/relay.db";
    {
      Journal journal(path, {});
      journal.sqlite().keepFilesOnClose();
      fs::rename(place, outer.file("moved"));
      const std::string copy = saveCopy(journal.sqlite(), path, kT0);
      CHECK(copy == path + ".saved-" + kCompactT0);
      CHECK(checkCopy(copy) == "ok");

      test::writeFile(outer.file("a-file"), "");
      CHECK_THROWS_AS(saveCopy(journal.sqlite(), outer.file("a-file") + "/relay.db", kT0), std::runtime_error);
    }
    CHECK(fs::is_regular_file(outer.file("a-file")));
  }

  TEST_CASE("checkCopy: ok for a sound copy, what is wrong otherwise") {
    test::TempDir dir;
    test::writeFile(dir.file("garbage.db"), std::string(4096, 'x'));
    const std::string garbage = checkCopy(dir.file("garbage.db"));
    CHECK(garbage != "ok");
    CHECK_FALSE(garbage.empty());
    const std::string missing = checkCopy(dir.file("missing.db"));
    CHECK(missing != "ok");
    CHECK_FALSE(fs::exists(dir.file("missing.db")));  // read-only: not created
  }

  TEST_CASE("syncDirectoryOf: the directory holding a path; a missing one throws") {
    test::TempDir dir;
    CHECK_NOTHROW(syncDirectoryOf(dir.file("relay.db")));
    CHECK_THROWS_AS(syncDirectoryOf(dir.file("missing/relay.db")), std::runtime_error);
  }
}
