#include "delivery/policy.h"

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <algorithm>
#include <charconv>

namespace mews::delivery {

AttemptVerdict classify(std::optional<int> status) {
  if (!status) return AttemptVerdict::Retry;
  const int code = *status;
  if (code >= 200 && code < 300) return AttemptVerdict::Delivered;
  if (code == 408 || code == 425 || code == 429 || code >= 500) return AttemptVerdict::Retry;
  return AttemptVerdict::Reject;
}

Millis backoffDelay(int failures, Millis min, Millis max, std::mt19937_64& random) {
  const int doublings = std::clamp(failures - 1, 0, 40);
  // Saturating MIN * 2^doublings.
  const std::int64_t base = std::max<std::int64_t>(min.count(), 1);
  const std::int64_t ceiling =
      doublings >= 62 || base > (max.count() >> doublings) ? max.count() : std::min(max.count(), base << doublings);
  std::uniform_int_distribution<std::int64_t> pick(min.count(), std::max(min.count(), ceiling));
  return Millis(pick(random));
}

std::optional<Millis> parseRetryAfter(std::string_view value, std::int64_t now_ms) {
  if (value.empty()) return std::nullopt;
  std::int64_t seconds = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc{} && end == value.data() + value.size()) {
    if (seconds < 0) return std::nullopt;
    return Millis(std::min<std::int64_t>(seconds, 365LL * 86400) * 1000);
  }
  // Poco's parser is lenient ("soon" parses); an IMF-fixdate is 29 characters ending in GMT.
  if (value.size() != 29 || value.substr(26) != "GMT") return std::nullopt;
  Poco::DateTime date;
  int tz = 0;
  if (!Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::HTTP_FORMAT, std::string(value), date, tz))
    return std::nullopt;
  date.makeUTC(tz);
  const std::int64_t at_ms = date.timestamp().epochMicroseconds() / 1000;
  return Millis(std::max<std::int64_t>(0, at_ms - now_ms));
}

Millis retryDelay(int failures, Millis min, Millis max, std::optional<Millis> retry_after, std::mt19937_64& random) {
  if (retry_after) return std::clamp(*retry_after, min, max);
  return backoffDelay(failures, min, max, random);
}

std::string_view circuitName(CircuitState state) {
  switch (state) {
    case CircuitState::Closed:
      return "closed";
    case CircuitState::Open:
      return "open";
    case CircuitState::HalfOpen:
      break;
  }
  return "half_open";
}

int CircuitBreaker::admits(int free_slots, std::int64_t now_ms) const {
  switch (state_) {
    case CircuitState::Closed:
      return free_slots;
    case CircuitState::Open:
      return free_slots > 0 && now_ms >= probe_at_ms_ ? 1 : 0;
    case CircuitState::HalfOpen:
      break;  // the probe is in flight
  }
  return 0;
}

void CircuitBreaker::onDispatch(std::int64_t now_ms) {
  if (state_ == CircuitState::Open && now_ms >= probe_at_ms_) state_ = CircuitState::HalfOpen;
}

void CircuitBreaker::onSuccess() {
  state_ = CircuitState::Closed;
  failures_ = 0;
}

void CircuitBreaker::onFailure(std::int64_t now_ms, Millis next_probe_delay) {
  ++failures_;
  if (state_ == CircuitState::HalfOpen || (state_ == CircuitState::Closed && failures_ >= kOpenAfter) ||
      state_ == CircuitState::Open) {
    state_ = CircuitState::Open;
    probe_at_ms_ = now_ms + next_probe_delay.count();
  }
}

void CircuitBreaker::apply(CircuitEvent event, std::int64_t now_ms, Millis next_probe_delay) {
  switch (event) {
    case CircuitEvent::Success:
      onSuccess();
      break;
    case CircuitEvent::Failure:
      onFailure(now_ms, next_probe_delay);
      break;
    case CircuitEvent::None:
      break;
  }
}

Decision decide(const AttemptResult& result, const journal::DueDelivery& delivery, bool probe,
                const config::TargetSettings& target, const CircuitBreaker& circuit, std::int64_t now_ms,
                std::mt19937_64& random) {
  using journal::AttemptOutcome;
  using journal::DeadReason;
  Decision decision;
  decision.spends_attempt = !probe;
  AttemptVerdict verdict = AttemptVerdict::Reject;
  switch (result.kind) {
    case AttemptResult::Kind::Unbuildable:
      // Nothing was sent: the item is dead, the target not judged.
      decision.outcome = AttemptOutcome::Dead;
      decision.dead_reason = DeadReason::Rejected;
      return decision;
    case AttemptResult::Kind::RedirectRefused:
      verdict = AttemptVerdict::Reject;
      break;
    case AttemptResult::Kind::Sent:
      verdict = classify(result.status);
      break;
  }
  switch (verdict) {
    case AttemptVerdict::Delivered:
      decision.outcome = AttemptOutcome::Delivered;
      decision.circuit = CircuitEvent::Success;
      return decision;
    case AttemptVerdict::Reject:
      // The target answered: it is up, whatever it thought of this request.
      decision.outcome = AttemptOutcome::Dead;
      decision.dead_reason = DeadReason::Rejected;
      decision.spends_attempt = true;
      decision.circuit = CircuitEvent::Success;
      return decision;
    case AttemptVerdict::Retry:
      break;
  }
  const auto retry_after = parseRetryAfter(result.retry_after, now_ms);
  const int spent = delivery.attempts + (decision.spends_attempt ? 1 : 0);
  const Millis delay = retryDelay(std::max(spent, 1), target.backoff_min, target.backoff_max, retry_after, random);
  decision.circuit = CircuitEvent::Failure;
  decision.next_probe_delay =
      retryDelay(circuit.consecutiveFailures() + 1, target.backoff_min, target.backoff_max, retry_after, random);
  CircuitBreaker after = circuit;
  after.apply(decision.circuit, now_ms, decision.next_probe_delay);
  // Its place in receive order: the head of the queue a probe paces.
  const std::int64_t in_receive_order = std::min(delivery.due_ms, delivery.age_from_ms);
  if (probe) {
    decision.outcome = AttemptOutcome::ProbeFailed;
    decision.next_due_ms = in_receive_order;
  } else if (spent >= target.max_attempts) {
    decision.outcome = AttemptOutcome::Dead;
    decision.dead_reason = DeadReason::MaxAttempts;
  } else if (after.state() != CircuitState::Closed) {
    // The circuit is open: the probe paces the target now; back to its place in
    // receive order, like the rest of the target's waiting work.
    decision.outcome = AttemptOutcome::Retry;
    decision.next_due_ms = in_receive_order;
  } else {
    decision.outcome = AttemptOutcome::Retry;
    decision.next_due_ms = now_ms + delay.count();
  }
  return decision;
}

}  // namespace mews::delivery
