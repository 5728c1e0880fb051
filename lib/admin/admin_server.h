// The admin listener ([admin] listen, loopback by default, never the public
// port): health for supervisors, and the operator commands that change the
// journal while the relay runs, applied by the relay's own journal writer.
//
//   GET  /healthz                      200 while the process serves
//   GET  /readyz                       200, or 503 with the reason (journal
//                                      unavailable, free disk below min_free)
//   GET  /metrics                      Prometheus text format (relay/metrics_page.h)
//   POST /admin/replay?ids=1,2[&dry_run=1]
//   POST /admin/replay?received_since_ms=..[&until_ms=..]&target=T[&dry_run=1]
//   POST /admin/replay?ids=1,2&to=T[&dry_run=1]   dead letters re-targeted to T
//   POST /admin/replay?from=S&to=T[&dry_run=1]    a removed target's work to T
//   POST /admin/purge?[older_than_ms=..][&dry_run=1]
//   POST /admin/purge?from=S[&dry_run=1]          a removed target's work, deleted
//   /  and /console/...                the operator console (lib/console), with
//                                      its own sign-in
//
// `to` must be a target of the running configuration, `from` must not be one
// (its work belongs to it while it is configured): 409 otherwise.
//
// With [admin] tls_certificate set the listener speaks only HTTPS (TLS 1.2+).
// Over plain HTTP a connection gets one of the 4 threads only once its request
// head has arrived whole, within 10 s of the accept (408 otherwise), through
// the same head gate as the public listener (ingest/head_gate.h): clients that
// trickle bytes cannot keep /readyz or the CLI waiting. Over TLS the handshake
// needs a thread first, and a per-read timeout of 10 s is the only bound.
//
// Who may do what (request_guard.h): every request must name this listener in
// its Host (421 otherwise: DNS rebinding), or carry no Host at all on a path
// that is not /admin/* (a supervisor's HTTP/1.0 probe; browsers always send one); /admin/* (the CLI's API) refuses
// any request with an Origin (403: a browser) and wants the operator's
// credential (credential.h) as a Bearer token (401). Health and metrics need
// no credential. Refusals are logged with the path, the remote address and
// the reason, never with what was presented.
//
// Answers are one JSON object: {"count": N} or {"error": "...", ...}.
// Routes are one table (routes() in the .cpp): a new surface on this listener
// adds its rows there and keeps the Host rule.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "console/console.h"
#include "journal/writer.h"

namespace Poco::Net {
class HTTPServer;
}
namespace mews::http {
class HeadGate;
class WorkerPool;
}  // namespace mews::http

namespace mews::admin {

class AdminServer {
 public:
  // `credential`: what /admin/* requests must present (CredentialFile::value()).
  AdminServer(const config::Settings& settings, journal::JournalWriter& writer, const Clock& clock,
              std::string credential, std::function<void()> on_requeued, std::function<std::string()> render_metrics,
              std::shared_ptr<console::Console> console = nullptr);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  void start();
  void stop();
  // Where the CLI reaches it: "127.0.0.1:PORT" ("[::1]:PORT"), the bound port;
  // a wildcard listener is reached on loopback.
  [[nodiscard]] std::string address() const;
  // The running configuration's target names (a reload changes them).
  void setTargets(std::vector<std::string> names);
  // From now on /readyz answers 503 {"status":"not ready","reason":"stopping"}.
  void sayStopping();
  // A warning /readyz adds to a 200 when it returns one (several relays whose
  // target definitions differ). Set before start().
  void setReadyWarning(std::function<std::optional<std::string>()> warning);
  [[nodiscard]] bool tls() const { return tls_; }

  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<http::HeadGate> gate_;           // plain HTTP
  std::unique_ptr<http::WorkerPool> workers_;      // plain HTTP
  std::unique_ptr<Poco::Net::HTTPServer> server_;  // TLS
  std::string host_;
  std::uint16_t port_ = 0;
  bool tls_ = false;
  bool stopped_ = false;
};

}  // namespace mews::admin
