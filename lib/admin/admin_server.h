// The admin listener ([admin] listen, loopback by default, never the public
// port): health for supervisors, and the operator commands that change the
// journal while the relay runs, applied by the relay's own journal writer.
//
//   GET  /healthz                      200 while the process serves
//   GET  /readyz                       200, or 503 with the reason (journal
//                                      unavailable, free disk below min_free)
//   GET  /metrics                      Prometheus text format (relay/metrics_page.h)
//   POST /admin/replay?ids=1,2[&dry_run=1]
//   POST /admin/replay?dead=1[&target=T][&since_ms=..][&until_ms=..][&dry_run=1]
//   POST /admin/replay?received_since_ms=..[&until_ms=..]&target=T[&dry_run=1]
//   POST /admin/replay?ids=..|dead=1..&to=T     dead letters re-targeted to T
//   POST /admin/replay?from=S&to=T[&dry_run=1]  a removed target's work to T
//   POST /admin/purge?[older_than_ms=..][&dry_run=1]
//   POST /admin/purge?from=S[&dry_run=1]        a removed target's work, deleted
//
// `to` must be a target of the running configuration, `from` must not be one
// (its work belongs to it while it is configured): 409 otherwise.
//
// Answers are one JSON object: {"count": N} or {"error": "...", ...}.
// Requests carry no secrets and none are logged.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "journal/writer.h"

namespace Poco::Net {
class HTTPServer;
}

namespace mews::admin {

class AdminServer {
 public:
  AdminServer(const config::Settings& settings, journal::JournalWriter& writer, const Clock& clock,
              std::function<void()> on_requeued, std::function<std::string()> render_metrics);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  void start();
  void stop();
  [[nodiscard]] std::string address() const;  // "127.0.0.1:PORT", the bound port
  // The running configuration's target names (a reload changes them).
  void setTargets(std::vector<std::string> names);

  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  std::string host_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
};

}  // namespace mews::admin
