#include "auth/token.h"

#include <Poco/Exception.h>
#include <Poco/URI.h>

#include "auth/secrets.h"

namespace mews::auth {

TokenSet::TokenSet(const std::vector<std::string>& tokens) {
  for (const auto& token : tokens) digests_.push_back(sha256(token));
}

bool TokenSet::accepts(std::string_view presented) const {
  if (presented.empty()) return false;
  const std::string candidate = sha256(presented);
  bool any_match = false;
  // Every token compared, the match or not: no early exit.
  for (const auto& known : digests_) any_match |= equalSecrets(known, candidate);
  return any_match;
}

std::string queryParameter(std::string_view query, std::string_view name) {
  std::size_t start = 0;
  while (start <= query.size()) {
    const auto amp = query.find('&', start);
    const auto pair = query.substr(start, amp == std::string_view::npos ? query.npos : amp - start);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name && eq != std::string_view::npos) {
      std::string decoded;
      try {
        Poco::URI::decode(std::string(pair.substr(eq + 1)), decoded, true);
      } catch (const Poco::Exception&) {
        return {};
      }
      return decoded;
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return {};
}

}  // namespace mews::auth
