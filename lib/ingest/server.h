// The public listener: POST {path}?token=T -> journal -> 202.
//
// Order of checks, each with its status and a one-line JSON reason:
//   404 other path, 405 not POST, 401 token missing or wrong (nothing read or
//   stored), 413 body over max_body (Content-Length checked before reading, a
//   chunked body counted while read), 400 not a JSON object, 503 the journal
//   cannot take the write, 202 {"batch": ID, "events": N} after the commit.
//
// The ack invariant: 202 is written only after JournalWriter reported the
// commit that contains the batch (synchronous=FULL: on disk). Any other outcome,
// including the commit taking longer than kCommitWait, answers 503 so that Mews
// retries; a batch committed after such a 503 is delivered anyway (at least once).
//
// The token travels in the query string. No log line, metric or journal row
// ever contains the query string.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "config/config.h"
#include "journal/writer.h"

namespace Poco {
class ThreadPool;
namespace Net {
class HTTPServer;
}
}  // namespace Poco

namespace mews::ingest {

// Mews waits 5 s for an answer; a 503 before that is better than its timeout.
inline constexpr std::chrono::milliseconds kCommitWait{4000};

struct IngestCounters {
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> events{0};
  std::atomic<std::uint64_t> rejected{0};
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
  [[nodiscard]] std::uint16_t port() const;
  [[nodiscard]] const IngestCounters& counters() const;

  // What the request handlers share with the server; defined in server.cpp.
  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
};

}  // namespace mews::ingest
