#include "console/sessions.h"

#include <algorithm>

#include "console/password.h"

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
  Session session{randomHex(32), randomHex(32), now_ms, now_ms + lifetime_ms_};
  std::lock_guard lock(mutex_);
  dropExpired(now_ms);
  while (entries_.size() >= capacity_) {
    const auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
      return a.second.session.created_ms < b.second.session.created_ms;
    });
    entries_.erase(oldest);
  }
  entries_[sha256Hex(session.id)] = Entry{session, {}, 1};
  return session;
}

std::optional<Session> SessionStore::find(std::string_view id, std::int64_t now_ms) {
  if (id.empty()) return std::nullopt;
  const std::string key = sha256Hex(id);
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
  const std::string key = sha256Hex(id);
  std::lock_guard lock(mutex_);
  return entries_.erase(key) != 0;
}

int SessionStore::addAction(std::string_view session_id, ActionResult result) {
  const std::string key = sha256Hex(session_id);
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return 0;
  result.number = it->second.next_action++;
  it->second.actions.push_back(std::move(result));
  while (it->second.actions.size() > kActionsPerSession) it->second.actions.pop_front();
  return it->second.actions.back().number;
}

std::optional<ActionResult> SessionStore::action(std::string_view session_id, int number) const {
  const std::string key = sha256Hex(session_id);
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  for (const auto& result : it->second.actions)
    if (result.number == number) return result;
  return std::nullopt;
}

SignInLimiter::SignInLimiter(int max_failures, std::int64_t window_ms)
    : max_failures_(max_failures), window_ms_(window_ms) {}

std::deque<std::int64_t>& SignInLimiter::failuresOf(const std::string& remote, std::int64_t now_ms) {
  if (failures_.count(remote) == 0 && failures_.size() >= kMaxTrackedAddresses) {
    for (auto it = failures_.begin(); it != failures_.end();)
      it = (it->second.empty() || it->second.back() + window_ms_ <= now_ms) ? failures_.erase(it) : std::next(it);
    if (failures_.size() >= kMaxTrackedAddresses) return failures_[kOverflowKey];
  }
  auto& times = failures_[remote];
  while (!times.empty() && times.front() + window_ms_ <= now_ms) times.pop_front();
  return times;
}

std::int64_t SignInLimiter::retryAfterMs(const std::string& remote, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  const auto& times = failuresOf(remote, now_ms);
  if (static_cast<int>(times.size()) < max_failures_) return 0;
  return std::max<std::int64_t>(1, times.front() + window_ms_ - now_ms);
}

int SignInLimiter::failed(const std::string& remote, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto& times = failuresOf(remote, now_ms);
  times.push_back(now_ms);
  return static_cast<int>(times.size());
}

void SignInLimiter::succeeded(const std::string& remote) {
  std::lock_guard lock(mutex_);
  failures_.erase(remote);
}

}  // namespace mews::console
