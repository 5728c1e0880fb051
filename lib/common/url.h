// URLs as they may be shown: a target's URL can carry a credential in its
// query (`?code=KEY` is a common way to pass a key) or, in a redirect's
// Location, in its user information. Every URL the relay prints or logs goes
// through maskUrl() first: check-config, the start-up log, a refused redirect.
#pragma once

#include <string>
#include <string_view>

namespace mews {

// `url` with every query value replaced by *** (names kept: `?code=***&x=***`)
// and the password of its user information too (`user:***@host`). Scheme,
// host, port, path and fragment stay as written. Text that is not a URL comes
// back with the same rules applied to whatever looks like its parts.
std::string maskUrl(std::string_view url);

}  // namespace mews
