// Retry policy and circuit breaker: pure decisions, no I/O, no clock reads
// (callers pass `now`), so every rule is unit-tested without sleeping.
//
// Outcome of one attempt:
//   2xx                                  delivered
//   408, 425, 429, 5xx, transport errors retry (Retry-After honoured, clamped to
//   (connect, timeout, reset, DNS)       the target's backoff bounds)
//   other status (4xx, unfollowed 3xx)   dead at once, response recorded
//
// Backoff: exponential with full jitter. After the n-th failure the delay is
// uniform in [MIN, min(MAX, MIN * 2^(n-1))]: spread out so that retries of many
// items do not arrive together, doubling until MAX.
//
// Circuit breaker, per target:
//
//   closed --kOpenAfter consecutive failures--> open
//   open --probe time reached, one item dispatched--> half_open
//   half_open --probe delivered--> closed        (the queue drains, oldest first)
//   half_open --probe failed--> open             (next probe after a longer backoff)
//
// While open or half-open only the probe is sent, and its failures do not
// spend the probe item's attempts: a target down for a weekend drains by itself
// when it returns, and only max_age decides what dies.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "common/units.h"

namespace mews::delivery {

enum class AttemptVerdict { Delivered, Retry, Reject };

// `status` empty: the request failed before a status line (transport error).
AttemptVerdict classify(std::optional<int> status);

// Delay before the next attempt after `failures` consecutive failures (>= 1).
Millis backoffDelay(int failures, Millis min, Millis max, std::mt19937_64& random);

// A Retry-After header: delta-seconds or an HTTP-date (RFC 9110). Empty when
// absent or unreadable; a date in the past gives 0.
std::optional<Millis> parseRetryAfter(std::string_view value, std::int64_t now_ms);

// The delay to use: Retry-After when given, clamped to [min, max]; else backoff.
Millis retryDelay(int failures, Millis min, Millis max, std::optional<Millis> retry_after, std::mt19937_64& random);

enum class CircuitState { Closed, Open, HalfOpen };
std::string_view circuitName(CircuitState state);

class CircuitBreaker {
 public:
  static constexpr int kOpenAfter = 5;

  [[nodiscard]] CircuitState state() const { return state_; }
  [[nodiscard]] int consecutiveFailures() const { return failures_; }
  [[nodiscard]] std::int64_t probeAtMs() const { return probe_at_ms_; }

  // How many new deliveries may start now, given `free_slots` of concurrency.
  [[nodiscard]] int admits(int free_slots, std::int64_t now_ms) const;
  // A dispatch happened; in the open state it is the probe.
  void onDispatch(std::int64_t now_ms);
  void onSuccess();
  // A retryable failure; `next_probe_delay` paces probes while open.
  void onFailure(std::int64_t now_ms, Millis next_probe_delay);
  // Whether a failure of an attempt dispatched now spends the item's budget.
  [[nodiscard]] bool spendsAttempts() const { return state_ == CircuitState::Closed; }

 private:
  CircuitState state_ = CircuitState::Closed;
  int failures_ = 0;
  std::int64_t probe_at_ms_ = 0;
};

}  // namespace mews::delivery
