// Who is signed in to the console (console/sessions.*): sessions, their CSRF
// tokens, the results of the actions taken in them, and the sign-in rate
// limit. All in memory: a restart signs everybody out, which is the safe side.
//
// - A session id is 32 random bytes (hex) sent only as an HttpOnly,
//   SameSite=Strict cookie (Secure over TLS). It is looked up by its SHA-256,
//   so a lookup's timing says nothing about stored ids. A session expires
//   `lifetime` after sign-in and ends at sign-out; at most `capacity` live at
//   once (the oldest goes first).
// - Each session has its own CSRF token (32 random bytes), carried by every
//   form as a hidden field and compared in constant time.
// - Sign-in failures are counted per remote address in a sliding window;
//   past `max_failures` that address waits (answered 429 with Retry-After)
//   without the password even being checked.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mews::console {

// What one replay or purge did, kept so that its page can show the replayed
// items' states as they go out.
struct ActionResult {
  int number = 0;
  std::string summary;  // "Replayed 3 dead letters of crm"
  std::int64_t at_ms = 0;
  std::int64_t count = 0;
  std::vector<std::int64_t> delivery_ids;  // the replayed items (at most kMaxTrackedItems)
  bool truncated = false;                  // more were replayed than are tracked
};
inline constexpr std::size_t kMaxTrackedItems = 10'000;

struct Session {
  std::string id;
  std::string csrf;
  std::int64_t created_ms = 0;
  std::int64_t expires_ms = 0;
};

class SessionStore {
 public:
  explicit SessionStore(std::int64_t lifetime_ms, std::size_t capacity = 64);

  Session create(std::int64_t now_ms);
  [[nodiscard]] std::optional<Session> find(std::string_view id, std::int64_t now_ms);
  // False when there was no such session.
  bool end(std::string_view id);
  // Keeps the last few results per session; returns the new one's number (0
  // when the session is gone).
  int addAction(std::string_view session_id, ActionResult result);
  [[nodiscard]] std::optional<ActionResult> action(std::string_view session_id, int number) const;

 private:
  struct Entry {
    Session session;
    std::deque<ActionResult> actions;
    int next_action = 1;
  };
  void dropExpired(std::int64_t now_ms);

  std::int64_t lifetime_ms_;
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;  // by SHA-256 of the id
};

class SignInLimiter {
 public:
  explicit SignInLimiter(int max_failures = 5, std::int64_t window_ms = 15 * 60 * 1000);
  // 0 when `remote` may try now; otherwise milliseconds until it may.
  [[nodiscard]] std::int64_t retryAfterMs(const std::string& remote, std::int64_t now_ms);
  // Returns the failures of `remote` within the window, this one included.
  int failed(const std::string& remote, std::int64_t now_ms);
  void succeeded(const std::string& remote);

 private:
  std::deque<std::int64_t>& failuresOf(const std::string& remote, std::int64_t now_ms);

  int max_failures_;
  std::int64_t window_ms_;
  std::mutex mutex_;
  std::map<std::string, std::deque<std::int64_t>> failures_;
};

}  // namespace mews::console
