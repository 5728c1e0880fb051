// Outbound HTTP for one target: POST with keep-alive connections reused
// (a small pool, up to the target's concurrency), HTTPS through NetSSL with the
// system CA store. The target's `timeout` bounds the whole attempt by wall
// clock: connect, sending the request, the response head and the reading of
// its body, over every redirect hop (see deadline.h for how, and what it does
// not cover). A body still arriving at the deadline is cut off: the status,
// already in, is what counts. Every socket operation's own timeout is the time
// the attempt has left.
// 307/308 are followed per the target's `redirects` (same scheme, host and port
// by default; at most kMaxRedirects hops; the configured header.* values are
// never sent to another origin). The response body is read up to kExcerptBytes
// for the record and kDrainBytes in all; a longer one closes the connection.
//
// Never throws: every failure comes back as an HttpAttempt with `error` set and
// no status, which the retry policy treats as retryable.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <Poco/URI.h>

#include "config/config.h"
#include "delivery/deadline.h"

namespace mews::delivery {

class PooledSession;

inline constexpr std::size_t kExcerptBytes = 512;
inline constexpr std::size_t kDrainBytes = 64 * 1024;
inline constexpr int kMaxRedirects = 3;

struct HttpAttempt {
  std::optional<int> status;
  std::string error;
  std::string retry_after;
  std::string response_excerpt;
  std::chrono::milliseconds duration{0};
  // A redirect the client would not follow (other host, too many hops): not retryable.
  bool redirect_refused = false;
  // The relay stopped before the attempt came to anything (no status): nothing
  // is known of it, so it is not judged; its delivery is released.
  bool abandoned = false;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

class TargetClient {
 public:
  // `watchdog` outlives the client.
  TargetClient(const config::TargetSettings& target, AttemptWatchdog& watchdog);
  ~TargetClient();
  TargetClient(const TargetClient&) = delete;
  TargetClient& operator=(const TargetClient&) = delete;

  HttpAttempt post(const std::string& body, const Headers& headers);

 private:
  // `reused`: the session is a kept-alive one, which the server may have closed.
  std::unique_ptr<PooledSession> acquire(const Poco::URI& uri, bool& reused);
  void release(std::unique_ptr<PooledSession> session, const Poco::URI& uri);
  const Headers& withoutConfigured(const Headers& headers, Headers& storage) const;
  HttpAttempt postOnce(const Poco::URI& uri, const std::string& body, const Headers& headers, AttemptDeadline& deadline,
                       std::optional<std::string>& location, bool& reused);

  Poco::URI uri_;
  std::chrono::milliseconds timeout_;
  std::string name_;  // the target's: its attempts' group on the watchdog
  std::size_t max_idle_;
  config::RedirectPolicy redirects_;
  std::set<std::string> configured_headers_;  // lower-case names of the target's header.*
  AttemptWatchdog& watchdog_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<PooledSession>> idle_;
};

// Once per process, before the first HTTPS request.
void initializeTls();

}  // namespace mews::delivery
