#include <doctest/doctest.h>

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
  CHECK(backoffDelay(1, min, max, random) <= min);  // first retry: exactly MIN
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
  CHECK_FALSE(circuit.spendsAttempts());
  circuit.onFailure(t0 + 1'100, Millis(2'000));
  CHECK(circuit.state() == CircuitState::Open);
  CHECK(circuit.probeAtMs() == t0 + 3'100);
  circuit.onDispatch(t0 + 3'100);
  circuit.onSuccess();
  CHECK(circuit.state() == CircuitState::Closed);
  CHECK(circuit.consecutiveFailures() == 0);
  CHECK(circuit.admits(4, t0 + 3'200) == 4);
}
