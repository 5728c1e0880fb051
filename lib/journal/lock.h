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
#pragma once

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

 private:
  std::string path_;
  int fd_ = -1;
  bool held_ = false;
};

}  // namespace mews::journal
