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
