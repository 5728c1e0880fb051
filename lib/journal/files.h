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
//
// The same file can also be written in place by another process (`cp
// backup.db relay.db` over the live file, `truncate -s0 relay.db-wal`): same
// inode, other bytes, and the connection's WAL then points at pages that are
// not there, or at pages of another journal, so the next start finds it
// malformed. The writer is the only process that writes the database and its
// -wal (readers open them read-only and write only the -shm), so after each of
// its own transactions it records their size, modification time and header
// (settle) and, before the next one and every idle check, finds them as it left
// them (rewrites). settle itself checks that what changed during the
// transaction is what the writer's own commit can change: the -wal grows or is
// restarted with the writer's next salts (never shrinks, never loses its
// header); the database file changes only when a checkpoint ran.
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

// What a journal file holds, as far as a few cheap reads tell: its size, when
// it was last written, and its header (the database's first 100 bytes: change
// counter, page count; the -wal's first 32: checkpoint sequence and salts).
struct FileContent {
  off_t size = 0;
  std::int64_t modified_ns = 0;
  std::array<unsigned char, 100> header{};  // zeros past what the file has
  bool operator==(const FileContent&) const = default;
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

  // After a transaction of `db` (the connection these files were recorded
  // for) ended, and once right after it opened: "" when the database file and
  // its -wal changed only as that transaction can change them (`checkpointed`:
  // a checkpoint ran in it, so the database file was written too), else what
  // changed, e.g. "relay.db-wal was truncated by another process". Records
  // them as they are now either way.
  std::string settle(Database& db, bool checkpointed);
  // Between transactions: "" while the database file and its -wal are as the
  // last settle() left them, else what changed. Files that are no longer at
  // the path are changes()'s to report. `database_only`: the database file
  // alone (after a commit, before its checkpoint, the -wal has changed).
  [[nodiscard]] std::string rewrites(Database& db, bool database_only = false) const;
  // The recorded -wal, still at the path, moved aside to
  // `<path>-wal.saved-<UTC time>`, and the recorded -shm removed: so that the
  // database file at the path is opened alone next time, without frames
  // meant for another file. Returns the new name, or "" when none was moved.
  // Only while the connection that holds them is open (see above).
  std::string moveWalAside(std::int64_t now_ms) const;
  // True once settle() found the -wal restarted (a new header: what was in it
  // before is all in the database file) since the last call.
  bool takeWalRestart();

 private:
  std::string path_;
  std::array<std::optional<FileIdentity>, kJournalFileSuffixes.size()> identities_{};
  // The database file and its -wal as settle() last recorded them.
  std::array<std::optional<FileContent>, 2> contents_{};
  bool wal_restarted_ = false;
};

// A consistent copy of everything `source` holds (its own view, WAL included,
// through the file descriptors it has open: it works on files that were
// removed) in a new file `<path>.saved-<UTC time>` beside `path`, fsynced with
// its directory. Returns the copy's path. Throws SqliteError or
// std::runtime_error (no space, no directory); then nothing is left behind.
std::string saveCopy(Database& source, const std::string& path, std::int64_t now_ms);

// SQLite's quick_check of a copy saveCopy() made: "ok", or what it found
// (or why the copy cannot be read).
std::string checkCopy(const std::string& copy);

// Moves `copy` to `path` when nothing is at `path` (never replaces a file) and
// fsyncs the directory. False, with `copy` untouched, when a file is there.
// Throws std::runtime_error on other failures.
bool placeCopy(const std::string& copy, const std::string& path);

// fsync of the directory holding `path`: makes a created, renamed or removed
// name durable. Throws std::runtime_error.
void syncDirectoryOf(const std::string& path);

}  // namespace mews::journal
