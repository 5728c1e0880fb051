// The accepting side of a plain-HTTP listener (the public one and the admin
// one): no thread is given to a connection until its request head has arrived
// whole. One reactor thread (epoll) accepts, waits for each connection's head
// with a deadline, and hands complete heads to a WorkerPool; a slow, silent or
// trickling client costs a descriptor and a few hundred bytes here, never a
// worker. Before this, one thread per connection: 256 connections that each
// sent one byte made a real post wait 9.5 s.
//
// Owns: the listening socket's accept loop, every connection waiting for its
// head (accepted, or handed back by a worker between keep-alive requests).
//
// Invariants:
//   - The head is only peeked (MSG_PEEK), never read here: the kernel keeps the
//     bytes, so a connection holds no buffer of ours while it waits, and the
//     worker reads exactly the head (HeadSocketImpl caps Poco's reads at its
//     length) and nothing of the body or of a pipelined request.
//   - At most `max_waiting` connections wait; a new one beyond that closes the
//     one that has waited longest (an idle keep-alive connection first): a
//     client whose head arrives as it connects, as Mews's does, cannot be kept
//     out by connections that do not send.
//   - A head must be whole within `head_timeout` of the accept (or of the end
//     of the previous response): 408, `head_expired`. A connection handed back
//     that sends nothing within `idle_timeout` is closed silently (keep-alive).
//   - A head over `max_head` bytes, or one the client stopped sending half-way
//     (end of input): 400, `head_refused`.
//   - Answers from here are written without blocking, then the connection is
//     closed lingering (its input read and dropped for up to a second) so the
//     answer is not reset away.
//
// Failure: accept errors (EMFILE) pause accepting until the next tick (100 ms)
// and are logged once a second; the thread never ends before stop().
#pragma once

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/StreamSocketImpl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace mews::http {

// A stream socket whose reads can be capped: Poco reads a head through a
// buffer of its own, and without the cap would take the body's first bytes
// (or a pipelined request) with it.
class HeadSocketImpl final : public Poco::Net::StreamSocketImpl {
 public:
  explicit HeadSocketImpl(poco_socket_t fd) : StreamSocketImpl(fd) {}
  // The next reads return at most `bytes` in all, then end of input, until unlimit().
  void limitReads(std::size_t bytes) { limit_ = bytes; }
  void unlimit() { limit_ = kUnlimited; }
  [[nodiscard]] std::size_t readsLeft() const { return limit_; }
  int receiveBytes(void* buffer, int length, int flags = 0) override;

 private:
  static constexpr std::size_t kUnlimited = ~std::size_t{0};
  std::size_t limit_ = kUnlimited;
};

// Where a request head ends in `bytes`: just past its empty line (CRLF CRLF,
// or a bare LF that framing.h's readHead() then refuses), or 0 while incomplete.
std::size_t headEnd(std::string_view bytes);

// A connection with a whole head waiting in the kernel.
struct GateConnection {
  Poco::Net::StreamSocket socket;  // on a HeadSocketImpl
  HeadSocketImpl* impl = nullptr;  // owned by `socket`
  std::size_t head_size = 0;       // the head's bytes, its empty line included
  std::string remote;              // peer address, for log lines
  std::shared_ptr<void> state;     // what the listener keeps across requests (its HTTP session)
};

// Threads, started as work arrives, up to `max_threads`; a bounded queue.
class WorkerPool {
 public:
  WorkerPool(std::size_t max_threads, std::size_t max_queued);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  // False when the queue is full (or the pool stopped): the caller refuses.
  bool post(std::function<void()> job);
  // Runs what is queued, then joins.
  void stop();

 private:
  void work();

  const std::size_t max_threads_;
  const std::size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool stopping_ = false;
};

class HeadGate {
 public:
  struct Limits {
    std::chrono::milliseconds head_timeout{10'000};
    std::chrono::milliseconds idle_timeout{5'000};
    std::size_t max_head = 32 * 1024;
    std::size_t max_waiting = 1024;
    // A request whose Content-Length is at most this waits here for its whole
    // body too, with the head's deadline (the admin listener's forms and
    // requests are small: a trickled body then holds no thread either); 0: off.
    std::size_t whole_body_up_to = 0;
  };

  struct Events {
    // On the reactor thread; must not block.
    std::function<void(std::shared_ptr<GateConnection>)> ready;
    // A 408 or 400 was written for a head (reason: its JSON reason).
    std::function<void(const std::string& remote)> head_expired;
    std::function<void(const std::string& remote, const std::string& reason)> head_refused;
  };

  // `listening`: bound and listening. The reactor starts at start().
  HeadGate(Poco::Net::ServerSocket listening, Limits limits, Events events);
  ~HeadGate();
  HeadGate(const HeadGate&) = delete;
  HeadGate& operator=(const HeadGate&) = delete;

  void start();
  // Stops accepting and closes every waiting connection.
  void stop();
  // A worker is done with a keep-alive connection's request: wait for the next head.
  void resume(std::shared_ptr<GateConnection> connection);
  // A worker answered and the connection ends: its sending side is shut down
  // here and its input read and dropped for up to a second (lingering close),
  // without holding the worker.
  void linger(std::shared_ptr<GateConnection> connection);

 private:
  struct Waiting;
  void run();
  void acceptSome(std::chrono::steady_clock::time_point now);
  enum class Phase { Head, Resumed, Lingering };
  void add(std::shared_ptr<GateConnection> connection, Phase phase, std::chrono::steady_clock::time_point now);
  void handBack(std::shared_ptr<GateConnection> connection, Phase phase);
  void onEvent(int fd, std::uint32_t events, std::chrono::steady_clock::time_point now);
  void answer(Waiting& waiting, std::string_view response, std::chrono::steady_clock::time_point now);
  void close(int fd);
  void evictOldest();
  void expire(std::chrono::steady_clock::time_point now);

  Poco::Net::ServerSocket listening_;
  const Limits limits_;
  const Events events_;
  int epoll_ = -1;
  int wake_ = -1;  // eventfd: resume() and stop()
  std::atomic<bool> stopping_{false};
  bool accept_paused_ = false;
  std::chrono::steady_clock::time_point accept_error_logged_;
  std::mutex resumed_mutex_;
  std::vector<std::pair<std::shared_ptr<GateConnection>, Phase>> resumed_;
  std::unordered_map<int, std::unique_ptr<Waiting>> waiting_;  // reactor thread only
  std::vector<char> peek_;
  // The body length to wait for after `head` (Limits::whole_body_up_to), or 0.
  [[nodiscard]] std::size_t smallBody(std::string_view head) const;
  std::thread thread_;
};

}  // namespace mews::http
