#include <doctest/doctest.h>

#include <fmt/format.h>

#include "delivery/policy.h"

using namespace mews;
using namespace mews::delivery;

TEST_CASE("status classes") {
  CHECK(classify(200) == AttemptVerdict::Delivered);
  CHECK(classify(202) == AttemptVerdict::Delivered);
  CHECK(classify(299) == AttemptVerdict::Delivered);
  for (int retry : {408, 425, 429, 500, 502, 503, 504, 599}) CHECK(classify(retry) == AttemptVerdict::Retry);
  for (int reject : {300, 301, 302, 400, 401, 403, 404, 405, 410, 413, 422})
    CHECK(classify(reject) == AttemptVerdict::Reject);
  CHECK(classify(std::nullopt) == AttemptVerdict::Retry);
}

TEST_CASE("backoff doubles within the bounds, with full jitter") {
  std::mt19937_64 random(42);
  const Millis min(1'000);
  const Millis max(60'000);
  for (int failures = 1; failures <= 30; ++failures) {
    const Millis ceiling = std::min(max, Millis(min.count() << std::min(failures - 1, 20)));
    Millis lowest = max;
    Millis highest = Millis(0);
    for (int i = 0; i < 2'000; ++i) {
      const Millis delay = backoffDelay(failures, min, max, random);
      CHECK(delay >= min);
      CHECK(delay <= ceiling);
      lowest = std::min(lowest, delay);
      highest = std::max(highest, delay);
    }
    if (ceiling > min) {
      // Spread over the whole window, not bunched at one end.
      CHECK(lowest < min + (ceiling - min) / 10);
      CHECK(highest > ceiling - (ceiling - min) / 10);
    }
  }
  for (int i = 0; i < 100; ++i) CHECK(backoffDelay(1, min, max, random) == min);  // first retry: exactly MIN
  CHECK(backoffDelay(1000, Millis(10), Millis(86'400'000), random) <= Millis(86'400'000));
}

TEST_CASE("Retry-After: seconds or an HTTP date, clamped to the backoff bounds") {
  const std::int64_t now = 1'795'860'000'000;  // 2026-11-28T10:00:00Z
  CHECK(parseRetryAfter("120", now) == Millis(120'000));
  CHECK(parseRetryAfter("0", now) == Millis(0));
  CHECK(parseRetryAfter("Sat, 28 Nov 2026 10:01:00 GMT", now) == Millis(60'000));
  CHECK(parseRetryAfter("Sat, 28 Nov 2026 09:00:00 GMT", now) == Millis(0));
  CHECK_FALSE(parseRetryAfter("", now).has_value());
  CHECK_FALSE(parseRetryAfter("soon", now).has_value());
  CHECK_FALSE(parseRetryAfter("-5", now).has_value());
  std::mt19937_64 random(1);
  CHECK(retryDelay(1, Millis(1'000), Millis(60'000), Millis(120'000), random) == Millis(60'000));
  CHECK(retryDelay(1, Millis(1'000), Millis(60'000), Millis(0), random) == Millis(1'000));
  CHECK(retryDelay(1, Millis(1'000), Millis(60'000), Millis(5'000), random) == Millis(5'000));
}

TEST_CASE("circuit: opens after consecutive failures, one probe at a time, closes on success") {
  CircuitBreaker circuit;
  const std::int64_t t0 = 1'000'000;
  CHECK(circuit.admits(4, t0) == 4);
  for (int i = 1; i < CircuitBreaker::kOpenAfter; ++i) {
    circuit.onFailure(t0, Millis(1'000));
    CHECK(circuit.state() == CircuitState::Closed);
  }
  circuit.onSuccess();
  for (int i = 0; i < CircuitBreaker::kOpenAfter; ++i) circuit.onFailure(t0, Millis(1'000));
  CHECK(circuit.state() == CircuitState::Open);
  CHECK(circuit.admits(4, t0) == 0);
  CHECK(circuit.admits(4, t0 + 999) == 0);
  CHECK(circuit.admits(4, t0 + 1'000) == 1);
  CHECK(circuit.admits(0, t0 + 1'000) == 0);
  circuit.onDispatch(t0 + 1'000);
  CHECK(circuit.state() == CircuitState::HalfOpen);
  CHECK(circuit.admits(4, t0 + 5'000) == 0);  // the probe is in flight
  circuit.onFailure(t0 + 1'100, Millis(2'000));
  CHECK(circuit.state() == CircuitState::Open);
  CHECK(circuit.probeAtMs() == t0 + 3'100);
  circuit.onDispatch(t0 + 3'100);
  circuit.onSuccess();
  CHECK(circuit.state() == CircuitState::Closed);
  CHECK(circuit.consecutiveFailures() == 0);
  CHECK(circuit.admits(4, t0 + 3'200) == 4);
}

namespace {

using journal::AttemptOutcome;
using journal::DeadReason;
using Kind = AttemptResult::Kind;

constexpr std::int64_t kNow = 1'795'860'000'000;
constexpr std::int64_t kReceived = kNow - 60'000;  // the item's place in receive order
constexpr std::int64_t kDue = kNow - 1'000;

// Backoff fixed at 1 s (MIN = MAX), so that every due time is exact.
config::TargetSettings settingsWith(int max_attempts, Millis min = Millis(1'000), Millis max = Millis(1'000)) {
  config::TargetSettings target;
  target.name = "pms";
  target.max_attempts = max_attempts;
  target.backoff_min = min;
  target.backoff_max = max;
  return target;
}

CircuitBreaker circuitAfter(int failures) {
  CircuitBreaker circuit;
  for (int i = 0; i < failures; ++i) circuit.onFailure(kNow - 10'000, Millis(1'000));
  return circuit;
}

CircuitBreaker halfOpen() {
  CircuitBreaker circuit = circuitAfter(CircuitBreaker::kOpenAfter);
  circuit.onDispatch(kNow);
  return circuit;
}

struct Case {
  const char* name;
  AttemptResult result;
  int attempts_spent;  // before this attempt
  bool probe;
  CircuitBreaker circuit;
  config::TargetSettings target;
  // Expected:
  AttemptOutcome outcome;
  DeadReason reason;  // checked for Dead only
  bool spends_attempt;
  std::int64_t next_due_ms;  // checked for Retry / ProbeFailed only
  CircuitEvent event;
  CircuitState circuit_after;
};

}  // namespace

TEST_CASE("decide: each attempt result, over attempts spent, probes and circuit states") {
  const Case cases[] = {
      {"2xx",
       {Kind::Sent, 204, ""},
       0,
       false,
       {},
       settingsWith(3),
       AttemptOutcome::Delivered,
       {},
       true,
       0,
       CircuitEvent::Success,
       CircuitState::Closed},
      {"503, budget left: retry after the backoff",
       {Kind::Sent, 503, ""},
       1,
       false,
       circuitAfter(1),
       settingsWith(3),
       AttemptOutcome::Retry,
       {},
       true,
       kNow + 1'000,
       CircuitEvent::Failure,
       CircuitState::Closed},
      {"transport error: retry",
       {Kind::Sent, std::nullopt, ""},
       0,
       false,
       {},
       settingsWith(3),
       AttemptOutcome::Retry,
       {},
       true,
       kNow + 1'000,
       CircuitEvent::Failure,
       CircuitState::Closed},
      {"429 with Retry-After: honoured within the bounds",
       {Kind::Sent, 429, "5"},
       0,
       false,
       {},
       settingsWith(3, Millis(1'000), Millis(60'000)),
       AttemptOutcome::Retry,
       {},
       true,
       kNow + 5'000,
       CircuitEvent::Failure,
       CircuitState::Closed},
      {"503 spending the last attempt: dead",
       {Kind::Sent, 503, ""},
       2,
       false,
       circuitAfter(2),
       settingsWith(3),
       AttemptOutcome::Dead,
       DeadReason::MaxAttempts,
       true,
       0,
       CircuitEvent::Failure,
       CircuitState::Closed},
      {"the failure that opens the circuit: back to receive order",
       {Kind::Sent, 503, ""},
       0,
       false,
       circuitAfter(CircuitBreaker::kOpenAfter - 1),
       settingsWith(20),
       AttemptOutcome::Retry,
       {},
       true,
       kReceived,
       CircuitEvent::Failure,
       CircuitState::Open},
      {"404: rejected, and the target is up",
       {Kind::Sent, 404, ""},
       0,
       false,
       circuitAfter(3),
       settingsWith(3),
       AttemptOutcome::Dead,
       DeadReason::Rejected,
       true,
       0,
       CircuitEvent::Success,
       CircuitState::Closed},
      {"refused redirect: rejected",
       {Kind::RedirectRefused, 307, ""},
       0,
       false,
       {},
       settingsWith(3),
       AttemptOutcome::Dead,
       DeadReason::Rejected,
       true,
       0,
       CircuitEvent::Success,
       CircuitState::Closed},
      {"failed probe: no attempt spent, place kept",
       {Kind::Sent, 503, ""},
       7,
       true,
       halfOpen(),
       settingsWith(3),
       AttemptOutcome::ProbeFailed,
       {},
       false,
       kReceived,
       CircuitEvent::Failure,
       CircuitState::Open},
      {"delivered probe: the circuit closes",
       {Kind::Sent, 200, ""},
       7,
       true,
       halfOpen(),
       settingsWith(3),
       AttemptOutcome::Delivered,
       {},
       false,
       0,
       CircuitEvent::Success,
       CircuitState::Closed},
      {"rejected probe: dead, an attempt spent",
       {Kind::Sent, 422, ""},
       0,
       true,
       halfOpen(),
       settingsWith(3),
       AttemptOutcome::Dead,
       DeadReason::Rejected,
       true,
       0,
       CircuitEvent::Success,
       CircuitState::Closed},
      {"unbuildable, circuit closed: dead, the circuit untouched",
       {Kind::Unbuildable, std::nullopt, ""},
       0,
       false,
       circuitAfter(2),
       settingsWith(3),
       AttemptOutcome::Dead,
       DeadReason::Rejected,
       true,
       0,
       CircuitEvent::None,
       CircuitState::Closed},
      {"unbuildable, circuit open: dead, the circuit stays open",
       {Kind::Unbuildable, std::nullopt, ""},
       0,
       false,
       circuitAfter(CircuitBreaker::kOpenAfter),
       settingsWith(3),
       AttemptOutcome::Dead,
       DeadReason::Rejected,
       true,
       0,
       CircuitEvent::None,
       CircuitState::Open},
  };
  for (const Case& c : cases) {
    const std::string case_name = c.name;
    CAPTURE(case_name);
    journal::DueDelivery delivery;
    delivery.attempts = c.attempts_spent;
    delivery.due_ms = kDue;
    delivery.age_from_ms = kReceived;
    std::mt19937_64 random(7);
    const Decision decision = decide(c.result, delivery, c.probe, c.target, c.circuit, kNow, random);
    CHECK(decision.outcome == c.outcome);
    if (c.outcome == AttemptOutcome::Dead) CHECK(decision.dead_reason == c.reason);
    CHECK(decision.spends_attempt == c.spends_attempt);
    if (c.outcome == AttemptOutcome::Retry || c.outcome == AttemptOutcome::ProbeFailed)
      CHECK(decision.next_due_ms == c.next_due_ms);
    CHECK(decision.circuit == c.event);
    CircuitBreaker circuit = c.circuit;
    const int failures_before = circuit.consecutiveFailures();
    circuit.apply(decision.circuit, kNow, decision.next_probe_delay);
    CHECK(circuit.state() == c.circuit_after);
    if (decision.circuit == CircuitEvent::None) CHECK(circuit.consecutiveFailures() == failures_before);
    if (decision.circuit == CircuitEvent::Failure) CHECK(decision.next_probe_delay >= c.target.backoff_min);
  }
}

TEST_CASE("decide is a function of its inputs: the same inputs and random state, the same decision") {
  journal::DueDelivery delivery;
  delivery.attempts = 3;
  delivery.due_ms = kDue;
  delivery.age_from_ms = kReceived;
  const auto target = settingsWith(20, Millis(1'000), Millis(3'600'000));
  for (int seed = 0; seed < 50; ++seed) {
    std::mt19937_64 first(seed);
    std::mt19937_64 second(seed);
    const Decision a = decide({Kind::Sent, 500, ""}, delivery, false, target, circuitAfter(1), kNow, first);
    const Decision b = decide({Kind::Sent, 500, ""}, delivery, false, target, circuitAfter(1), kNow, second);
    CHECK(a.next_due_ms == b.next_due_ms);
    CHECK(a.next_probe_delay == b.next_probe_delay);
    // 4 attempts spent: uniform in [MIN, MIN * 2^3].
    CHECK(a.next_due_ms >= kNow + 1'000);
    CHECK(a.next_due_ms <= kNow + 8'000);
  }
}
