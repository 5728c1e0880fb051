// http/connection_guard.h with real sockets on loopback: the guard works on
// the accepted (server) side of each connection, the test reads what a client
// would see on the other. Capacity: max_running + max_waiting admitted, the
// next refused with a 503 (plain) and a lingering close (no reset though the
// client sent bytes first), or closed without an answer (TLS); refusals
// reported together; a slot freed by untrack or forget. Deadlines: a
// connection idle or in its head past request_timeout gets a 408 and is shut
// down (TLS: no answer) and reported; in its body only its read side is shut
// down (the handler answers), and so below min_body_rate; a request being
// worked on is never cut off; the deadline starts again after each response.
// Reclaiming: while one waits and every thread is taken, the longest-idle
// connection with nothing unread is closed, a new one only after its second
// of grace. stopAll closes the idle ones and lets no connection start another
// request.
#include <doctest/doctest.h>

#include <Poco/Exception.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/connection_guard.h"
#include "support/test_support.h"

using namespace mews;
using mews::http::ConnectionGuard;
using namespace std::chrono_literals;

namespace {

constexpr const char* kTimeoutAnswer =
    "HTTP/1.1 408 Request Timeout\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 40\r\n"
    "Connection: close\r\n"
    "\r\n"
    R"({"error":"request not received in time"})";

constexpr const char* kRefusal =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 45\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n"
    "\r\n"
    R"({"error":"too many connections; retry later"})";

// One loopback connection: the client's end and the accepted one.
struct Connection {
  Poco::Net::StreamSocket client;
  Poco::Net::StreamSocket server;
};

class Listener {
 public:
  Connection connect() {
    Connection c;
    c.client.connect(socket_.address());
    c.server = socket_.acceptConnection();
    return c;
  }

 private:
  Poco::Net::ServerSocket socket_{Poco::Net::SocketAddress("127.0.0.1", 0)};
};

// What the client end reads within `wait`: the bytes, and whether the other
// side ended (end of input, or reset).
struct Read {
  std::string bytes;
  bool ended = false;
};
Read readFor(Poco::Net::StreamSocket& socket, std::chrono::milliseconds wait) {
  Read read;
  const int fd = socket.impl()->sockfd();
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0))) <= 0) return read;
    char buffer[4096];
    const ssize_t got = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (got <= 0) {
      read.ended = true;
      return read;
    }
    read.bytes.append(buffer, static_cast<std::size_t>(got));
  }
}

// What the watchdog reported.
struct Reports {
  std::mutex mutex;
  std::vector<std::string> expired;
  std::vector<std::uint64_t> refused;

  ConnectionGuard::Events events() {
    ConnectionGuard::Events e;
    e.head_expired = [this](const std::string& remote) {
      const std::lock_guard lock(mutex);
      expired.push_back(remote);
    };
    e.refused = [this](std::uint64_t count) {
      const std::lock_guard lock(mutex);
      refused.push_back(count);
    };
    return e;
  }
  std::vector<std::string> expiredNow() {
    const std::lock_guard lock(mutex);
    return expired;
  }
  std::vector<std::uint64_t> refusedNow() {
    const std::lock_guard lock(mutex);
    return refused;
  }
};

ConnectionGuard::Limits limits(std::chrono::milliseconds timeout, std::size_t running = 4, std::size_t waiting = 4) {
  ConnectionGuard::Limits l;
  l.request_timeout = timeout;
  l.max_running = running;
  l.max_waiting = waiting;
  return l;
}

// One request and its response on a tracked connection (Poco and the handler's calls).
void serveOneRequest(ConnectionGuard& guard, ConnectionGuard::Entry& entry) {
  REQUIRE(guard.beginHead(entry));
  REQUIRE(guard.beginBody(entry));
  guard.endBody(entry);
  guard.endRequest(entry);
}

}  // namespace

TEST_CASE("admit: max_running + max_waiting connections, then a 503 and a lingering close; refusals reported") {
  Reports reports;
  ConnectionGuard guard(limits(10s, 2, 1), reports.events());
  Listener listener;
  std::vector<Connection> admitted;
  for (int i = 0; i < 3; ++i) {
    admitted.push_back(listener.connect());
    CHECK(guard.admit(admitted.back().server));
  }

  // The client had sent its request before the refusal. Closing a socket with
  // unread bytes resets the connection (a client on another system may then
  // lose the answer; on Linux it keeps what it had received, so the reset is
  // what is checked below): the guard keeps the socket, reading and
  // discarding what arrives, instead.
  auto refused = listener.connect();
  const std::string request(64 * 1024, 'x');
  REQUIRE(refused.client.sendBytes(request.data(), static_cast<int>(request.size())) ==
          static_cast<int>(request.size()));
  CHECK_FALSE(guard.admit(refused.server));
  refused.server = Poco::Net::StreamSocket();  // Poco drops it: the guard's copy is the last
  auto second = listener.connect();
  CHECK_FALSE(guard.admit(second.server));
  std::this_thread::sleep_for(300ms);
  Read answer = readFor(refused.client, 1s);
  CHECK(answer.bytes == kRefusal);
  CHECK(answer.ended);
  // Kept open (up to kLingerTime), not reset: what the client still sends is
  // taken (a reset socket fails the send with EPIPE).
  for (int i = 0; i < 3; ++i) {
    CHECK(::send(refused.client.impl()->sockfd(), request.data(), 1024, MSG_NOSIGNAL) == 1024);
    std::this_thread::sleep_for(50ms);
  }
  CHECK(readFor(second.client, 1s).bytes == kRefusal);
  // Both in one report (at most one a second).
  CHECK(test::waitUntil([&] { return !reports.refusedNow().empty(); }, 1s));
  CHECK(reports.refusedNow() == std::vector<std::uint64_t>{2});
  // The admitted ones were not answered.
  for (auto& c : admitted) CHECK(readFor(c.client, 0ms).bytes.empty());

  // A slot freed: by a connection that ended on its thread, or before it got one.
  const auto entry = guard.track(admitted[0].server);
  guard.untrack(entry);
  auto next = listener.connect();
  CHECK(guard.admit(next.server));
  guard.forget();
  auto after_forget = listener.connect();
  CHECK(guard.admit(after_forget.server));
  auto over = listener.connect();
  CHECK_FALSE(guard.admit(over.server));
}

TEST_CASE("admit over TLS: refused without an answer (the handshake would need a thread)") {
  Reports reports;
  auto l = limits(10s, 1, 0);
  l.tls = true;
  ConnectionGuard guard(l, reports.events());
  Listener listener;
  auto first = listener.connect();
  CHECK(guard.admit(first.server));
  auto refused = listener.connect();
  CHECK_FALSE(guard.admit(refused.server));
  CHECK(readFor(refused.client, 300ms).bytes.empty());
  CHECK(test::waitUntil([&] { return reports.refusedNow() == std::vector<std::uint64_t>{1}; }, 1s));
}

TEST_CASE("deadline in the head: a 408 written, the connection shut down, reported; TLS: no answer") {
  Reports reports;
  Listener listener;

  SUBCASE("plain: in the head") {
    ConnectionGuard guard(limits(300ms), reports.events());
    auto c = listener.connect();
    REQUIRE(guard.admit(c.server));
    const auto entry = guard.track(c.server);
    REQUIRE(guard.beginHead(*entry));
    CHECK_FALSE(guard.tooSlow(*entry));
    CHECK(readFor(c.client, 200ms).bytes.empty());  // not before the deadline
    const Read read = readFor(c.client, 1s);
    CHECK(read.bytes == kTimeoutAnswer);
    CHECK(read.ended);
    CHECK(guard.tooSlow(*entry));
    CHECK_FALSE(guard.beginBody(*entry));  // nothing more may be written
    CHECK_FALSE(guard.beginHead(*entry));
    CHECK(test::waitUntil([&] { return !reports.expiredNow().empty(); }, 1s));
    CHECK(reports.expiredNow() == std::vector<std::string>{c.client.address().toString()});
    guard.untrack(entry);
  }
  SUBCASE("plain: connected and silent") {
    ConnectionGuard guard(limits(300ms), reports.events());
    auto c = listener.connect();
    REQUIRE(guard.admit(c.server));
    const auto entry = guard.track(c.server);
    const Read read = readFor(c.client, 1s);
    CHECK(read.bytes == kTimeoutAnswer);
    CHECK(read.ended);
    CHECK(test::waitUntil([&] { return reports.expiredNow().size() == 1; }, 1s));
    guard.untrack(entry);
  }
  SUBCASE("TLS: shut down without an answer") {
    auto l = limits(300ms);
    l.tls = true;
    ConnectionGuard guard(l, reports.events());
    auto c = listener.connect();
    REQUIRE(guard.admit(c.server));
    const auto entry = guard.track(c.server);
    REQUIRE(guard.beginHead(*entry));
    const Read read = readFor(c.client, 1s);
    CHECK(read.bytes.empty());
    CHECK(read.ended);
    CHECK(test::waitUntil([&] { return reports.expiredNow().size() == 1; }, 1s));
    guard.untrack(entry);
  }
}

TEST_CASE("deadline in the body: only the read side shut down, the handler answers; not reported as a head") {
  Reports reports;
  Listener listener;
  ConnectionGuard guard(limits(300ms), reports.events());
  auto c = listener.connect();
  REQUIRE(guard.admit(c.server));
  const auto entry = guard.track(c.server);
  REQUIRE(guard.beginHead(*entry));
  REQUIRE(guard.beginBody(*entry));
  // The handler's blocked read returns at the deadline (end of input).
  c.server.setReceiveTimeout(Poco::Timespan(2, 0));
  char byte = 0;
  const auto started = std::chrono::steady_clock::now();
  CHECK(c.server.receiveBytes(&byte, 1) == 0);
  CHECK(std::chrono::steady_clock::now() - started < 1s);
  CHECK(guard.tooSlow(*entry));
  // The write side is the handler's: its 408 still reaches the client.
  CHECK(c.server.sendBytes("408", 3) == 3);
  CHECK(readFor(c.client, 300ms).bytes == "408");
  CHECK(reports.expiredNow().empty());
  guard.untrack(entry);
}

TEST_CASE("min_body_rate: after the body's first second, an average below it is too slow") {
  Listener listener;
  auto l = limits(10s);
  l.min_body_rate = 1'000;
  ConnectionGuard guard(l, {});
  auto slow = listener.connect();
  auto fast = listener.connect();
  REQUIRE(guard.admit(slow.server));
  REQUIRE(guard.admit(fast.server));
  const auto slow_entry = guard.track(slow.server);
  const auto fast_entry = guard.track(fast.server);
  for (const auto& entry : {slow_entry, fast_entry}) {
    REQUIRE(guard.beginHead(*entry));
    REQUIRE(guard.beginBody(*entry));
  }
  slow_entry->body_bytes = 500;
  fast_entry->body_bytes = 5'000;           // what the handler has read so far
  CHECK_FALSE(guard.tooSlow(*slow_entry));  // the first second is free
  std::this_thread::sleep_for(1'100ms);
  CHECK(guard.tooSlow(*slow_entry));  // 500 bytes in 1.1 s
  CHECK_FALSE(guard.tooSlow(*fast_entry));
  // The watchdog shuts the slow one's read side down (the handler's read
  // returns and it answers 408), and leaves the other alone.
  char byte = 0;
  slow.server.setReceiveTimeout(Poco::Timespan(1, 0));
  CHECK(slow.server.receiveBytes(&byte, 1) == 0);
  fast.server.setReceiveTimeout(Poco::Timespan(0, 300'000));
  CHECK_THROWS_AS(fast.server.receiveBytes(&byte, 1), Poco::TimeoutException);
  guard.untrack(slow_entry);
  guard.untrack(fast_entry);
}

TEST_CASE("working on a request: never cut off; after the response the deadline starts again") {
  Reports reports;
  Listener listener;
  ConnectionGuard guard(limits(400ms), reports.events());
  auto c = listener.connect();
  REQUIRE(guard.admit(c.server));
  const auto entry = guard.track(c.server);
  REQUIRE(guard.beginHead(*entry));
  REQUIRE(guard.beginBody(*entry));
  guard.endBody(*entry);                          // the commit wait has its own bound
  CHECK(readFor(c.client, 700ms).bytes.empty());  // past the deadline
  CHECK_FALSE(guard.tooSlow(*entry));
  guard.endRequest(*entry);  // the response is sent: 400 ms for the next request from now
  CHECK(entry->responses == 1);
  CHECK_FALSE(guard.tooSlow(*entry));
  CHECK(readFor(c.client, 200ms).bytes.empty());
  const Read read = readFor(c.client, 1s);
  CHECK(read.bytes == kTimeoutAnswer);
  CHECK(guard.tooSlow(*entry));
  guard.untrack(entry);
}

TEST_CASE("reclaiming: while one waits for a thread, the longest-idle connection with nothing unread is closed") {
  Listener listener;
  ConnectionGuard guard(limits(10s, 2, 2), {});
  auto a = listener.connect();
  auto b = listener.connect();
  REQUIRE(guard.admit(a.server));
  REQUIRE(guard.admit(b.server));
  const auto entry_a = guard.track(a.server);
  const auto entry_b = guard.track(b.server);

  SUBCASE("the longest idle first, one per waiting connection, without an answer") {
    serveOneRequest(guard, *entry_a);
    std::this_thread::sleep_for(20ms);
    serveOneRequest(guard, *entry_b);
    CHECK(readFor(a.client, 300ms).bytes.empty());  // nobody waits: nothing closed
    auto waiting = listener.connect();
    REQUIRE(guard.admit(waiting.server));
    const Read read = readFor(a.client, 300ms);  // the admit wakes the watchdog
    CHECK(read.ended);
    CHECK(read.bytes.empty());
    CHECK_FALSE(guard.beginHead(*entry_a));
    CHECK(readFor(b.client, 300ms).bytes.empty());
    CHECK_FALSE(readFor(b.client, 0ms).ended);
    CHECK(guard.beginHead(*entry_b));
  }
  SUBCASE("a connection whose next request is already in the kernel is not the one closed") {
    serveOneRequest(guard, *entry_a);
    std::this_thread::sleep_for(20ms);
    serveOneRequest(guard, *entry_b);
    a.client.sendBytes("P", 1);
    std::this_thread::sleep_for(20ms);
    auto waiting = listener.connect();
    REQUIRE(guard.admit(waiting.server));
    CHECK(readFor(b.client, 300ms).ended);
    CHECK_FALSE(readFor(a.client, 0ms).ended);
  }
  SUBCASE("a new connection gets a second to send its first byte") {
    auto waiting = listener.connect();
    REQUIRE(guard.admit(waiting.server));
    CHECK_FALSE(readFor(a.client, 600ms).ended);
    CHECK_FALSE(readFor(b.client, 0ms).ended);
    CHECK(readFor(a.client, 1s).ended);  // after the grace: a, the longest idle
    CHECK_FALSE(readFor(b.client, 0ms).ended);
  }
  guard.untrack(entry_a);
  guard.untrack(entry_b);
}

TEST_CASE("stopAll: idle connections closed now, no connection starts another request") {
  Listener listener;
  ConnectionGuard guard(limits(10s), {});
  auto idle = listener.connect();
  auto busy = listener.connect();
  REQUIRE(guard.admit(idle.server));
  REQUIRE(guard.admit(busy.server));
  const auto idle_entry = guard.track(idle.server);
  const auto busy_entry = guard.track(busy.server);
  REQUIRE(guard.beginHead(*busy_entry));
  CHECK_FALSE(guard.stopping());

  guard.stopAll();
  CHECK(guard.stopping());
  const Read read = readFor(idle.client, 300ms);
  CHECK(read.ended);
  CHECK(read.bytes.empty());
  CHECK_FALSE(guard.beginHead(*idle_entry));
  // The request under way finishes: its body, its response; then no other.
  CHECK_FALSE(readFor(busy.client, 0ms).ended);
  CHECK(guard.beginBody(*busy_entry));
  guard.endBody(*busy_entry);
  guard.endRequest(*busy_entry);
  CHECK_FALSE(guard.beginHead(*busy_entry));
  guard.untrack(idle_entry);
  guard.untrack(busy_entry);
}
