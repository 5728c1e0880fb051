// The delivery engine: a dispatcher thread and a pool of worker threads,
// separate from the HTTP server's, that move journaled deliveries to their
// targets.
//
// The state of one delivery row (deliveries.state), each arrow one guarded
// UPDATE applied by the journal's single writer:
//
//                  claim                 2xx
//   pending ------------------> in_flight -----> delivered
//   retry_wait --(due)--------^     |  |
//        ^                          |  +-------> dead (+ a dead_letters row): a 4xx other
//        |   408/425/429/5xx/error  |            than 408/425/429, a refused redirect,
//        +--------------------------+            or max_attempts spent
//   pending <-- probe failed (circuit open: no attempt spent, place kept)
//   pending <-- start-up / shutdown: in_flight released (nothing stays stuck)
//   pending | retry_wait older than max_age --> dead
//
// Dispatcher: per target, oldest due first, claiming up to four times the target's
// concurrency ahead of the workers but never sending more than `concurrency`
// requests at once, and while the target's circuit is open only one probe at a time (see
// policy.h). It reads due work through its own read-only connection, claims it
// through the writer, and hands it to the workers. It sleeps until the earliest
// due time or until wake() (new batch committed); no polling. Every 5 s per
// target it expires work past max_age; every minute it prunes delivered work
// older than retention, in small steps.
//
// Worker: builds nothing, decides nothing: sends the prepared request, turns
// every result (status, timeout, reset, exception) into an attempt record and
// hands it to the writer. If the record cannot be written (disk full) it keeps
// retrying; the row stays in_flight and is released at the next start at the
// latest, so the attempt is repeated rather than lost (at least once).
//
// Reload: reconfigure() hands over new target settings; the dispatcher applies
// them between two passes. Targets are kept by name: an unchanged target keeps
// everything, a changed one keeps its queue, counters and metrics (and its
// circuit, unless its url changed), an added one starts closed, a removed one
// is no longer dispatched — its claimed but unsent work goes back to pending,
// and everything it had waits in the journal under its name (see `status`).
// An attempt in progress finishes with the settings it was dispatched with.
//
// Time comes from Clock (a monotonic-advanced wall clock; see common/clock.h),
// so tests move time instead of sleeping.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "delivery/http_client.h"
#include "delivery/policy.h"
#include "journal/queue.h"
#include "journal/writer.h"
#include "metrics/metrics.h"

namespace mews::delivery {

// Exposed on /metrics, per target.
struct TargetMetrics {
  std::array<metrics::Counter, 4> outcomes;  // by journal::AttemptOutcome, counted once recorded
  metrics::Histogram attempt_seconds{metrics::latencyBounds()};
};

struct TargetSnapshot {
  std::string name;
  std::shared_ptr<const TargetMetrics> metrics;
  CircuitState circuit = CircuitState::Closed;
  int in_flight = 0;
  int consecutive_failures = 0;
  std::string last_error;
};

class DeliveryEngine {
 public:
  DeliveryEngine(const config::Settings& settings, journal::JournalWriter& writer, const Clock& clock);
  ~DeliveryEngine();
  DeliveryEngine(const DeliveryEngine&) = delete;
  DeliveryEngine& operator=(const DeliveryEngine&) = delete;

  // Starts the threads; the dispatcher first releases rows a previous process
  // left in flight.
  void start();
  // Stops dispatching; attempts in progress finish and are recorded; claimed
  // work not yet started is released to pending.
  void stop();
  // New work may be due (a batch was committed, a replay, a test moved the clock).
  void wake();
  // A reload: the targets and retention of `settings` apply from the
  // dispatcher's next pass (see the header). Workers are not reconfigured.
  void reconfigure(const config::Settings& settings);

  [[nodiscard]] std::vector<TargetSnapshot> targets() const;

 private:
  // What a reload replaces for a target; an attempt holds the version it was
  // dispatched with.
  struct TargetConfig {
    config::TargetSettings settings;
    std::unique_ptr<TargetClient> client;
  };
  // A target's runtime state, kept by name across reloads. `config` is swapped
  // by the dispatcher thread only, under mutex_.
  struct Target {
    std::shared_ptr<const TargetConfig> config;
    std::shared_ptr<TargetMetrics> metrics = std::make_shared<TargetMetrics>();
    CircuitBreaker circuit;
    int in_flight = 0;  // claimed: queued for a worker or being sent
    int sending = 0;    // requests open to the target (<= concurrency)
    std::string last_error;
    std::int64_t next_expire_ms = 0;
  };
  struct WorkItem {
    journal::DueDelivery due;
    std::shared_ptr<Target> target;
    std::shared_ptr<const TargetConfig> config;  // the settings it is sent with
    std::string body;
    bool probe = false;
  };

  static std::shared_ptr<const TargetConfig> makeConfig(const config::TargetSettings& settings);
  // On the dispatcher thread, between passes: the settings reconfigure() left.
  void applyReload();
  bool releaseLeftInFlight();
  void dispatchLoop();
  // One pass over the targets; true when something was dispatched.
  bool dispatchDue(journal::Journal& reader, std::int64_t now_ms);
  void maintain(std::int64_t now_ms);
  std::chrono::milliseconds idleWait(journal::Journal& reader, std::int64_t now_ms);
  void workerLoop();
  void deliver(WorkItem& item);
  journal::AttemptRecord judge(const WorkItem& item, const HttpAttempt& attempt, std::int64_t started_ms,
                               journal::TargetStateRecord& state);
  // False when the engine stopped before the record could be written.
  bool record(const journal::AttemptRecord& record, const journal::TargetStateRecord& state);
  // in_flight -> pending for claimed rows that will not be sent now; a failure
  // is logged and the rows are released at the next start.
  void release(const std::vector<std::int64_t>& ids);
  [[nodiscard]] std::string webhookId(const journal::DueDelivery& due) const;

  // Changed only by the dispatcher thread, under mutex_; other threads read it under mutex_.
  std::vector<std::shared_ptr<Target>> targets_;
  journal::JournalWriter& writer_;
  const Clock& clock_;
  std::string journal_path_;
  std::string journal_id_;
  std::chrono::milliseconds retention_;
  int worker_count_;
  std::mt19937_64 random_;

  mutable std::mutex mutex_;
  std::condition_variable dispatcher_wake_;
  std::condition_variable work_ready_;
  std::condition_variable stopped_;
  std::deque<WorkItem> work_;
  std::shared_ptr<const config::Settings> reload_;  // handed over by reconfigure(), not applied yet
  bool woken_ = false;
  bool stopping_ = false;
  std::int64_t next_prune_ms_ = 0;

  std::thread dispatcher_;
  std::vector<std::thread> workers_;
};

}  // namespace mews::delivery
