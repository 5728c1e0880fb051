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

JournalLock::JournalLock(const std::string& journal_path) : path_(journal_path + ".lock") {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  // An operator in the relay's group may read the lock (to find the admin
  // address) but not write it; flock() works on a read-only descriptor.
  if (fd_ < 0 && errno == EACCES) fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot open lock file {}: {}", path_, std::strerror(errno)));
  int rc = 0;
  do rc = ::flock(fd_, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  held_ = rc == 0;
}

void JournalLock::publish(const std::string& text) {
  // 0640 also for a lock file an older version created 0600: the group reads it.
  if (::fchmod(fd_, 0640) != 0 || ::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    throw std::runtime_error(fmt::format("cannot write lock file {}: {}", path_, std::strerror(errno)));
}

std::string JournalLock::readPublished(const std::string& journal_path) {
  std::ifstream in(journal_path + ".lock");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

JournalLock::~JournalLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

}  // namespace mews::journal
