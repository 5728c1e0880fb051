// Structured logging: one logfmt line per event on stderr,
//   ts=2026-11-27T10:00:00.123Z level=info component=ingest msg="batch accepted" batch=42
// The logger never sees a request's query string, token or secret: callers pass
// only the fields they chose to expose, and values are quoted and escaped so a
// hostile value cannot forge a line nor drive the terminal that shows it
// (control characters, C1 included, and bytes that are not UTF-8 as escapes).
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace mews::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

std::optional<Level> parseLevel(std::string_view name);
void setLevel(Level level);
[[nodiscard]] bool enabled(Level level);

using Field = std::pair<std::string_view, std::string>;

void write(Level level, std::string_view component, std::string_view message, std::initializer_list<Field> fields = {});

inline void debug(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
  if (enabled(Level::Debug)) write(Level::Debug, c, m, f);
}
inline void info(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
  if (enabled(Level::Info)) write(Level::Info, c, m, f);
}
inline void warn(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
  if (enabled(Level::Warn)) write(Level::Warn, c, m, f);
}
inline void error(std::string_view c, std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::Error, c, m, f);
}
// Logs at error only when `detail` differs from what was logged last into
// `last`: a condition that lasts is logged once, not at every retry.
inline void errorOnce(std::string& last, const std::string& detail, std::string_view c, std::string_view m,
                      std::initializer_list<Field> f = {}) {
  if (detail == last) return;
  last = detail;
  write(Level::Error, c, m, f);
}

}  // namespace mews::log
