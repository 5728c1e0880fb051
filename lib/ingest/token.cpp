#include "ingest/token.h"

#include <Poco/Exception.h>
#include <Poco/SHA2Engine.h>
#include <Poco/URI.h>

namespace mews::ingest {

TokenSet::TokenSet(const std::vector<std::string>& tokens) {
  for (const auto& token : tokens) digests_.push_back(digest(token));
}

TokenSet::Digest TokenSet::digest(std::string_view text) {
  Poco::SHA2Engine engine(Poco::SHA2Engine::SHA_256);
  engine.update(text.data(), static_cast<unsigned>(text.size()));
  const auto& bytes = engine.digest();
  Digest out{};
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

bool TokenSet::accepts(std::string_view presented) const {
  if (presented.empty()) return false;
  const Digest candidate = digest(presented);
  unsigned char any_match = 0;
  for (const auto& known : digests_) {
    unsigned char difference = 0;
    for (std::size_t i = 0; i < known.size(); ++i) difference |= known[i] ^ candidate[i];
    any_match |= static_cast<unsigned char>(difference == 0);
  }
  return any_match != 0;
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

}  // namespace mews::ingest
