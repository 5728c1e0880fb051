// Deadlines for the public listener's connections: what stops a slow-loris or
// slow-body client from holding one of the `max_connections` threads.
//
// Every request must arrive whole (head and body) within `request_timeout` of
// the moment the connection could start sending it (accept, or the end of the
// previous response on a keep-alive connection). Poco reads the head itself,
// blocking, so a watchdog thread enforces the deadline from outside:
//
//   phase      who reads        on the deadline
//   Waiting    Poco (the head)  plain: the watchdog writes a 408 and shuts the
//                               socket down; TLS: shut down without an answer
//                               (a second writer would corrupt the TLS stream)
//   Body       our handler      the watchdog shuts down the socket's read side;
//                               the handler's blocked read returns and it answers 408.
//                               Also when, after the body's first second, it has
//                               averaged less than min_body_rate bytes per second.
//   Working    -                none: the commit wait has its own bound (kCommitWait)
//
// The handler checks the same deadline, and the minimum body rate, between
// reads (see server.cpp). A connection's entry holds a copy of its socket, so
// the descriptor the watchdog shuts down cannot have been reused.
#pragma once

#include <Poco/Net/StreamSocket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

namespace mews::ingest {

class ConnectionGuard {
 public:
  enum class Phase { Waiting, Body, Working };

  struct Entry {
    Poco::Net::StreamSocket socket;
    Phase phase = Phase::Waiting;
    std::chrono::steady_clock::time_point armed_at;
    std::chrono::steady_clock::time_point body_started;
    std::atomic<std::uint64_t> body_bytes{0};  // written by the handler as bytes arrive
    bool expired = false;                      // the watchdog acted; the connection is finished
  };

  // `on_expired(remote)` runs on the watchdog thread for each request it cut
  // off while Poco was reading the head (the handler reports the body's).
  ConnectionGuard(std::chrono::milliseconds request_timeout, std::uint64_t min_body_rate, bool tls,
                  std::function<void(const std::string& remote)> on_expired);
  ~ConnectionGuard();
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;

  std::shared_ptr<Entry> track(const Poco::Net::StreamSocket& socket);
  void untrack(const std::shared_ptr<Entry>& entry);

  // The handler started on a request: the body is read next. False when the
  // watchdog already expired the connection (nothing more may be written).
  bool beginBody(Entry& entry);
  void endBody(Entry& entry);
  // The response is sent: the next request's deadline starts now.
  void endRequest(Entry& entry);
  // The request is over its deadline or its body below the minimum rate: the
  // handler answers 408 (the watchdog may have shut the read side down already).
  [[nodiscard]] bool tooSlow(const Entry& entry) const;

  // The entry of the connection served by the calling thread (Poco runs a
  // connection's requests on one thread), or null outside a guarded connection.
  static Entry* current();
  static void setCurrent(Entry* entry);

 private:
  void watch();
  void expire(Entry& entry);
  // Called with mutex_ held.
  [[nodiscard]] bool overdue(const Entry& entry, std::chrono::steady_clock::time_point now) const;

  const std::chrono::milliseconds request_timeout_;
  const std::uint64_t min_body_rate_;
  const bool tls_;
  std::function<void(const std::string&)> on_expired_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::set<std::shared_ptr<Entry>> entries_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mews::ingest
