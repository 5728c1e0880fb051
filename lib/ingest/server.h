// The public listener: POST {path}?token=T -> journal -> 202.
//
// Order of checks, each with its status and a one-line JSON reason:
//   400 the body's framing is ambiguous (framing.h: Content-Length with
//   Transfer-Encoding, two Content-Lengths, a bad number, a coding other than
//   chunked), 404 other path, 405 not POST, 401 token missing or wrong (nothing
//   read or stored), 411 neither Content-Length nor chunked, 413 body over
//   max_body (Content-Length checked before reading, a chunked body counted
//   while read), 400 a body that ends early or a malformed chunk, 400 not a
//   JSON object, 503 the journal cannot take the write, 202 {"batch": ID,
//   "events": N} after the commit.
//
// Framing: every answer given before the body was read whole, and every
// framing error, closes the connection (`Connection: close`, then a lingering
// close so the answer is not reset away): bytes after an unread or misframed
// body are never parsed as a next request. The body is read exactly to its end
// (framing.h's strict chunked decoder on the raw connection, not Poco's), so a
// request that keeps its connection leaves it at the next request's first byte.
// A Content-Length that Poco cannot parse fails in Poco before the handler;
// the connection answers that 400 itself (GuardedConnection).
//
// The ack invariant: 202 is written only after JournalWriter reported the
// commit that contains the batch (synchronous=FULL: on disk). Any other outcome,
// including the commit taking longer than kCommitWait, answers 503 so that Mews
// retries; a batch committed after such a 503 is delivered anyway (at least once),
// and its byte-identical resend within [server] resend_window is answered 202
// with its id without storing anything (resend_guard.h).
//
// Slow clients: a request must arrive whole within [server] request_timeout,
// and after its first second a body must average [server] min_body_rate;
// otherwise 408 and the connection is closed (see connection_guard.h). Over
// plain HTTP a connection gets a thread only once its head has arrived whole
// (head_gate.h: the head's 408 is the gate's), and the raw head is read
// strictly before Poco parses it (framing.h readHead: 400, or 505 for another
// HTTP version); a head over 32 KiB is a 400. Poco's limits apply too: more
// than 100 fields, a name over 256 bytes or a value over 8 KiB is a 400. With
// [server] tls_certificate set the listener speaks only TLS (1.2 at least),
// and a connection takes its thread at the accept (Poco's TCPServer).
//
// Capacity: max_connections requests are served at once, as many again (at
// least 64) wait for a thread, and a request beyond that gets a 503
// (connection_guard.h). Over TLS the same counts apply to connections, and
// idle keep-alive connections are closed for waiting ones.
//
// The token travels in the query string. No log line, metric or journal row
// ever contains the query string.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "config/config.h"
#include "http/connection_guard.h"
#include "http/head_gate.h"
#include "journal/writer.h"
#include "metrics/metrics.h"

namespace Poco {
class ThreadPool;
template <class C>
class AutoPtr;
namespace Net {
class TCPServer;
class ServerSocket;
class HTTPServerParams;
}  // namespace Net
}  // namespace Poco

namespace mews::ingest {

// Mews waits 5 s for an answer; a 503 before that is better than its timeout.
inline constexpr std::chrono::milliseconds kCommitWait{4000};

// Why a request was not acknowledged: the `reason` label of
// mews_relay_requests_rejected_total.
enum class Rejection {
  NotFound,          // 404
  MethodNotAllowed,  // 405
  Unauthorized,      // 401
  TooLarge,          // 413
  Malformed,         // 400: framing, or not a JSON object
  Timeout,           // 408: request or body too slow
  Unavailable,       // 503: the journal could not take the write
  Internal,          // 500
  ClientGone,        // the connection failed mid-request; nobody to answer
  LengthRequired,    // 411: a POST with neither Content-Length nor chunked
  OverCapacity,      // 503: every connection slot busy and the queue full
};
inline constexpr std::size_t kRejectionCount = 11;
std::string_view rejectionName(Rejection rejection);

struct IngestMetrics {
  std::array<metrics::Counter, 3> batches;   // by journal::BatchKind
  std::array<metrics::Counter, 3> events;    // by journal::BatchKind
  std::array<metrics::Counter, 3> unrouted;  // acknowledged batches no target wanted, by journal::BatchKind
  std::array<metrics::Counter, kRejectionCount> rejected;
  metrics::Counter resends;  // posts answered 202 with a late-committed batch's id, nothing stored
};

class IngestServer {
 public:
  // Binds the listener (throws Poco::Exception when it cannot) but does not
  // accept until start().
  // `on_committed` runs after each acknowledged batch (the delivery engine's wake-up).
  IngestServer(const config::Settings& settings, journal::JournalWriter& writer, const Clock& clock,
               std::function<void()> on_committed = {});
  ~IngestServer();
  IngestServer(const IngestServer&) = delete;
  IngestServer& operator=(const IngestServer&) = delete;

  void start();
  // Stops accepting, lets requests in progress finish (their commits
  // included), closes idle keep-alive connections.
  void stop();
  // A reload: tokens, path, max_body and the targets (routing) of `settings`
  // apply to requests that start after this call; requests in progress finish
  // with the configuration they started with. The listener, its connection
  // limits and timeouts, TLS and resend_window stay as they were at start.
  void reconfigure(const config::Settings& settings);
  [[nodiscard]] std::uint16_t port() const;
  [[nodiscard]] const IngestMetrics& metrics() const;

  // What the request handlers share with the server; defined in server.cpp.
  struct Shared;

 private:
  // Plain HTTP: the head gate and its workers.
  void gateConnections(Poco::Net::ServerSocket socket, Poco::AutoPtr<Poco::Net::HTTPServerParams> params,
                       const http::ConnectionGuard::Limits& limits);

  std::shared_ptr<Shared> shared_;
  std::unique_ptr<http::HeadGate> gate_;
  std::unique_ptr<http::WorkerPool> workers_;
  // TLS: Poco's TCPServer, a thread per connection.
  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::Net::TCPServer> server_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
};

}  // namespace mews::ingest
