#include "common/url.h"

#include <algorithm>

namespace mews {

namespace {

constexpr std::string_view kMask = "***";

// "a=1&b&c=" -> "a=***&***&c=***": a component without '=' is a value too
// (`?KEY` is a common way to pass a key).
std::string maskQuery(std::string_view query) {
  std::string out;
  std::size_t start = 0;
  while (start <= query.size()) {
    const auto amp = query.find('&', start);
    const auto pair = query.substr(start, amp == std::string_view::npos ? query.npos : amp - start);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) {
      if (!pair.empty()) out.append(kMask);
    } else {
      out.append(pair.substr(0, eq)).append("=").append(kMask);
    }
    if (amp == std::string_view::npos) break;
    out += '&';
    start = amp + 1;
  }
  return out;
}

}  // namespace

std::string maskUrl(std::string_view url) {
  std::string out;
  // Scheme and authority: the user information is what comes before the last
  // '@' of the authority, its password what follows its first ':'.
  std::size_t rest = 0;
  if (const auto scheme_end = url.find("://"); scheme_end != std::string_view::npos) {
    const std::size_t authority_start = scheme_end + 3;
    const auto authority_end = std::min(url.find_first_of("/?#", authority_start), url.size());
    const auto authority = url.substr(authority_start, authority_end - authority_start);
    out.append(url.substr(0, authority_start));
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
      const auto userinfo = authority.substr(0, at);
      const auto colon = userinfo.find(':');
      out.append(userinfo.substr(0, colon));
      if (colon != std::string_view::npos) out.append(":").append(kMask);
      out.append(authority.substr(at));
    } else {
      out.append(authority);
    }
    rest = authority_end;
  }
  // A '?' after the '#' is the fragment's.
  const auto fragment_start = std::min(url.find('#', rest), url.size());
  const auto query_start = url.substr(0, fragment_start).find('?', rest);
  if (query_start == std::string_view::npos) return out.append(url.substr(rest));
  out.append(url.substr(rest, query_start + 1 - rest));
  out.append(maskQuery(url.substr(query_start + 1, fragment_start - query_start - 1)));
  out.append(url.substr(fragment_start));
  return out;
}

}  // namespace mews
