#include "common/units.h"

#include <fmt/format.h>
#include <array>
#include <charconv>
#include <limits>

namespace mews {
namespace {

struct Unit {
  std::string_view suffix;
  std::uint64_t factor;
};

// Longest suffix first so "ms" is not read as "m" followed by junk.
constexpr std::array kDurationUnits{Unit{"ms", 1}, Unit{"s", 1000}, Unit{"m", 60'000}, Unit{"h", 3'600'000},
                                    Unit{"d", 86'400'000}};
constexpr std::array kSizeUnits{Unit{"GiB", 1ULL << 30}, Unit{"MiB", 1ULL << 20}, Unit{"KiB", 1ULL << 10},
                                Unit{"B", 1}};

template <std::size_t N>
Parsed<std::uint64_t> parseWithUnits(std::string_view text, const std::array<Unit, N>& units,
                                     std::string_view expected) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return {fmt::format("'{}' is not a number with a unit ({})", text, expected)};
  const std::string_view suffix = text.substr(digits);
  for (const Unit& unit : units) {
    if (suffix != unit.suffix) continue;
    std::uint64_t number = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + digits, number);
    (void)end;
    if (ec != std::errc{} || number > std::numeric_limits<std::int64_t>::max() / unit.factor)
      return {fmt::format("'{}' is too large", text)};
    return {number * unit.factor};
  }
  if (suffix.empty()) return {fmt::format("'{}' has no unit ({})", text, expected)};
  return {fmt::format("'{}' has an unknown unit '{}' ({})", text, suffix, expected)};
}

template <std::size_t N>
std::string formatWithUnits(std::uint64_t value, const std::array<Unit, N>& units) {
  for (const Unit& unit : units)
    if (value != 0 && value % unit.factor == 0 && unit.factor != 1)
      return fmt::format("{}{}", value / unit.factor, unit.suffix);
  return "";
}

}  // namespace

Parsed<Millis> parseDuration(std::string_view text) {
  const auto parsed = parseWithUnits(text, kDurationUnits, "ms, s, m, h or d");
  if (!parsed.ok()) return {parsed.error()};
  return {Millis(static_cast<std::int64_t>(parsed.value()))};
}

Parsed<std::uint64_t> parseSize(std::string_view text) {
  return parseWithUnits(text, kSizeUnits, "B, KiB, MiB or GiB");
}

std::string formatDuration(Millis value) {
  const auto ms = static_cast<std::uint64_t>(value.count());
  // Largest unit first for printing.
  constexpr std::array kLargestFirst{kDurationUnits[4], kDurationUnits[3], kDurationUnits[2], kDurationUnits[1]};
  const std::string formatted = formatWithUnits(ms, kLargestFirst);
  return formatted.empty() ? fmt::format("{}ms", ms) : formatted;
}

std::string formatSize(std::uint64_t bytes) {
  const std::string formatted = formatWithUnits(bytes, kSizeUnits);
  return formatted.empty() ? fmt::format("{}B", bytes) : formatted;
}

}  // namespace mews
