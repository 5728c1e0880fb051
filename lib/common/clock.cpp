#include "common/clock.h"

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/Timestamp.h>
#include <fmt/format.h>
#include <ctime>

namespace mews {

SystemClock::SystemClock()
    : anchor_wall_ms_(
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
              .count()),
      anchor_steady_(std::chrono::steady_clock::now()) {}

std::int64_t SystemClock::wallMillis() const {
  return anchor_wall_ms_ +
         std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - anchor_steady_)
             .count();
}

const SystemClock& SystemClock::instance() {
  static const SystemClock clock;
  return clock;
}

std::string formatIsoMillis(std::int64_t unix_millis) {
  std::int64_t seconds = unix_millis / 1000;
  std::int64_t millis = unix_millis % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  const std::time_t as_time_t = static_cast<std::time_t>(seconds);
  std::tm utc{};
  gmtime_r(&as_time_t, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                     utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
}

std::optional<std::int64_t> parseIsoMillis(std::string_view text) {
  // Poco's ISO8601_FRAC format accepts both with and without fractions and
  // offsets; tryParse reports failure instead of throwing.
  Poco::DateTime parsed;
  int tz_offset_seconds = 0;
  if (text.size() < 20 || text[10] != 'T') return std::nullopt;
  if (!Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::ISO8601_FRAC_FORMAT, std::string(text), parsed,
                                      tz_offset_seconds))
    return std::nullopt;
  parsed.makeUTC(tz_offset_seconds);
  return parsed.timestamp().epochMicroseconds() / 1000;
}

}  // namespace mews
