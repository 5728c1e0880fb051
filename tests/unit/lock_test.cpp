// journal/lock.h: the one-writer lock on "<journal>.lock" (SQLite only).
// Taken once, refused to a second descriptor or another process while held,
// released when its holder goes (kill -9 included); what the holder publishes
// is read back; a removed or replaced lock file is locked again or reported lost.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "journal/lock.h"
#include "support/test_support.h"

using namespace mews;
using mews::journal::JournalLock;

namespace {

// Another process holding the lock on `journal_path` until killed.
class OtherHolder {
 public:
  explicit OtherHolder(const std::string& journal_path) {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::close(ready[0]);
      char answer = 'e';
      try {
        static JournalLock lock(journal_path);  // kept until the process is killed
        answer = lock.held() ? 'y' : 'n';
      } catch (...) {
      }
      (void)!::write(ready[1], &answer, 1);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char answer = 0;
    REQUIRE(::read(ready[0], &answer, 1) == 1);
    ::close(ready[0]);
    held_ = answer == 'y';
  }
  ~OtherHolder() { kill(); }
  [[nodiscard]] bool held() const { return held_; }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  bool held_ = false;
};

}  // namespace

TEST_SUITE("sqlite") {
  TEST_CASE("taken: on <journal>.lock, created, held while the object lives and free after") {
    test::TempDir dir;
    const std::string journal = dir.file("relay.db");
    {
      JournalLock lock(journal);
      CHECK(lock.held());
      CHECK(lock.path() == journal + ".lock");
      CHECK(std::filesystem::exists(journal + ".lock"));
      JournalLock second(journal);  // another open file description, as another command would have
      CHECK_FALSE(second.held());
    }
    JournalLock again(journal);
    CHECK(again.held());
  }

  TEST_CASE("refused while another process holds it; free once that process is killed") {
    test::TempDir dir;
    const std::string journal = dir.file("relay.db");
    OtherHolder other(journal);
    REQUIRE(other.held());
    {
      JournalLock lock(journal);
      CHECK_FALSE(lock.held());
      // What is not held cannot be reclaimed.
      CHECK(lock.reclaim().state == JournalLock::Check::State::Lost);
    }
    other.kill();  // SIGKILL: the kernel drops the lock
    JournalLock lock(journal);
    CHECK(lock.held());
  }

  TEST_CASE("publish: what the holder wrote is read back, a shorter text replaces a longer one, 0640") {
    test::TempDir dir;
    const std::string journal = dir.file("relay.db");
    CHECK(JournalLock::readPublished(journal).empty());  // no lock file at all
    // 0640 whatever the umask (a service manager's is often 077).
    const mode_t umask_before = ::umask(077);
    JournalLock lock(journal);
    ::umask(umask_before);
    CHECK(JournalLock::readPublished(journal).empty());  // nothing published yet
    lock.publish("admin=127.0.0.1:19090");
    CHECK(JournalLock::readPublished(journal) == "admin=127.0.0.1:19090");
    lock.publish("admin=[::1]:1");
    CHECK(JournalLock::readPublished(journal) == "admin=[::1]:1");

    struct stat info {};
    REQUIRE(::stat(lock.path().c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0640);  // the relay's group reads it to find the admin address
  }

  TEST_CASE("the lock file cannot be opened: std::runtime_error naming it") {
    test::TempDir dir;
    const std::string journal = dir.file("missing/relay.db");
    try {
      JournalLock lock(journal);
      FAIL("no exception");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()).find(journal + ".lock") != std::string::npos);
    }
  }

  TEST_CASE("reclaim: Held while the file is the one locked") {
    test::TempDir dir;
    JournalLock lock(dir.file("relay.db"));
    REQUIRE(lock.held());
    const JournalLock::Check check = lock.reclaim();
    CHECK(check.state == JournalLock::Check::State::Held);
    CHECK(check.detail.empty());
  }

  TEST_CASE("reclaim: a removed lock file is created and locked again, and what was published written again") {
    test::TempDir dir;
    const std::string journal = dir.file("relay.db");
    JournalLock lock(journal);
    REQUIRE(lock.held());
    lock.publish("admin=127.0.0.1:19091");
    std::filesystem::remove(lock.path());

    const JournalLock::Check check = lock.reclaim();
    CHECK(check.state == JournalLock::Check::State::Reclaimed);
    CHECK(check.detail.find(lock.path()) != std::string::npos);
    CHECK(JournalLock::readPublished(journal) == "admin=127.0.0.1:19091");
    JournalLock second(journal);  // the new file is the one held now
    CHECK_FALSE(second.held());
    CHECK(lock.reclaim().state == JournalLock::Check::State::Held);
  }

  TEST_CASE("reclaim: a lock file replaced and taken by another process is Lost") {
    test::TempDir dir;
    const std::string journal = dir.file("relay.db");
    JournalLock lock(journal);
    REQUIRE(lock.held());
    std::filesystem::remove(lock.path());
    OtherHolder other(journal);  // creates a fresh file and locks it
    REQUIRE(other.held());

    const JournalLock::Check check = lock.reclaim();
    CHECK(check.state == JournalLock::Check::State::Lost);
    CHECK(check.detail.find("another process") != std::string::npos);
  }
}
