// Deadlines and capacity for the public listener's connections: what stops a
// slow-loris or slow-body client, or a crowd of idle keep-alive connections,
// from holding the `max_connections` threads.
//
// Every request must arrive whole (head and body) within `request_timeout` of
// the moment the connection could start sending it (accept, or the end of the
// previous response on a keep-alive connection). Poco reads the head itself,
// blocking, so a watchdog thread enforces the deadline from outside:
//
//   phase      who reads        on the deadline
//   Idle       nobody: Poco     (Poco's own poll timeout closes an idle
//              polls for the    keep-alive connection first, at half the deadline)
//              next request
//   Head       Poco (the head)  plain: the watchdog writes a 408 and shuts the
//                               socket down; TLS: shut down without an answer
//                               (a second writer would corrupt the TLS stream).
//                               The same for an Idle connection that never sent.
//   Body       our handler      the watchdog shuts down the socket's read side;
//                               the handler's blocked read returns and it answers 408.
//                               Also when, after the body's first second, it has
//                               averaged less than min_body_rate bytes per second.
//   Working    -                none: the commit wait has its own bound (kCommitWait)
//
// stopAll() (the server stopping) closes Idle connections at once; the others
// finish the request they are on and then close.
//
// The handler checks the same deadline, and the minimum body rate, between
// reads (see server.cpp). A connection is untracked before its socket is
// closed, so the descriptor the watchdog shuts down cannot have been reused.
//
// Over plain HTTP, HeadGate (head_gate.h) holds a connection until its head is
// whole and calls admit() then, once per request: the Idle and Head phases
// last microseconds here, and the gate answers a head that stalls. Over TLS
// the phases are as above.
//
// Capacity (one thread per connection, Poco's model). admit() runs on the
// accept thread (the gate's, over plain HTTP) for every new connection:
//   - up to `max_running` connections are served at once, and up to
//     `max_waiting` more wait in Poco's queue for a thread;
//   - while one waits and every thread is taken, the watchdog closes Idle
//     connections (between requests with no byte of a next one received, or
//     connected and silent for a second), longest idle first, one per waiting
//     connection. That is the ordinary keep-alive close (nginx does the same
//     when it runs out of connections); a client whose next request crosses
//     it retries on a new connection, as with any keep-alive timeout;
//   - beyond both, admit() refuses: over plain HTTP it writes a 503 with
//     `Retry-After` and `Connection: close` and keeps the socket for up to
//     kLingerTime, reading and discarding what the client sends, so that the
//     close does not reset the answer away; over TLS it closes without an
//     answer (the handshake would need a thread). Refusals are reported once
//     a second, with their count.
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
#include <string>
#include <thread>
#include <vector>

namespace mews::http {

class ConnectionGuard {
 public:
  enum class Phase { Idle, Head, Body, Working };

  struct Entry {
    Poco::Net::StreamSocket socket;
    Phase phase = Phase::Idle;
    std::chrono::steady_clock::time_point armed_at;
    std::chrono::steady_clock::time_point body_started;
    std::atomic<std::uint64_t> body_bytes{0};          // written by the handler as bytes arrive
    std::uint64_t responses = 0;                       // sent on this connection
    std::chrono::steady_clock::time_point idle_since;  // accepted, or the end of the last response
    bool expired = false;                              // the watchdog acted; the connection is finished
  };

  struct Limits {
    std::chrono::milliseconds request_timeout{10'000};
    std::uint64_t min_body_rate = 0;
    bool tls = false;
    std::size_t max_running = 4;  // server.max_connections: Poco's threads
    std::size_t max_waiting = 4;  // accepted connections waiting for a thread
  };

  struct Events {
    // A request the watchdog cut off while Poco was reading the head (the
    // handler reports the body's).
    std::function<void(const std::string& remote)> head_expired;
    // Connections admit() refused since the last report (at most one a second).
    std::function<void(std::uint64_t refused)> refused;
  };

  // Callbacks run on the watchdog thread.
  ConnectionGuard(Limits limits, Events events);
  ~ConnectionGuard();
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;

  // On the accept thread, for each new connection: true to queue it for a
  // thread; false when it was refused (answered 503 where possible; Poco drops it).
  bool admit(const Poco::Net::StreamSocket& socket);
  // A connection admitted earlier got its thread / ended.
  std::shared_ptr<Entry> track(const Poco::Net::StreamSocket& socket);
  void untrack(const std::shared_ptr<Entry>& entry);
  // A connection admitted earlier ends without having got its thread.
  void forget();

  // The next request's first byte arrived: Poco reads its head. False when the
  // connection must end instead (reclaimed while idle, or the server stopping).
  bool beginHead(Entry& entry);
  // The handler started on a request: the body is read next. False when the
  // watchdog already expired the connection (nothing more may be written).
  bool beginBody(Entry& entry);
  void endBody(Entry& entry);
  // The response is sent: the next request's deadline starts now.
  void endRequest(Entry& entry);
  // The request is over its deadline or its body below the minimum rate: the
  // handler answers 408 (the watchdog may have shut the read side down already).
  [[nodiscard]] bool tooSlow(const Entry& entry) const;

  // The server is stopping: Idle connections are closed now, and no
  // connection starts another request.
  void stopAll();
  [[nodiscard]] bool stopping() const;

 private:
  // A refused connection, kept open until the client has read its 503.
  struct Lingering {
    Poco::Net::StreamSocket socket;
    std::chrono::steady_clock::time_point until;
  };

  // All called with mutex_ held.
  void watch();
  void expire(Entry& entry);
  [[nodiscard]] bool overdue(const Entry& entry, std::chrono::steady_clock::time_point now) const;
  void refuse(const Poco::Net::StreamSocket& socket);
  void reclaimIdle(std::chrono::steady_clock::time_point now);
  void drainLingering(std::chrono::steady_clock::time_point now);
  void reportRefused(std::chrono::steady_clock::time_point now);

  const Limits limits_;
  const Events events_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::set<std::shared_ptr<Entry>> entries_;
  std::size_t admitted_ = 0;  // admitted and not yet ended: running plus waiting
  std::vector<Lingering> lingering_;
  std::uint64_t refused_unreported_ = 0;
  std::chrono::steady_clock::time_point refused_reported_at_;
  bool stopping_accepting_ = false;  // stopAll() was called
  bool stopping_ = false;            // the watchdog thread ends
  std::thread thread_;
};

}  // namespace mews::http
