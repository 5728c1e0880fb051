// delivery/deadline.h: the wall-clock bound of a delivery attempt, on real
// loopback sockets. A deadline that passes shuts the watched connection down
// (a blocked read returns at once); one disarmed before it passes leaves the
// connection alone; the stop's cut ends every attempt by one time and marks it
// abandoned; only the connection watched (through a duplicate descriptor) is
// ever shut down.
#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>

#include "delivery/deadline.h"

using namespace mews::delivery;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A connected pair on loopback; the client side has a long receive timeout, so
// a read that returns early was ended by the watchdog, not by Poco.
struct Connection {
  Poco::Net::ServerSocket listener{Poco::Net::SocketAddress("127.0.0.1", 0)};
  Poco::Net::StreamSocket client;
  Poco::Net::StreamSocket peer;
  Connection() {
    client.connect(listener.address());
    peer = listener.acceptConnection();
    client.setReceiveTimeout(Poco::Timespan(2, 0));
    peer.setReceiveTimeout(Poco::Timespan(2, 0));
  }
};

// Bytes read by a blocking receive on `socket`: empty at end of stream.
std::string receive(Poco::Net::StreamSocket& socket) {
  char buffer[64];
  const int got = socket.receiveBytes(buffer, sizeof buffer);
  return std::string(buffer, got > 0 ? static_cast<std::size_t>(got) : 0);
}

// The connection still carries data both ways.
void checkOpen(Connection& connection) {
  CHECK(connection.peer.sendBytes("ping", 4) == 4);
  CHECK(receive(connection.client) == "ping");
  CHECK(connection.client.sendBytes("pong", 4) == 4);
  CHECK(receive(connection.peer) == "pong");
}

}  // namespace

TEST_CASE("a deadline that passes shuts the connection down: a blocked read returns end of stream") {
  AttemptWatchdog watchdog;
  Connection connection;
  const auto armed_at = Clock::now();
  const AttemptWatchdog::Armed deadline = watchdog.arm(200ms);
  CHECK_FALSE(deadline->expired());
  CHECK(deadline->remaining() > 100ms);
  CHECK(deadline->remaining() <= 200ms);
  deadline->watch(connection.client);

  CHECK(receive(connection.client).empty());  // blocked until the watchdog's shutdown
  const auto waited = Clock::now() - armed_at;
  CHECK(waited >= 190ms);
  CHECK(waited < 2s);
  CHECK(deadline->expired());
  CHECK(deadline->remaining() == 0ms);
  CHECK_FALSE(deadline->abandoned());       // its own deadline, not the stop's
  CHECK(receive(connection.peer).empty());  // the target sees the connection end too
}

TEST_CASE("a deadline disarmed before it passes leaves the connection alone") {
  AttemptWatchdog watchdog;
  Connection connection;
  {
    const AttemptWatchdog::Armed deadline = watchdog.arm(100ms);
    deadline->watch(connection.client);
    checkOpen(connection);
  }  // the attempt ended in time
  std::this_thread::sleep_for(300ms);
  checkOpen(connection);
}

TEST_CASE("a connection watched after the deadline passed is shut down at once") {
  AttemptWatchdog watchdog;
  Connection connection;
  const AttemptWatchdog::Armed deadline = watchdog.arm(0ms);
  CHECK(deadline->expired());
  CHECK(deadline->remaining() == 0ms);
  // A kept-alive connection taken for a redirect hop after the time ran out.
  deadline->watch(connection.client);
  const auto started = Clock::now();
  CHECK(receive(connection.client).empty());
  CHECK(Clock::now() - started < 1s);
}

TEST_CASE("the stop's cut ends an attempt before its own deadline, and it is abandoned") {
  AttemptWatchdog watchdog;
  Connection connection;
  const AttemptWatchdog::Armed deadline = watchdog.arm(30s);
  deadline->watch(connection.client);
  const auto cut_at = Clock::now() + 150ms;
  watchdog.cutAllBy(cut_at);
  CHECK(deadline->remaining() <= 150ms);
  CHECK_FALSE(deadline->abandoned());  // not yet

  CHECK(receive(connection.client).empty());
  CHECK(Clock::now() >= cut_at);
  CHECK(Clock::now() - cut_at < 2s);
  CHECK(deadline->expired());
  CHECK(deadline->abandoned());

  // An attempt armed after the cut ends by it as well.
  const AttemptWatchdog::Armed later = watchdog.arm(30s);
  CHECK(later->expired());
  CHECK(later->abandoned());
}

TEST_CASE("an attempt whose own deadline comes before the stop's cut is not abandoned") {
  AttemptWatchdog watchdog;
  const AttemptWatchdog::Armed deadline = watchdog.arm(50ms);
  watchdog.cutAllBy(Clock::now() + 10s);
  std::this_thread::sleep_for(100ms);
  CHECK(deadline->expired());
  CHECK_FALSE(deadline->abandoned());
}

TEST_CASE("only the connection watched last is shut down, never another one") {
  AttemptWatchdog watchdog;
  Connection first;
  Connection second;
  const AttemptWatchdog::Armed deadline = watchdog.arm(150ms);
  deadline->watch(first.client);
  deadline->watch(second.client);  // Poco reconnected: the attempt uses this one now
  CHECK(receive(second.client).empty());
  checkOpen(first);
}

TEST_CASE("the duplicate descriptor: a closed connection's number reused by another is not shut down") {
  AttemptWatchdog watchdog;
  std::optional<Connection> watched{std::in_place};
  const AttemptWatchdog::Armed deadline = watchdog.arm(150ms);
  deadline->watch(watched->client);
  const int number = watched->client.impl()->sockfd();
  watched->client.close();  // Poco closes its own descriptor; the number is free

  Connection other;  // likely given that number
  INFO("watched descriptor " << number << ", new one " << other.client.impl()->sockfd());
  CHECK(receive(watched->peer).empty());  // the watched connection ends at the deadline
  checkOpen(other);
}
