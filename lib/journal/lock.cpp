#include "journal/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace mews::journal {

namespace {

bool lockExclusive(int fd) {
  int rc = 0;
  do rc = ::flock(fd, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  return rc == 0;
}

void identify(int fd, dev_t& device, ino_t& inode) {
  struct stat held {};
  if (::fstat(fd, &held) != 0) return;  // left 0: the next check finds it changed and locks again
  device = held.st_dev;
  inode = held.st_ino;
}

}  // namespace

JournalLock::JournalLock(const std::string& journal_path) : path_(journal_path + ".lock") {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  // An operator in the relay's group may read the lock (to find the admin
  // address) but not write it; flock() works on a read-only descriptor.
  if (fd_ < 0 && errno == EACCES) fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot open lock file {}: {}", path_, std::strerror(errno)));
  held_ = lockExclusive(fd_);
  identify(fd_, device_, inode_);
}

void JournalLock::publish(const std::string& text) {
  const std::lock_guard lock(mutex_);
  write(text);
  published_ = text;
}

void JournalLock::write(const std::string& text) {
  // 0640 also for a lock file an older version created 0600: the group reads it.
  if (::fchmod(fd_, 0640) != 0 || ::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    throw std::runtime_error(fmt::format("cannot write lock file {}: {}", path_, std::strerror(errno)));
}

JournalLock::Check JournalLock::reclaim() {
  const std::lock_guard lock(mutex_);
  if (!held_) return {Check::State::Lost, fmt::format("lock file {} is not held", path_)};
  struct stat at_path {};
  if (::stat(path_.c_str(), &at_path) == 0 && at_path.st_dev == device_ && at_path.st_ino == inode_) return {};
  const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0)
    return {Check::State::Lost, fmt::format("lock file {} was removed or replaced, and cannot be opened again: {}",
                                            path_, std::strerror(errno))};
  if (!lockExclusive(fd)) {
    ::close(fd);
    return {Check::State::Lost,
            fmt::format("lock file {} was removed or replaced, and another process holds the new one", path_)};
  }
  ::close(fd_);  // releases the lock on the old file, which is no longer anyone's
  fd_ = fd;
  identify(fd_, device_, inode_);
  try {
    write(published_);
  } catch (const std::exception& e) {
    // Held all the same; a command that finds it taken says it cannot reach the relay.
    return {Check::State::Reclaimed,
            fmt::format("lock file {} was removed or replaced and locked again ({})", path_, e.what())};
  }
  return {Check::State::Reclaimed, fmt::format("lock file {} was removed or replaced and locked again", path_)};
}

std::string JournalLock::readPublished(const std::string& journal_path) {
  std::ifstream in(journal_path + ".lock");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

JournalLock::~JournalLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

}  // namespace mews::journal
