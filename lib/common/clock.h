// Time sources and the one timestamp format the journal and the CLI use.
//
// The relay's wall time is read from the system once, at start, and then
// advanced by the monotonic clock. Every timestamp the relay writes (receive
// times, due times, ages) comes from it, so a step of the system clock while
// the relay runs (NTP correction, an operator's `date -s`) neither dead-letters
// work by age nor makes every retry due at once nor stalls them; a restart
// picks up the corrected clock. Behind Clock so a test can move time without
// sleeping.
#pragma once

#include <atomic>
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
};

class SystemClock final : public Clock {
 public:
  SystemClock();
  [[nodiscard]] std::int64_t wallMillis() const override;
  static const SystemClock& instance();

 private:
  std::int64_t anchor_wall_ms_;
  std::chrono::steady_clock::time_point anchor_steady_;
};

// A clock that moves only when told to (tests).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t wall_ms) : wall_ms_(wall_ms) {}
  [[nodiscard]] std::int64_t wallMillis() const override { return wall_ms_.load(); }
  void advance(std::chrono::milliseconds by) { wall_ms_ += by.count(); }

 private:
  std::atomic<std::int64_t> wall_ms_;
};

// "2026-11-27T10:00:00.123Z": fixed width, so text order is time order.
std::string formatIsoMillis(std::int64_t unix_millis);

// Accepts "2026-11-27T10:00:00Z", with optional ".fff" and a "+hh:mm" offset.
std::optional<std::int64_t> parseIsoMillis(std::string_view text);

}  // namespace mews
