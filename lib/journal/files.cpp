#include "journal/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <utility>

#include "common/clock.h"
#include "journal/sqlite.h"

namespace mews::journal {

namespace {

std::string fileName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

// Closes a descriptor when it goes out of scope.
struct Descriptor {
  int fd;
  ~Descriptor() {
    if (fd >= 0) ::close(fd);
  }
};

void fsyncPath(const std::string& path, int flags) {
  const Descriptor file{::open(path.c_str(), flags | O_CLOEXEC)};
  if (file.fd < 0 || ::fsync(file.fd) != 0)
    throw std::runtime_error(fmt::format("cannot fsync {}: {}", path, std::strerror(errno)));
}

// "2026-11-27T07:13:33.559Z" -> "20261127T071333.559Z": sortable, no ':' in a file name.
std::string compactTime(std::int64_t now_ms) {
  std::string stamp = formatIsoMillis(now_ms);
  stamp.erase(std::remove_if(stamp.begin(), stamp.end(), [](char c) { return c == '-' || c == ':'; }), stamp.end());
  return stamp;
}

// Creates `<path>.saved-<time>` (with a counter when taken) so that an existing
// file is never written over. Returns its name.
std::string claimNewFile(const std::string& path, std::int64_t now_ms) {
  const std::string base = path + ".saved-" + compactTime(now_ms);
  for (int attempt = 0; attempt < 100; ++attempt) {
    const std::string name = attempt == 0 ? base : fmt::format("{}-{}", base, attempt);
    const Descriptor file{::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
    if (file.fd >= 0) return name;
    if (errno != EEXIST) throw std::runtime_error(fmt::format("cannot create {}: {}", name, std::strerror(errno)));
  }
  throw std::runtime_error(fmt::format("cannot create {}: 100 names taken", base));
}

void copyInto(Database& source, const std::string& target_path) {
  Database target(target_path, Database::Mode::ReadWriteExisting);
  target.exec("PRAGMA synchronous = FULL");
  sqlite3_backup* backup = sqlite3_backup_init(target.handle(), "main", source.handle(), "main");
  if (backup == nullptr) target.fail(sqlite3_extended_errcode(target.handle()), "backup");
  const int stepped = sqlite3_backup_step(backup, -1);  // all pages in one step: the writer thread waits anyway
  const int finished = sqlite3_backup_finish(backup);
  if (stepped != SQLITE_DONE) target.fail(stepped, "backup step");
  if (finished != SQLITE_OK) target.fail(finished, "backup finish");
  // The copy took the source's WAL flag; a rollback journal makes it one
  // self-contained file that readers open without leaving -wal or -shm files
  // beside it (the relay sets WAL again when it opens the journal).
  target.exec("PRAGMA journal_mode = DELETE");
}

// The database file's and the -wal's places in kJournalFileSuffixes and in
// JournalFiles::contents_.
constexpr std::size_t kDatabase = 0;
constexpr std::size_t kWal = 1;
constexpr std::size_t kWalHeaderBytes = 32;

std::uint32_t bigEndian32(const unsigned char* bytes) {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) | (std::uint32_t{bytes[2]} << 8) |
         std::uint32_t{bytes[3]};
}

bool validWalHeader(const FileContent& wal) {
  const std::uint32_t magic = bigEndian32(wal.header.data());
  return wal.size >= static_cast<off_t>(kWalHeaderBytes) && (magic == 0x377f0682 || magic == 0x377f0683);
}

bool sameWalHeader(const FileContent& a, const FileContent& b) {
  return std::equal(a.header.begin(), a.header.begin() + kWalHeaderBytes, b.header.begin());
}

// `after` is the header SQLite writes when it restarts the -wal that had
// `before` (once or, with a rolled-back pass and its retry, twice in one
// group): checkpoint sequence and first salt each one or two higher.
bool restartedWalHeader(const FileContent& before, const FileContent& after) {
  const std::uint32_t checkpoints = bigEndian32(after.header.data() + 12) - bigEndian32(before.header.data() + 12);
  const std::uint32_t salt = bigEndian32(after.header.data() + 16) - bigEndian32(before.header.data() + 16);
  return (checkpoints == 1 || checkpoints == 2) && salt == checkpoints;
}

// The database file (or its -wal) the connection `db` has open, as it is now;
// nullopt when the file at `name` is not `recorded` (changes() reports that).
// The header is read through SQLite's own descriptor: a descriptor of ours
// on the database file, once closed, would drop the POSIX locks SQLite holds
// on it for this process.
std::optional<FileContent> contentOf(Database& db, const std::string& name, const FileIdentity& recorded,
                                     std::size_t which) {
  struct stat status {};
  if (::stat(name.c_str(), &status) != 0 || FileIdentity{status.st_dev, status.st_ino} != recorded) return std::nullopt;
  FileContent content;
  content.size = status.st_size;
  content.modified_ns = static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1'000'000'000 + status.st_mtim.tv_nsec;
  sqlite3_file* file = nullptr;
  const int pointer = which == kDatabase ? SQLITE_FCNTL_FILE_POINTER : SQLITE_FCNTL_JOURNAL_POINTER;
  if (sqlite3_file_control(db.handle(), "main", pointer, &file) == SQLITE_OK && file != nullptr &&
      file->pMethods != nullptr) {
    const int size = static_cast<int>(which == kDatabase ? content.header.size() : kWalHeaderBytes);
    // A short read fills the rest with zeros; anything else leaves zeros too.
    const int rc = file->pMethods->xRead(file, content.header.data(), size, 0);
    if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) content.header.fill(0);
  }
  return content;
}

std::string walChange(const FileContent& before, const FileContent& after) {
  if (after.size < before.size) return "was truncated by another process";
  if (after.size >= static_cast<off_t>(kWalHeaderBytes) && !validWalHeader(after))
    return "was written by another process (its header is gone)";
  if (validWalHeader(before) && validWalHeader(after) && !sameWalHeader(before, after) &&
      !restartedWalHeader(before, after))
    return "was written by another process (its header is not the relay's)";
  return {};
}

}  // namespace

std::optional<FileIdentity> identityAt(const std::string& path) {
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) return std::nullopt;
  return FileIdentity{status.st_dev, status.st_ino};
}

JournalFiles JournalFiles::at(const std::string& path) {
  JournalFiles files;
  files.path_ = path;
  for (std::size_t i = 0; i < kJournalFileSuffixes.size(); ++i)
    files.identities_[i] = identityAt(path + kJournalFileSuffixes[i]);
  return files;
}

std::string JournalFiles::changes() const {
  std::string changed;
  for (std::size_t i = 0; i < kJournalFileSuffixes.size(); ++i) {
    if (!identities_[i]) continue;  // not there at open: nothing held to lose
    const std::string name = path_ + kJournalFileSuffixes[i];
    const auto now = identityAt(name);
    if (now == identities_[i]) continue;
    if (!changed.empty()) changed += "; ";
    changed += fmt::format("{} {}", fileName(name), now ? "is another file" : "was removed or renamed");
  }
  return changed;
}

bool JournalFiles::databaseAtPath() const {
  return identities_[0] && identityAt(path_) == identities_[0];
}

void JournalFiles::removeRecordedFromPath() const {
  for (std::size_t i = 0; i < kJournalFileSuffixes.size(); ++i) {
    const std::string name = path_ + kJournalFileSuffixes[i];
    // A failure leaves the file there; firstPresent() then names it and the
    // copy is not put back over it.
    if (identities_[i] && identityAt(name) == identities_[i]) ::unlink(name.c_str());
  }
}

std::string JournalFiles::firstPresent(const std::string& path) {
  for (const char* suffix : kJournalFileSuffixes)
    if (identityAt(path + suffix)) return path + suffix;
  return {};
}

std::string JournalFiles::settle(Database& db, bool checkpointed) {
  std::array<std::optional<FileContent>, 2> now{};
  for (std::size_t i : {kDatabase, kWal})
    if (identities_[i]) now[i] = contentOf(db, path_ + kJournalFileSuffixes[i], *identities_[i], i);

  std::string changed;
  const auto add = [&](std::size_t which, std::string_view what) {
    if (!changed.empty()) changed += "; ";
    changed += fmt::format("{} {}", fileName(path_ + kJournalFileSuffixes[which]), what);
  };
  const auto& db_before = contents_[kDatabase];
  if (db_before && now[kDatabase] && !checkpointed && *now[kDatabase] != *db_before)
    add(kDatabase, "was written by another process");
  const auto& wal_before = contents_[kWal];
  const auto& wal_after = now[kWal];
  if (wal_before && wal_after)
    if (const std::string change = walChange(*wal_before, *wal_after); !change.empty()) add(kWal, change);
  if (wal_after) {
    // Fresh: what was in the -wal before is all in the database file (SQLite
    // restarts it only then), or it never held anything.
    wal_restarted_ = wal_before ? validWalHeader(*wal_after) &&
                                      (!validWalHeader(*wal_before) || !sameWalHeader(*wal_before, *wal_after))
                                : !validWalHeader(*wal_after);
  }
  contents_ = now;
  return changed;
}

std::string JournalFiles::rewrites(Database& db, bool database_only) const {
  std::string changed;
  for (std::size_t i : {kDatabase, kWal}) {
    if (!contents_[i] || !identities_[i] || (database_only && i != kDatabase)) continue;
    const auto now = contentOf(db, path_ + kJournalFileSuffixes[i], *identities_[i], i);
    if (!now || *now == *contents_[i]) continue;
    if (!changed.empty()) changed += "; ";
    const bool shorter = i == kWal && now->size < contents_[i]->size;  // the relay never shortens it
    changed += fmt::format("{} was {} by another process", fileName(path_ + kJournalFileSuffixes[i]),
                           shorter ? "truncated" : "written");
  }
  return changed;
}

std::string JournalFiles::moveWalAside(std::int64_t now_ms) const {
  const std::string wal = path_ + kJournalFileSuffixes[kWal];
  const std::string shm = path_ + kJournalFileSuffixes[2];
  if (identities_[2] && identityAt(shm) == identities_[2]) ::unlink(shm.c_str());
  if (!identities_[kWal] || identityAt(wal) != identities_[kWal]) return {};
  const std::string aside = wal + ".saved-" + compactTime(now_ms);
  if (::renameat2(AT_FDCWD, wal.c_str(), AT_FDCWD, aside.c_str(), RENAME_NOREPLACE) != 0) return {};
  syncDirectoryOf(path_);
  return aside;
}

bool JournalFiles::takeWalRestart() {
  return std::exchange(wal_restarted_, false);
}

void syncDirectoryOf(const std::string& path) {
  const auto directory = std::filesystem::absolute(path).parent_path();
  fsyncPath(directory.string(), O_RDONLY | O_DIRECTORY);
}

std::string saveCopy(Database& source, const std::string& path, std::int64_t now_ms) {
  // The directory itself may be what was renamed away.
  std::filesystem::create_directories(std::filesystem::absolute(path).parent_path());
  const std::string copy = claimNewFile(path, now_ms);
  try {
    copyInto(source, copy);
    fsyncPath(copy, O_RDONLY);
    syncDirectoryOf(copy);
  } catch (...) {
    ::unlink(copy.c_str());
    ::unlink((copy + "-journal").c_str());
    throw;
  }
  return copy;
}

std::string checkCopy(const std::string& copy) {
  try {
    Database check(copy, Database::Mode::ReadOnly);
    Statement quick(check, "PRAGMA quick_check");
    return quick.step() ? quick.columnText(0) : "quick_check returned nothing";
  } catch (const std::exception& e) {
    return e.what();
  }
}

bool placeCopy(const std::string& copy, const std::string& path) {
  // RENAME_NOREPLACE: atomic, and a file that appeared at `path` meanwhile is
  // never replaced (ext4, xfs, btrfs and tmpfs support it).
  if (::renameat2(AT_FDCWD, copy.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) return false;
    throw std::runtime_error(fmt::format("cannot move {} to {}: {}", copy, path, std::strerror(errno)));
  }
  syncDirectoryOf(path);
  return true;
}

}  // namespace mews::journal
