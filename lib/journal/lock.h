// Who may write the journal. The serving process holds an exclusive advisory
// lock (flock) on "<journal>.lock" for its whole life; a CLI command that
// changes the journal takes the same lock. So there is one writer at a time
// (SQLite 3.40's WAL-reset bug needs two), and a command finds out without
// being told whether a relay is running: when the lock is taken, it asks the
// relay's admin listener instead. The kernel drops the lock when the holder
// dies, kill -9 included.
//
// The lock file is created 0640: members of the relay's group (its operators,
// see admin/credential.h) open it read-only to learn the admin address.
//
// The lock is on a file, and a file can be removed (`rm relay.db*`) while the
// relay holds it: a second process would then create a fresh file and take a
// lock of its own. So the holder checks, before each write (reclaim()), that
// the file at the path is still the one it locked, and otherwise locks the
// file now at the path (creating it), or reports that another process holds it.
#pragma once

#include <sys/types.h>

#include <mutex>
#include <string>

namespace mews::journal {

class JournalLock {
 public:
  // Tries once; held() says whether it was taken. Throws std::runtime_error
  // when the lock file cannot be opened (permissions, missing directory).
  explicit JournalLock(const std::string& journal_path);
  ~JournalLock();
  JournalLock(const JournalLock&) = delete;
  JournalLock& operator=(const JournalLock&) = delete;
  [[nodiscard]] bool held() const { return held_; }
  [[nodiscard]] const std::string& path() const { return path_; }
  // The holder writes where it can be reached ("admin=127.0.0.1:9090"), so a
  // command that finds the lock taken knows where to send its request.
  void publish(const std::string& text);
  // What the holder published; empty when nothing was.
  static std::string readPublished(const std::string& journal_path);

  struct Check {
    enum class State { Held, Reclaimed, Lost } state = State::Held;
    std::string detail;  // for the log when not Held: what happened, with the path
  };
  // Held: the file at the path is the one this object locked. Reclaimed: it
  // was removed or replaced, and the file now at the path is locked (and what
  // was published written again). Lost: another process holds the lock on the
  // file at the path, or it cannot be opened. Only for a held lock; thread-safe.
  Check reclaim();

 private:
  void write(const std::string& text);

  std::mutex mutex_;
  std::string path_;
  int fd_ = -1;
  // The locked file's identity, to compare with the path's in one stat call.
  dev_t device_ = 0;
  ino_t inode_ = 0;
  bool held_ = false;
  std::string published_;
};

}  // namespace mews::journal
