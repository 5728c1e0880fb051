// Time sources and the one timestamp format the journal and the CLI use.
//
// Two clocks, on purpose: wall time (UTC) is what is recorded and shown to an
// operator; steady time is what schedules retries, so that a wall-clock jump
// neither expires work nor makes it all due at once. Both are behind Clock so a
// test can move time without sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mews {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch, UTC.
  [[nodiscard]] virtual std::int64_t wallMillis() const = 0;
  [[nodiscard]] virtual std::chrono::steady_clock::time_point steadyNow() const = 0;
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] std::int64_t wallMillis() const override;
  [[nodiscard]] std::chrono::steady_clock::time_point steadyNow() const override;
  static const SystemClock& instance();
};

// "2026-11-27T10:00:00.123Z": fixed width, so text order is time order.
std::string formatIsoMillis(std::int64_t unix_millis);

// Accepts "2026-11-27T10:00:00Z", with optional ".fff" and a "+hh:mm" offset.
std::optional<std::int64_t> parseIsoMillis(std::string_view text);

}  // namespace mews
