// Wall-clock limits for delivery attempts. Poco's timeouts apply to each socket
// operation: a target that sends its status line and then one header byte a
// second (or reads the request body a few bytes at a time) satisfies every one
// of them and could hold an attempt, and its worker, indefinitely. So each
// attempt is armed with a deadline (now + the target's `timeout`) that bounds
// the whole of it, redirects included: when it passes, the watchdog thread
// shuts the attempt's connection down, and whatever read, write or TLS step the
// worker is blocked in returns at once.
//
// The connection is watched through a duplicate of its descriptor, owned by the
// AttemptDeadline and closed only under its lock: Poco may close the session's
// own descriptor (a kept-alive connection the server closed, then reconnected)
// and the number may be reused by another connection at any moment, but the
// duplicate always refers to the connection the attempt was using, so the
// watchdog can never shut down someone else's socket.
//
// Not covered by the watchdog: the name lookup (the system resolver's own
// timeouts) and the TCP connect and TLS handshake of a new connection, which
// are bounded by Poco's per-operation timeouts set to the time the attempt has
// left (the connection is watched from the moment it is established).
//
// Stopping the relay cuts every attempt at one common time (cutAllBy), and a
// lost lease cuts its target's attempts (cutGroupBy): an attempt ended by
// either, rather than by its own deadline, is abandoned.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

namespace Poco::Net {
class StreamSocket;
}

namespace mews::delivery {

using SteadyTime = std::chrono::steady_clock::time_point;

class AttemptDeadline {
 public:
  AttemptDeadline(SteadyTime at, SteadyTime cut_at, std::string group)
      : at_(at), cut_at_(cut_at), group_(std::move(group)) {}
  ~AttemptDeadline();
  AttemptDeadline(const AttemptDeadline&) = delete;
  AttemptDeadline& operator=(const AttemptDeadline&) = delete;

  // The connection the attempt uses from now on (a kept-alive one, or one just
  // connected). Shut down at once when the deadline has already passed.
  void watch(const Poco::Net::StreamSocket& socket);
  // Time left until the deadline (or the stop's cut), zero once passed.
  [[nodiscard]] std::chrono::milliseconds remaining() const;
  // The deadline (or the stop's cut) has passed.
  [[nodiscard]] bool expired() const;
  // It passed because the relay is stopping, before the attempt's own deadline.
  [[nodiscard]] bool abandoned() const;

 private:
  friend class AttemptWatchdog;
  // Called with mutex_ held.
  [[nodiscard]] SteadyTime dueAt() const { return std::min(at_, cut_at_); }
  // On the watchdog thread: mark expired and shut the connection down.
  void expire();
  void cut(SteadyTime at);
  void closeWatched();

  mutable std::mutex mutex_;
  const SteadyTime at_;
  SteadyTime cut_at_;
  const std::string group_;  // the target's name: cutGroupBy()
  int watched_fd_ = -1;      // our duplicate of the connection's descriptor
  bool expired_ = false;
};

class AttemptWatchdog {
 public:
  AttemptWatchdog();
  ~AttemptWatchdog();
  AttemptWatchdog(const AttemptWatchdog&) = delete;
  AttemptWatchdog& operator=(const AttemptWatchdog&) = delete;

  // One attempt's registration: watched while this lives.
  class Armed {
   public:
    Armed(AttemptWatchdog& watchdog, std::shared_ptr<AttemptDeadline> deadline)
        : watchdog_(watchdog), deadline_(std::move(deadline)) {}
    ~Armed();
    Armed(const Armed&) = delete;
    Armed& operator=(const Armed&) = delete;
    AttemptDeadline& operator*() const { return *deadline_; }
    AttemptDeadline* operator->() const { return deadline_.get(); }

   private:
    AttemptWatchdog& watchdog_;
    std::shared_ptr<AttemptDeadline> deadline_;
  };

  // An attempt that must end within `timeout` from now; `group` names its
  // target, for cutGroupBy().
  [[nodiscard]] Armed arm(std::chrono::milliseconds timeout, std::string group = {});
  // Every attempt armed now or later ends by `at` at the latest.
  void cutAllBy(SteadyTime at);
  // The attempts of `group` armed now, and those armed later until
  // clearGroupCut(), end by `at` at the latest (the relay lost the target's
  // lease: journal/leases.h). A worker that checked the lease just before it
  // was lost still cannot start a full attempt.
  void cutGroupBy(const std::string& group, SteadyTime at);
  void clearGroupCut(const std::string& group);

 private:
  void run();
  void disarm(const std::shared_ptr<AttemptDeadline>& deadline);

  std::mutex mutex_;  // taken before any AttemptDeadline's
  std::condition_variable wake_;
  std::set<std::shared_ptr<AttemptDeadline>> armed_;
  SteadyTime cut_at_ = SteadyTime::max();
  std::map<std::string, SteadyTime> group_cut_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mews::delivery
