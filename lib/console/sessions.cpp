#include "console/sessions.h"

#include <algorithm>

#include "auth/password.h"
#include "auth/secrets.h"

namespace mews::console {
namespace {

constexpr std::size_t kActionsPerSession = 8;
// Past this many addresses the limiter counts the rest together, so that a
// flood of sources cannot grow the table without bound.
constexpr std::size_t kMaxTrackedAddresses = 1024;
const std::string kOverflowKey = "*";

}  // namespace

SessionStore::SessionStore(std::int64_t lifetime_ms, std::size_t capacity)
    : lifetime_ms_(lifetime_ms), capacity_(capacity) {}

void SessionStore::dropExpired(std::int64_t now_ms) {
  for (auto it = entries_.begin(); it != entries_.end();)
    it = it->second.session.expires_ms <= now_ms ? entries_.erase(it) : std::next(it);
}

Session SessionStore::create(std::int64_t now_ms) {
  Session session{auth::randomHex(32), auth::randomHex(32), now_ms, now_ms + lifetime_ms_};
  std::lock_guard lock(mutex_);
  dropExpired(now_ms);
  while (entries_.size() >= capacity_) {
    const auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
      return a.second.session.created_ms < b.second.session.created_ms;
    });
    entries_.erase(oldest);
  }
  entries_[auth::sha256Hex(session.id)] = Entry{session, {}, 1};
  return session;
}

std::optional<Session> SessionStore::find(std::string_view id, std::int64_t now_ms) {
  if (id.empty()) return std::nullopt;
  const std::string key = auth::sha256Hex(id);
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  if (it->second.session.expires_ms <= now_ms) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.session;
}

bool SessionStore::end(std::string_view id) {
  const std::string key = auth::sha256Hex(id);
  std::lock_guard lock(mutex_);
  return entries_.erase(key) != 0;
}

int SessionStore::addAction(std::string_view session_id, ActionResult result) {
  const std::string key = auth::sha256Hex(session_id);
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return 0;
  result.number = it->second.next_action++;
  it->second.actions.push_back(std::move(result));
  while (it->second.actions.size() > kActionsPerSession) it->second.actions.pop_front();
  return it->second.actions.back().number;
}

std::optional<ActionResult> SessionStore::action(std::string_view session_id, int number) const {
  const std::string key = auth::sha256Hex(session_id);
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  for (const auto& result : it->second.actions)
    if (result.number == number) return result;
  return std::nullopt;
}

SignInLimiter::SignInLimiter(int free_failures, std::int64_t max_wait_ms, std::int64_t forget_ms)
    : free_failures_(free_failures), max_wait_ms_(max_wait_ms), forget_ms_(forget_ms) {}

std::int64_t SignInLimiter::waitAfter(int failures) const {
  if (failures < free_failures_) return 0;
  const int doublings = failures - free_failures_;
  // 2^15 s is past any cap worth having; stop shifting before it overflows.
  if (doublings >= 15) return max_wait_ms_;
  return std::min<std::int64_t>(std::int64_t{1000} << doublings, max_wait_ms_);
}

SignInLimiter::Failures& SignInLimiter::failuresOf(const std::string& remote, std::int64_t now_ms) {
  const auto forgotten = [&](const Failures& f) { return f.last_ms + forget_ms_ <= now_ms; };
  if (failures_.count(remote) == 0 && failures_.size() >= kMaxTrackedAddresses) {
    for (auto it = failures_.begin(); it != failures_.end();)
      it = forgotten(it->second) ? failures_.erase(it) : std::next(it);
    if (failures_.size() >= kMaxTrackedAddresses) return failures_[kOverflowKey];
  }
  auto& failures = failures_[remote];
  if (forgotten(failures)) failures = {};
  return failures;
}

SignInLimiter::Attempt SignInLimiter::attempt(const std::string& remote, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto& failures = failuresOf(remote, now_ms);
  const std::int64_t wait = waitAfter(failures.count);
  if (wait > 0 && now_ms < failures.last_ms + wait) return {failures.last_ms + wait - now_ms, failures.count};
  ++failures.count;
  failures.last_ms = now_ms;
  return {0, failures.count};
}

void SignInLimiter::succeeded(const std::string& remote) {
  std::lock_guard lock(mutex_);
  failures_.erase(remote);
}

}  // namespace mews::console
