// The operator console: web pages served by the relay itself on the admin
// listener, for operators who are not shell users. This module owns
//   - the pages (overview with per-target charts, dead letters, a delivery's
//     detail, confirmations, action results; console/pages.*),
//   - sessions, CSRF tokens and the sign-in rate limit (console/sessions.*),
//   - the operator credential (console/password.*),
//   - the Origin rule and HTML escaping (console/web.*; the Host rule is
//     auth/request_guard.h's, set by consoleHostRule()),
//   - the SVG charts (console/chart.*) and the embedded static files
//     (console/assets/*).
//
// Routes (every one under /console; "/" redirects to /console/):
//   GET  /console/                      overview                 (signed in)
//   GET  /console/dead-letters          filtered, keyset-paginated list
//   GET  /console/dead-letters/ID       -> /console/deliveries/DELIVERY
//   GET  /console/deliveries/ID         detail: attempts, payload
//   GET  /console/deliveries/ID/payload the payload's exact bytes
//   GET  /console/confirm?action=replay|purge&FILTER   how many, then a button
//   GET  /console/actions/N             an action's result, states followed live
//   GET  /console/api/states?d=1,2      {"1":"pending",...} for the page script
//   POST /console/replay                id=.. (repeated): dead letters back to the queue
//   POST /console/replay-matching       FILTER: every matching dead letter
//   POST /console/purge                 FILTER: delete the matching dead letters
//   GET|POST /console/sign-in, POST /console/sign-out
//   GET  /console/static/NAME           embedded CSS, script, icon (no sign-in)
//
// Who may: nothing but the sign-in page and the static files answers without
// a session; every POST needs the session's CSRF token AND an Origin equal to
// the console's own (scheme://Host); a Host that is not loopback, an address
// literal, the admin listen host or a configured [console] host_names is
// refused (421: DNS rebinding). Without a configured credential every page
// says how to set one and nothing else.
//
// Reads open their own read-only journal connection per request (WAL: they
// never block the writer, so never ingest); the overview's activity figures
// (attempt counts by time) are computed at most every 10 s and shared. Changes
// are the CLI's journal operations run as jobs on the relay's single writer,
// in steps of 500, followed by the delivery engine's wake-up.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "auth/password.h"
#include "auth/request_guard.h"
#include "common/clock.h"
#include "config/config.h"
#include "console/sessions.h"
#include "delivery/engine.h"
#include "ingest/server.h"
#include "journal/reports.h"
#include "journal/requests.h"
#include "journal/writer.h"

namespace Poco::Net {
class HTTPServerRequest;
class HTTPServerResponse;
}  // namespace Poco::Net

namespace mews::console {

struct ConsoleSources {
  const config::Settings& settings;
  journal::JournalWriter& writer;
  const Clock& clock;
  std::function<void()> on_requeued;  // the delivery engine's wake-up
  const ingest::IngestMetrics* ingest = nullptr;
  std::function<std::vector<delivery::TargetSnapshot>()> targets;  // live circuit states
};

// The Host headers the console answers to: loopback names with any port (an
// SSH tunnel's local end may use any), any address literal, the admin
// listener's own host, and [console] host_names.
auth::HostRule consoleHostRule(const config::Settings& settings);

class Console {
 public:
  // Throws std::runtime_error when the configured password hash is the hash
  // of a webhook token.
  explicit Console(ConsoleSources sources);
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // "/" and everything under /console.
  static bool owns(const std::string& path);
  void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response);

  // The once-a-minute sample of the ingest rejection counters that gives
  // "rejections in the last hour".
  void start();
  void stop();

  struct Request;

 private:
  struct RejectionSample {
    std::int64_t at_ms = 0;
    std::vector<std::uint64_t> counts;
  };
  struct ActivityCache {
    std::int64_t computed_ms = 0;
    std::int64_t start_ms = 0;
    std::vector<std::pair<std::string, std::vector<journal::ActivityBucket>>> targets;
  };

  void route(Request& r);
  void signedIn(Request& r, const Session& session);
  void signInPage(Request& r, const std::string& error, int status);
  void signInPost(Request& r);
  void overview(Request& r, const Session& session);
  void deadLetterList(Request& r, const Session& session);
  void deliveryPage(Request& r, const Session& session, std::int64_t delivery_id);
  void payload(Request& r, std::int64_t delivery_id);
  void confirmPage(Request& r, const Session& session);
  void actionPage(Request& r, const Session& session, int number);
  void statesApi(Request& r);
  void replay(Request& r, const Session& session);
  void purge(Request& r, const Session& session);
  void signOut(Request& r, const Session& session);

  // Runs a replay's steps (journal::replaySteps) through the writer; returns
  // how many moved and fills `delivery_ids` with the deliveries they belong to.
  std::int64_t replayLetters(const std::vector<journal::ReplayRequest>& steps, std::vector<std::int64_t>& delivery_ids);
  [[nodiscard]] std::int64_t deadLetterTotal(journal::Journal& reader) const;
  ActivityCache activity(journal::Journal& reader, std::int64_t now_ms);
  std::vector<std::pair<std::string, std::uint64_t>> rejectionsSince(std::int64_t since_ms) const;
  std::vector<std::uint64_t> rejectionCounts() const;
  // The running configuration's targets: the delivery engine's, which a reload
  // (SIGHUP) changes; the configuration's at start when there is no engine.
  [[nodiscard]] std::vector<std::string> targetNames() const;
  void sampleLoop();

  config::Settings settings_;
  journal::JournalWriter& writer_;
  const Clock& clock_;
  std::function<void()> on_requeued_;
  const ingest::IngestMetrics* ingest_;
  std::function<std::vector<delivery::TargetSnapshot>()> targets_;
  std::optional<auth::Credential> credential_;
  bool tls_;
  auth::HostRule host_rule_;  // which Host headers the console answers to
  std::int64_t started_ms_;
  SessionStore sessions_;
  SignInLimiter limiter_;

  mutable std::mutex mutex_;  // the activity cache and the rejection samples
  ActivityCache activity_;
  std::deque<RejectionSample> samples_;
  std::condition_variable sampler_wake_;
  bool stopping_ = false;
  std::thread sampler_;
};

}  // namespace mews::console
