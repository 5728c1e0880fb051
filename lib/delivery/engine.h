// The delivery engine: a dispatcher thread and a pool of worker threads,
// separate from the HTTP server's, that move journaled deliveries to their
// targets. The states a delivery goes through, and every move between them,
// are in journal/queue.h; what an attempt's result means is decided by
// delivery/policy.h (decide()); this module applies both.
//
// Dispatcher: per target, oldest due first, claiming up to four times the target's
// concurrency ahead of the workers but never sending more than `concurrency`
// requests at once, and while the target's circuit is open only one probe at a time (see
// policy.h). It reads due work through its own read-only connection, claims it
// through the writer, builds each request body from the journaled batch
// (body.h), and hands it to the workers. A body that cannot be built becomes a
// dead letter there and then, without touching the target's circuit. It sleeps
// until the earliest due time or until wake() (new batch committed); no
// polling. Every 5 s per target it expires work past max_age; every minute it
// prunes delivered work older than retention, in small steps.
//
// Worker: takes the first queued item whose target has a free sending slot,
// adds the headers (webhook-id, timestamp, signature, the target's header.*),
// sends it (http_client.h: the target's `timeout` bounds the whole attempt),
// has decide() judge the result, moves the target's circuit as decided and
// hands the attempt record (and the circuit's new state) to the writer, then
// takes the next item without waiting for that commit. The invariant that
// makes this safe: the row stays in_flight in the journal until its record
// commits, and only pending/retry_wait rows can be claimed, so no pass claims
// it again before its outcome is durable. (Target::in_flight, the window of
// claiming ahead, counts work claimed and not yet attempted or being sent;
// records waiting for their commit are records_pending_, bounded because each
// claim commits behind the records queued before it.) A record that cannot be
// written (disk full) is kept and handed to the writer again every
// kRecordRetry; at stop it is tried once more, and if it still fails the row
// stays in_flight and is released at the next start, so the attempt is
// repeated rather than lost (at least once).
//
// Stop: no new attempt starts; attempts in progress end by their own deadline,
// and at the latest kStopGrace after stop() (an attempt cut then is abandoned:
// not judged, its delivery released to pending like the claimed work no worker
// took). So stop() returns within min(longest target timeout, kStopGrace) plus
// the time to write the last records.
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
// so tests move time instead of sleeping; attempt deadlines are on the
// monotonic clock itself (they bound real waiting).
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "delivery/deadline.h"
#include "delivery/http_client.h"
#include "delivery/policy.h"
#include "journal/leases.h"
#include "journal/queue.h"
#include "journal/writer.h"
#include "metrics/metrics.h"

namespace mews::delivery {

// Exposed on /metrics, per target.
struct TargetMetrics {
  std::array<metrics::Counter, journal::kAttemptOutcomeCount> outcomes;  // by journal::AttemptOutcome, once recorded
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

// How long stop() lets attempts in progress run before it abandons them.
inline constexpr std::chrono::milliseconds kStopGrace{10'000};

class DeliveryEngine {
 public:
  // `leases`: several relays on one PostgreSQL journal (relay/cluster.h); the
  // engine then dispatches only the targets whose lease this relay holds.
  // Null: every configured target (one relay).
  DeliveryEngine(const config::Settings& settings, journal::JournalWriter& writer, const Clock& clock,
                 journal::HeldLeases* leases = nullptr);
  ~DeliveryEngine();
  DeliveryEngine(const DeliveryEngine&) = delete;
  DeliveryEngine& operator=(const DeliveryEngine&) = delete;

  // Starts the threads; the dispatcher first releases rows a previous process
  // left in flight.
  void start();
  // Stops dispatching; attempts in progress finish (by their deadline, at most
  // kStopGrace from now) and are recorded; claimed work not yet started, and an
  // attempt abandoned at kStopGrace, is released to pending.
  void stop();
  // New work may be due (a batch was committed, a replay, a test moved the clock).
  void wake();
  // A reload: the targets and retention of `settings` apply from the
  // dispatcher's next pass (see the header). Workers are not reconfigured.
  void reconfigure(const config::Settings& settings);

  [[nodiscard]] std::vector<TargetSnapshot> targets() const;
  // Attempts in progress or claimed work for `target` (a lease waits for none
  // before it is handed over).
  [[nodiscard]] bool busy(const std::string& target) const;
  // The lease of `target` was acquired: attempts may be armed again for it
  // (a lost lease's cut no longer applies).
  void leaseAcquired(const std::string& target);

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
    int in_flight = 0;  // claimed: queued for a worker or being sent (not: waiting for its record)
    int sending = 0;    // requests open to the target (<= concurrency)
    std::string last_error;
    std::int64_t next_expire_ms = 0;
    std::int64_t success_saved_ms = 0;  // when a success last went to target_state
  };
  struct WorkItem {
    journal::DueDelivery due;
    std::shared_ptr<Target> target;
    std::shared_ptr<const TargetConfig> config;  // the settings it is sent with
    std::string body;
    bool probe = false;
    // Several relays: the lease epoch it was claimed under (journal/leases.h).
    // An item whose epoch is no longer the relay's lease's is not sent, nor
    // released: whoever took the lease since released its row.
    std::optional<std::int64_t> epoch;
  };

  [[nodiscard]] std::shared_ptr<const TargetConfig> makeConfig(const config::TargetSettings& settings);
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
  // An attempt as judged: what to record, and the target's new circuit state
  // when the attempt moved it.
  struct Judged {
    std::shared_ptr<Target> target;
    journal::AttemptRecord attempt;
    std::optional<journal::TargetStateRecord> target_state;
  };
  // Has decide() judge the attempt and applies the circuit event it returns.
  Judged judge(const WorkItem& item, const HttpAttempt& attempt, AttemptResult::Kind kind, std::int64_t started_ms);
  // Hands the attempt record to the writer without waiting for its commit;
  // onRecorded() (on the writer thread) ends the claim, or keeps the record in
  // unrecorded_ for retryUnrecorded() when it could not be written.
  void record(Judged judged);
  void record(std::shared_ptr<const Judged> judged);
  void onRecorded(const std::shared_ptr<const Judged>& judged, const journal::WriteOutcome& outcome);
  // On the dispatcher thread: the records that failed, again, every kRecordRetry.
  void retryUnrecorded();
  // At stop: waits for the records handed to the writer; retries failed ones once.
  void settleRecords();
  // in_flight -> pending for claimed rows that no worker holds; when that
  // cannot be committed the ids are kept in unreleased_ and retried.
  void release(const std::vector<std::int64_t>& ids, std::optional<std::int64_t> epoch = std::nullopt);
  // Retries the releases that did not commit. True when none are left: only
  // then may the dispatcher claim again (see unreleased_).
  bool settleUnreleased();
  [[nodiscard]] std::string webhookId(const journal::DueDelivery& due) const;
  // This relay may dispatch `target` now (always without leases).
  [[nodiscard]] bool dispatches(const std::string& target) const;

  AttemptWatchdog watchdog_;  // outlives the targets' clients
  // Changed only by the dispatcher thread, under mutex_; other threads read it under mutex_.
  std::vector<std::shared_ptr<Target>> targets_;
  journal::HeldLeases* leases_;
  journal::JournalWriter& writer_;
  const Clock& clock_;
  journal::JournalLocation journal_;
  [[nodiscard]] std::chrono::milliseconds maxIdleWait() const;
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
  bool woken_ = false;                              // a completion, a reload, a release: the dispatcher passes again
  bool new_work_ = false;                           // wake(): a batch committed, a replay
  // Set by the last pass when every target was full or its circuit not closed:
  // new work alone cannot be dispatched before a completion or a probe time.
  bool new_work_futile_ = false;
  bool stopping_ = false;
  std::int64_t next_prune_ms_ = 0;
  // Rows that may be in_flight in the journal with no worker holding them: a
  // release that did not commit, or a claim whose COMMIT failed (after a failed
  // fsync the claim can still be in the WAL and read back as committed once the
  // writer reopens the journal). Without this they would stay in_flight until
  // the next start. The dispatcher releases them before it claims anything
  // else, and claims nothing while any are left, so a release can never move a
  // row that a worker has claimed since.
  std::vector<std::int64_t> unreleased_;
  // Attempt records handed to the writer whose outcome is not back yet, and
  // those whose commit failed (their rows are still in_flight in the journal).
  int records_pending_ = 0;
  std::vector<std::shared_ptr<const Judged>> unrecorded_;
  std::chrono::steady_clock::time_point next_record_retry_{};
  std::condition_variable records_settled_;

  std::thread dispatcher_;
  std::vector<std::thread> workers_;
};

}  // namespace mews::delivery
