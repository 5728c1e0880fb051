// The console's small web toolkit (console/web.*), pure functions so that the
// tests can hold each rule on its own:
//   - HTML escaping: every text that came from outside (payloads, target
//     answers, event types, target names, query parameters) goes through
//     escape() before it reaches a page; nothing from a request is ever
//     rendered as markup;
//   - the Origin rule that stops cross-site posts (the Host rule against DNS
//     rebinding is admin/request_guard.h's, shared with the admin API);
//   - cookie reading, JSON pretty-printing, human-readable sizes and ages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mews::console::web {

// &, <, >, " and ' as entities: safe in element text and in quoted attributes.
std::string escape(std::string_view text);

// A post must come from the console's own page: Origin equal to
// scheme://Host (browsers send Origin with every POST).
bool originMatches(std::string_view origin, std::string_view host_header, bool tls);

// The value of cookie `name` in a Cookie header.
std::optional<std::string> cookie(std::string_view cookie_header, std::string_view name);

// Indents JSON text by two spaces per level without re-encoding anything:
// strings and numbers stay byte for byte (1.10 stays 1.10). Input that is not
// JSON comes back re-spaced but otherwise unchanged.
std::string prettyJson(std::string_view json);

// "1.5 MiB"; "3 min ago" style ages.
std::string sizeText(std::uint64_t bytes);
std::string ageText(std::int64_t millis);

}  // namespace mews::console::web
