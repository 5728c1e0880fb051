// Shared-secret token check for the public listener. Tokens are compared as
// SHA-256 digests in constant time, against every configured token (no early
// exit), so neither timing nor length tells a caller how close a guess was.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mews::auth {

class TokenSet {
 public:
  explicit TokenSet(const std::vector<std::string>& tokens);
  [[nodiscard]] bool accepts(std::string_view presented) const;

 private:
  std::vector<std::string> digests_;  // SHA-256 of each token
};

// The value of `name` in a raw query string ("a=1&token=x"), percent-decoded.
// Empty when absent. Used instead of a general URI parser so that the token is
// read from exactly one place.
std::string queryParameter(std::string_view query, std::string_view name);

}  // namespace mews::auth
