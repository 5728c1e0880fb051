#include "auth/credential.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "auth/secrets.h"

namespace mews::auth {
namespace {

constexpr std::size_t kRandomBytes = 32;

// Closes the descriptor on every path out.
struct Descriptor {
  int fd;
  ~Descriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string credentialPath(const std::string& journal_path) {
  return journal_path + ".admin";
}

CredentialFile::CredentialFile(const std::string& journal_path)
    : path_(journal_path.empty() ? std::string() : credentialPath(journal_path)), value_(randomHex(kRandomBytes)) {
  if (path_.empty()) return;
  auto fail = [&](std::string_view what) {
    return std::runtime_error(fmt::format("cannot {} the admin credential {}: {}", what, path_, std::strerror(errno)));
  };
  // O_EXCL after the unlink: the file is this process's new one, never one
  // somebody else left (or a link to elsewhere) with other permissions.
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT) throw fail("replace");
  Descriptor file{::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640)};
  if (file.fd < 0) throw fail("create");
  // The mode whatever the umask: the group's read bit is what lets operators in.
  const std::string line = value_ + "\n";
  if (::fchmod(file.fd, 0640) != 0) throw fail("set the mode of");
  if (::write(file.fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) throw fail("write");
}

CredentialFile::~CredentialFile() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

std::string readCredential(const std::string& journal_path) {
  const std::string path = credentialPath(journal_path);
  Descriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0)
    throw std::runtime_error(
        fmt::format("cannot read the admin credential {}: {} (the running relay's operators can: its user, root and "
                    "members of its group)",
                    path, std::strerror(errno)));
  std::array<char, 2 * kRandomBytes + 2> buffer{};
  ssize_t got = 0;
  do got = ::read(file.fd, buffer.data(), buffer.size());
  while (got < 0 && errno == EINTR);
  if (got < 0)
    throw std::runtime_error(fmt::format("cannot read the admin credential {}: {}", path, std::strerror(errno)));
  std::string value(buffer.data(), static_cast<std::size_t>(got));
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
  if (value.size() != 2 * kRandomBytes)
    throw std::runtime_error(fmt::format("the admin credential {} is not what a relay writes", path));
  return value;
}

}  // namespace mews::auth
