// The operator's credential for the admin listener's API (/admin/*): who may
// change the journal while the relay runs.
//
// At start the serving process writes 32 random bytes (64 hex digits) to
// "<journal>.admin", beside the journal: a stale file is unlinked, the new one
// created with O_EXCL and mode 0640, owned by the service's user and group.
// Whoever can read that file can operate (the service user, root, members of
// the service's group, `mews-relay` in the package); the file's permissions are
// the access control, as a Unix socket's are for Docker or Postfix, while the
// listener itself stays TCP for health checks and Prometheus. The CLI reads it
// and presents it as `Authorization: Bearer ...` (request_guard.h). The file
// is removed at stop; a new credential is made at every start, so a copied one
// stops working at the next restart.
//
// The credential is a secret: it is never logged, printed or stored elsewhere.
#pragma once

#include <string>

namespace mews::auth {

// "<journal>.admin"
std::string credentialPath(const std::string& journal_path);

// The serving process's credential: made and written at construction
// (std::runtime_error naming the file when it cannot be), removed with the object.
// An empty `journal_path` (a PostgreSQL journal): kept in memory only, as the
// CLI then writes to the database itself rather than through the relay.
class CredentialFile {
 public:
  explicit CredentialFile(const std::string& journal_path);
  ~CredentialFile();
  CredentialFile(const CredentialFile&) = delete;
  CredentialFile& operator=(const CredentialFile&) = delete;
  [[nodiscard]] const std::string& value() const { return value_; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string value_;
};

// What a running relay wrote for `journal_path`. Throws std::runtime_error
// naming the file and the reason (e.g. permission denied: not an operator).
std::string readCredential(const std::string& journal_path);

}  // namespace mews::auth
