// Parsing and printing of the two unit-bearing value kinds an operator writes:
// durations (`50ms`, `10s`, `5m`, `2h`, `3d`) and sizes (`512B`, `64KiB`,
// `1MiB`, `2GiB`). Used by the config loader and the CLI's TIME/DURATION flags.
//
// Errors are values: a parse returns std::nullopt-like failure with a short
// lowercase reason the caller puts behind the file and key it came from.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace mews {

using Millis = std::chrono::milliseconds;

// A parse outcome: the value, or the reason it was refused.
template <typename T>
struct Parsed {
  std::variant<T, std::string> result;

  [[nodiscard]] bool ok() const { return result.index() == 0; }
  [[nodiscard]] const T& value() const { return std::get<0>(result); }
  [[nodiscard]] const std::string& error() const { return std::get<1>(result); }
};

// "<digits><unit>", unit one of ms, s, m, h, d. No sign, no fraction, no
// compound forms ("1h30m"): one way to write each duration.
Parsed<Millis> parseDuration(std::string_view text);

// "<digits><unit>", unit one of B, KiB, MiB, GiB (binary multiples only, so
// "1MB" is refused rather than silently read as 10^6 or 2^20).
Parsed<std::uint64_t> parseSize(std::string_view text);

// The largest unit that divides the value exactly: 90000ms -> "90s", 3600000ms -> "1h".
std::string formatDuration(Millis value);
std::string formatSize(std::uint64_t bytes);

}  // namespace mews
