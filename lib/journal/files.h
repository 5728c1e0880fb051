// The journal's files on disk, and whether they are still the ones a
// connection holds. A journal at `path` is three files: `path`, `path-wal` and
// `path-shm`. An open connection keeps writing to the files it opened even
// when they were removed or renamed (`rm relay.db*`, a mistaken `mv`): SQLite
// in WAL mode does not notice, and the next process to open `path` finds
// nothing, a stale file, or another journal. So the writer records the files'
// identity (device and inode) when it opens them and compares it with what is
// at the path now (a few stat calls), and when they differ it saves what the
// connection still holds (see saveCopy) before it lets go of it.
//
// An inode number is only a safe identity while someone holds the file open:
// the kernel cannot reuse it before that. So a JournalFiles recorded for a
// connection is only compared while that connection is open.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace mews::journal {

class Database;

// The suffixes SQLite adds in WAL mode, the database file's own first ("").
inline constexpr std::array<const char*, 3> kJournalFileSuffixes{"", "-wal", "-shm"};

struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  bool operator==(const FileIdentity&) const = default;
};

// What is at a path now; nullopt when nothing is (or it cannot be told).
std::optional<FileIdentity> identityAt(const std::string& path);

class JournalFiles {
 public:
  JournalFiles() = default;
  // The files at `path` now (call it right after the connection opened them).
  static JournalFiles at(const std::string& path);

  // Empty when every recorded file is still the one at its path; else what
  // changed, e.g. "relay.db-wal was removed" or "relay.db is another file".
  [[nodiscard]] std::string changes() const;
  // True while the database file at the path is the recorded one (what a
  // reader needs to know to follow the writer to a restored journal).
  [[nodiscard]] bool databaseAtPath() const;
  // The recorded files still at their path. Those files are stale copies once
  // their content has been saved elsewhere; removing them keeps a stale -wal
  // from being applied to whatever database is put at the path later. Only
  // while the connection that holds them is open (see above).
  void removeRecordedFromPath() const;
  // The first of the journal's files present at `path`, or "" when none is.
  static std::string firstPresent(const std::string& path);

 private:
  std::string path_;
  std::array<std::optional<FileIdentity>, kJournalFileSuffixes.size()> identities_{};
};

// A consistent copy of everything `source` holds (its own view, WAL included,
// through the file descriptors it has open: it works on files that were
// removed) in a new file `<path>.saved-<UTC time>` beside `path`, fsynced with
// its directory. Returns the copy's path. Throws SqliteError or
// std::runtime_error (no space, no directory); then nothing is left behind.
std::string saveCopy(Database& source, const std::string& path, std::int64_t now_ms);

// Moves `copy` to `path` when nothing is at `path` (never replaces a file) and
// fsyncs the directory. False, with `copy` untouched, when a file is there.
// Throws std::runtime_error on other failures.
bool placeCopy(const std::string& copy, const std::string& path);

// fsync of the directory holding `path`: makes a created, renamed or removed
// name durable. Throws std::runtime_error.
void syncDirectoryOf(const std::string& path);

}  // namespace mews::journal
