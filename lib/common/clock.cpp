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

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil).
std::int64_t daysFromCivil(std::int64_t year, unsigned month, unsigned day) {
  year -= month <= 2 ? 1 : 0;
  const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  const auto year_of_era = static_cast<unsigned>(year - era * 400);
  const unsigned day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + static_cast<std::int64_t>(day_of_era) - 719468;
}

// The journal's own form, exactly as formatIsoMillis writes it
// ("2026-11-27T07:13:33.559Z"): read without Poco's general parser, which the
// dispatcher would otherwise run twice per due delivery. nullopt for a time
// that does not exist (Feb 30): Poco's parser would roll it over.
bool inJournalForm(std::string_view text) {
  return text.size() == 24 && text[4] == '-' && text[7] == '-' && text[10] == 'T' && text[13] == ':' &&
         text[16] == ':' && text[19] == '.' && text[23] == 'Z';
}

std::optional<std::int64_t> parseJournalForm(std::string_view text) {
  const auto number = [&](std::size_t from, std::size_t length) -> std::optional<unsigned> {
    unsigned value = 0;
    for (std::size_t i = from; i < from + length; ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      value = value * 10 + static_cast<unsigned>(text[i] - '0');
    }
    return value;
  };
  const auto year = number(0, 4), month = number(5, 2), day = number(8, 2), hour = number(11, 2),
             minute = number(14, 2), second = number(17, 2), millis = number(20, 3);
  if (!year || !month || !day || !hour || !minute || !second || !millis) return std::nullopt;
  if (*month < 1 || *month > 12 || *day < 1 || *hour > 23 || *minute > 59 || *second > 59) return std::nullopt;
  constexpr unsigned kDaysIn[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (*year % 4 == 0 && *year % 100 != 0) || *year % 400 == 0;
  if (*day > kDaysIn[*month - 1] + (*month == 2 && leap ? 1 : 0)) return std::nullopt;
  const std::int64_t days = daysFromCivil(*year, *month, *day);
  return ((days * 24 + *hour) * 60 + *minute) * 60'000 + *second * 1000 + *millis;
}

}  // namespace

std::optional<std::int64_t> parseIsoMillis(std::string_view text) {
  if (inJournalForm(text)) return parseJournalForm(text);
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
