// Retry policy and circuit breaker: pure decisions, no I/O, no clock reads
// (callers pass `now` and the random source), so every rule is unit-tested over
// tables of cases without sleeping. The engine applies what decide() returns.
//
// What one attempt comes to (decide()):
//   2xx                                   delivered                  circuit: success
//   408, 425, 429, 5xx, transport errors  retry (Retry-After         circuit: failure
//   (connect, timeout, reset, DNS)        honoured, clamped to the
//                                         target's backoff bounds)
//   other status (4xx, unfollowed 3xx),   dead at once (rejected),   circuit: success (the
//   a redirect the client refused         response recorded          target answered)
//   no request could be built from the    dead at once (rejected),   circuit: untouched (nothing
//   journaled batch                       the reason recorded        was sent; the target is
//                                                                     not judged)
// A retry that spends the last of max_attempts is dead (max_attempts). While
// the circuit is open the item retried goes back to its place in receive order,
// and a failed probe spends nothing (probe_failed).
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
#include "config/config.h"
#include "journal/queue.h"

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

// How an attempt moves its target's circuit.
enum class CircuitEvent { None, Success, Failure };

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
  // What decide() said about the circuit: onSuccess, onFailure, or nothing.
  void apply(CircuitEvent event, std::int64_t now_ms, Millis next_probe_delay);

 private:
  CircuitState state_ = CircuitState::Closed;
  int failures_ = 0;
  std::int64_t probe_at_ms_ = 0;
};

// What one attempt came to, before judgement.
struct AttemptResult {
  enum class Kind {
    Sent,             // the target answered `status`, or the transport failed (no status)
    RedirectRefused,  // a 307/308 the client would not follow (another host, too many hops)
    Unbuildable,      // no request could be made from the journaled batch: nothing was sent
  };
  Kind kind = Kind::Sent;
  std::optional<int> status;
  std::string_view retry_after;  // the Retry-After header as received, empty when none
};

// What the engine is to do with the delivery and its target.
struct Decision {
  journal::AttemptOutcome outcome = journal::AttemptOutcome::Retry;
  journal::DeadReason dead_reason = journal::DeadReason::Rejected;  // with Dead
  bool spends_attempt = true;
  std::int64_t next_due_ms = 0;  // with Retry and ProbeFailed
  CircuitEvent circuit = CircuitEvent::None;
  Millis next_probe_delay{0};  // with Failure: paces the probes while the circuit is open
};

// The judgement of one attempt of `delivery` (as claimed: attempts spent so
// far, due time, receive order) to `target`, sent as the circuit's probe or
// not, given the target's circuit before it.
Decision decide(const AttemptResult& result, const journal::DueDelivery& delivery, bool probe,
                const config::TargetSettings& target, const CircuitBreaker& circuit, std::int64_t now_ms,
                std::mt19937_64& random);

}  // namespace mews::delivery
