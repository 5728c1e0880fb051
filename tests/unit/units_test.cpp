#include <doctest/doctest.h>

#include "common/clock.h"
#include "common/units.h"

using namespace mews;

TEST_CASE("durations parse with every unit") {
  CHECK(parseDuration("50ms").value() == Millis(50));
  CHECK(parseDuration("10s").value() == Millis(10'000));
  CHECK(parseDuration("5m").value() == Millis(300'000));
  CHECK(parseDuration("2h").value() == Millis(7'200'000));
  CHECK(parseDuration("3d").value() == Millis(259'200'000));
  CHECK(parseDuration("0s").value() == Millis(0));
}

TEST_CASE("bad durations say why") {
  CHECK(parseDuration("").error().find("not a number") != std::string::npos);
  CHECK(parseDuration("10").error().find("no unit") != std::string::npos);
  CHECK(parseDuration("10w").error().find("unknown unit 'w'") != std::string::npos);
  CHECK_FALSE(parseDuration("-5s").ok());
  CHECK_FALSE(parseDuration("1.5s").ok());
  CHECK_FALSE(parseDuration("1h30m").ok());
  CHECK_FALSE(parseDuration(" 5s").ok());
  CHECK(parseDuration("99999999999999999999d").error().find("too large") != std::string::npos);
  CHECK(parseDuration("999999999999999d").error().find("too large") != std::string::npos);
}

TEST_CASE("sizes parse with binary units only") {
  CHECK(parseSize("512B").value() == 512);
  CHECK(parseSize("64KiB").value() == 64 * 1024);
  CHECK(parseSize("1MiB").value() == 1024 * 1024);
  CHECK(parseSize("2GiB").value() == 2ULL * 1024 * 1024 * 1024);
  CHECK(parseSize("1MB").error().find("unknown unit 'MB'") != std::string::npos);
  CHECK_FALSE(parseSize("1").ok());
  CHECK_FALSE(parseSize("KiB").ok());
}

TEST_CASE("formatting picks the largest exact unit") {
  CHECK(formatDuration(Millis(90'000)) == "90s");
  CHECK(formatDuration(Millis(3'600'000)) == "1h");
  CHECK(formatDuration(Millis(1'500)) == "1500ms");
  CHECK(formatDuration(Millis(0)) == "0ms");
  CHECK(formatSize(1024 * 1024) == "1MiB");
  CHECK(formatSize(1536) == "1536B");
  for (const char* text : {"50ms", "10s", "5m", "2h", "3d"}) CHECK(formatDuration(parseDuration(text).value()) == text);
}

TEST_CASE("ISO 8601 timestamps round-trip in UTC with milliseconds") {
  CHECK(formatIsoMillis(0) == "1970-01-01T00:00:00.000Z");
  CHECK(formatIsoMillis(1'795'860'000'123) == "2026-11-28T10:00:00.123Z");
  CHECK(parseIsoMillis("2026-11-28T10:00:00.123Z") == 1'795'860'000'123);
  CHECK(parseIsoMillis("2026-11-28T10:00:00Z") == 1'795'860'000'000);
  CHECK(parseIsoMillis("2026-11-28T11:00:00+01:00") == 1'795'860'000'000);
  CHECK_FALSE(parseIsoMillis("yesterday").has_value());
  CHECK_FALSE(parseIsoMillis("2026-13-45T10:00:00Z").has_value());
}

TEST_CASE("the journal's own timestamp form is read as the general parser reads it") {
  // Every day from 1970 to 2100 at a varying time of day, leap days included:
  // the journal form goes through the fast reader, the same instant written
  // with an offset through Poco's parser, and both give the instant back.
  for (std::int64_t day = 0; day < 47'847; day += 1) {
    const std::int64_t at = day * 86'400'000 + (day * 7'919'357) % 86'400'000;
    const std::string text = formatIsoMillis(at);
    REQUIRE(parseIsoMillis(text) == at);
    if (day % 97 == 0) CHECK(parseIsoMillis(text.substr(0, 23) + "+00:00") == at);
  }
  CHECK(parseIsoMillis("2024-02-29T00:00:00.000Z") == parseIsoMillis("2024-02-29T00:00:00Z"));
  for (const char* impossible : {"2026-02-29T00:00:00.000Z", "2026-04-31T00:00:00.000Z", "2100-02-29T00:00:00.000Z",
                                 "2026-11-28T24:00:00.000Z", "2026-11-28T10:60:00.000Z", "2026-11-28T10:00:00.0a0Z"})
    CHECK_MESSAGE(!parseIsoMillis(impossible).has_value(), impossible);
}
