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
// - Sign-ins are slowed per remote address, not locked out: over an SSH
//   tunnel every operator arrives as 127.0.0.1, and a lock-out there would
//   lock out the whole team. The first failures cost nothing; after the n-th
//   (n >= `free_failures`) that address waits 2^(n - free_failures) s before
//   its next try, capped at `max_wait` (1, 2, 4, 8, 16, 30, 30 ... s after the
//   3rd, 4th ... failure by default): at most one
//   guess per 30 s per address, about 2,900 a day, while a team mate with the
//   right password waits at most 30 s. Waiting attempts are answered 429 with
//   Retry-After without the password being checked. Each attempt counts as a
//   failure from the moment it is let through (attempts sent at once cannot
//   all pass while the password is checked); a success clears the address, and
//   `forget` without an attempt forgets it.
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
  explicit SignInLimiter(int free_failures = 3, std::int64_t max_wait_ms = 30'000,
                         std::int64_t forget_ms = 15 * 60 * 1000);

  struct Attempt {
    std::int64_t retry_after_ms = 0;  // > 0: not now; the password must not be checked
    int failures = 0;                 // let through: the address's failures, this attempt counted
  };
  // Lets an attempt from `remote` through (counted as a failure until
  // succeeded()), or says how long it must wait.
  [[nodiscard]] Attempt attempt(const std::string& remote, std::int64_t now_ms);
  void succeeded(const std::string& remote);
  // How long an address waits after `failures` failures.
  [[nodiscard]] std::int64_t waitAfter(int failures) const;

 private:
  struct Failures {
    int count = 0;
    std::int64_t last_ms = 0;
  };
  Failures& failuresOf(const std::string& remote, std::int64_t now_ms);

  int free_failures_;
  std::int64_t max_wait_ms_;
  std::int64_t forget_ms_;
  std::mutex mutex_;
  std::map<std::string, Failures> failures_;
};

}  // namespace mews::console
