#include "delivery/engine.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>

#include <fmt/format.h>

#include "batch/body.h"
#include "batch/routing.h"
#include "common/json.h"
#include "common/log.h"
#include "common/text.h"
#include "delivery/signature.h"

namespace mews::delivery {
namespace {

constexpr std::int64_t kExpireEveryMs = 5'000;
constexpr std::int64_t kPruneEveryMs = 60'000;
constexpr int kExpireStep = 200;
constexpr int kPruneStep = 500;
// The dispatcher re-checks at least this often (maintenance), even when idle.
// On PostgreSQL more often: the CLI changes the journal there directly, not
// through the relay, which learns of a replay by looking.
constexpr std::chrono::milliseconds kMaxIdleWait{5'000};
constexpr std::chrono::milliseconds kMaxIdleWaitShared{1'000};
constexpr std::chrono::milliseconds kRecordRetry{1'000};
// Work claimed ahead of the workers, as a multiple of a target's concurrency:
// claims are one commit per dispatcher pass, so a queue a little deeper than
// the sending slots keeps the workers busy while the next claim commits. Only
// `concurrency` requests are ever sent to a target at once.
constexpr int kClaimAhead = 4;
constexpr std::int64_t kSuccessSaveEveryMs = 1'000;

std::string headersJson(const Headers& headers, const config::TargetSettings& target) {
  json::Writer out;
  out.beginObject();
  for (const auto& [name, value] : headers) {
    const bool configured = std::any_of(target.headers.begin(), target.headers.end(),
                                        [&sent = name](const auto& header) { return header.first == sent; });
    out.field(name, configured ? std::string_view("(masked)") : std::string_view(value));
  }
  return std::move(out.endObject()).text();
}

}  // namespace

DeliveryEngine::DeliveryEngine(const config::Settings& settings, journal::JournalWriter& writer, const Clock& clock,
                               journal::HeldLeases* leases)
    : leases_(leases),
      writer_(writer),
      clock_(clock),
      journal_(settings.journal.location()),
      journal_id_(writer.journalId()),
      retention_(settings.journal.retention),
      worker_count_(settings.delivery.workers),
      random_(std::random_device{}()) {
  for (const auto& target : settings.targets) {
    auto runtime = std::make_shared<Target>();
    runtime->config = makeConfig(target);
    targets_.push_back(std::move(runtime));
  }
  // A lease lost (journal/leases.h): no new attempt is dispatched (mayDispatch
  // is false from now on), and those in progress are cut now: abandoned,
  // released (fenced: a no-op once another relay holds the lease).
  if (leases_)
    leases_->onLost([this](const std::string& target) {
      watchdog_.cutGroupBy(target, std::chrono::steady_clock::now());
      wake();
    });
}

void DeliveryEngine::leaseAcquired(const std::string& target) {
  watchdog_.clearGroupCut(target);
  wake();
}

bool DeliveryEngine::dispatches(const std::string& target) const {
  return !leases_ || leases_->mayDispatch(target);
}

bool DeliveryEngine::busy(const std::string& target) const {
  const std::lock_guard lock(mutex_);
  for (const auto& runtime : targets_)
    if (runtime->config->settings.name == target) return runtime->in_flight > 0 || runtime->sending > 0;
  return false;
}

std::shared_ptr<const DeliveryEngine::TargetConfig> DeliveryEngine::makeConfig(const config::TargetSettings& settings) {
  auto config = std::make_shared<TargetConfig>();
  config->settings = settings;
  config->client = std::make_unique<TargetClient>(settings, watchdog_);
  return config;
}

void DeliveryEngine::reconfigure(const config::Settings& settings) {
  {
    const std::lock_guard lock(mutex_);
    reload_ = std::make_shared<const config::Settings>(settings);
    woken_ = true;
  }
  dispatcher_wake_.notify_one();
}

void DeliveryEngine::applyReload() {
  std::shared_ptr<const config::Settings> next;
  std::vector<std::shared_ptr<Target>> current;
  {
    const std::lock_guard lock(mutex_);
    next.swap(reload_);
    current = targets_;
  }
  if (!next) return;
  auto find = [](const std::vector<std::shared_ptr<Target>>& in, const std::string& name) {
    const auto it = std::find_if(in.begin(), in.end(), [&](const auto& t) { return t->config->settings.name == name; });
    return it == in.end() ? nullptr : *it;
  };
  // Built before taking the lock (a client may set up TLS); unchanged targets
  // keep their config, and with it their kept-alive connections.
  std::vector<std::pair<std::shared_ptr<Target>, std::shared_ptr<const TargetConfig>>> wanted;
  std::vector<std::string> added, changed, removed;
  for (const auto& settings : next->targets) {
    auto target = find(current, settings.name);
    if (target && target->config->settings == settings) {
      wanted.emplace_back(target, target->config);
      continue;
    }
    std::shared_ptr<const TargetConfig> config;
    try {
      config = makeConfig(settings);
    } catch (const std::exception& e) {
      log::error("delivery", "cannot apply a target's new settings; it keeps its previous ones",
                 {{"target", settings.name}, {"error", e.what()}});
      if (target) wanted.emplace_back(target, target->config);
      continue;
    }
    (target ? changed : added).push_back(settings.name);
    wanted.emplace_back(target ? target : std::make_shared<Target>(), std::move(config));
  }
  for (const auto& target : current) {
    const std::string& name = target->config->settings.name;
    if (std::none_of(next->targets.begin(), next->targets.end(), [&](const auto& t) { return t.name == name; }))
      removed.push_back(name);
  }

  std::vector<std::int64_t> unsent;
  {
    const std::lock_guard lock(mutex_);
    targets_.clear();
    for (auto& [target, config] : wanted) {
      // A new url is another server: its circuit starts closed.
      if (target->config && target->config->settings.url != config->settings.url) target->circuit = CircuitBreaker{};
      target->config = std::move(config);
      targets_.push_back(std::move(target));
    }
    // Claimed for a removed target and not sent yet: back to pending, where it
    // waits under the target's name.
    for (auto it = work_.begin(); it != work_.end();) {
      if (std::find(removed.begin(), removed.end(), it->config->settings.name) == removed.end()) {
        ++it;
        continue;
      }
      unsent.push_back(it->due.id);
      it->target->in_flight--;
      it = work_.erase(it);
    }
    retention_ = next->journal.retention;
  }
  // A release that does not commit is kept in unreleased_ and settled before the next claim.
  if (!unsent.empty()) release(unsent);
  auto joined = [](const std::vector<std::string>& names) {
    return names.empty() ? std::string("-") : text::joinList(names);
  };
  log::info("delivery", "targets reloaded",
            {{"added", joined(added)}, {"changed", joined(changed)}, {"removed", joined(removed)}});
}

DeliveryEngine::~DeliveryEngine() {
  stop();
}

void DeliveryEngine::start() {
  dispatcher_ = std::thread([this] { dispatchLoop(); });
  for (int i = 0; i < worker_count_; ++i) workers_.emplace_back([this] { workerLoop(); });
}

void DeliveryEngine::stop() {
  {
    const std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  // Attempts in progress end by their own deadline, and by this one at the latest.
  watchdog_.cutAllBy(std::chrono::steady_clock::now() + kStopGrace);
  dispatcher_wake_.notify_all();
  work_ready_.notify_all();
  stopped_.notify_all();
  if (dispatcher_.joinable()) dispatcher_.join();
  for (auto& worker : workers_)
    if (worker.joinable()) worker.join();
  // Claimed but never started: back to pending, untouched.
  std::vector<std::int64_t> ids;
  {
    const std::lock_guard lock(mutex_);
    for (const auto& item : work_) ids.push_back(item.due.id);
    work_.clear();
    ids.insert(ids.end(), unreleased_.begin(), unreleased_.end());
    unreleased_.clear();
  }
  if (!ids.empty()) release(ids);
  if (!settleUnreleased())
    log::warn("delivery", "claimed deliveries are released at the next start", {{"count", std::to_string(ids.size())}});
  settleRecords();
}

void DeliveryEngine::settleRecords() {
  // The writer outlives the engine, so every record handed to it gets its
  // outcome; one that failed is tried once more here.
  const auto waitForRecords = [this] {
    std::unique_lock lock(mutex_);
    records_settled_.wait(lock, [this] { return records_pending_ == 0; });
  };
  waitForRecords();
  std::vector<std::shared_ptr<const Judged>> again;
  {
    const std::lock_guard lock(mutex_);
    again.swap(unrecorded_);
  }
  if (again.empty()) return;
  for (auto& judged : again) record(std::move(judged));
  waitForRecords();
  std::size_t left = 0;
  {
    const std::lock_guard lock(mutex_);
    left = unrecorded_.size();
    unrecorded_.clear();
  }
  // Still in_flight in the journal: released and attempted again at the next
  // start (the same webhook-id), so nothing is lost.
  if (left > 0)
    log::warn("delivery", "attempts not recorded at stop; their deliveries are attempted again at the next start",
              {{"count", std::to_string(left)}});
}

void DeliveryEngine::release(const std::vector<std::int64_t>& ids, std::optional<std::int64_t> epoch) {
  const std::int64_t now = clock_.wallMillis();
  const auto released = writer_
                            .submit([ids, now, epoch](journal::Journal& journal) {
                              return journal::releaseInFlight(journal, now, ids, epoch);
                            })
                            .get();
  if (released.committed()) return;
  log::warn("delivery", "could not release claimed deliveries; retried before the next claim",
            {{"count", std::to_string(ids.size())}, {"error", released.error}});
  const std::lock_guard lock(mutex_);
  unreleased_.insert(unreleased_.end(), ids.begin(), ids.end());
}

bool DeliveryEngine::settleUnreleased() {
  std::vector<std::int64_t> ids;
  {
    const std::lock_guard lock(mutex_);
    ids.swap(unreleased_);
  }
  if (!ids.empty()) release(ids);
  const std::lock_guard lock(mutex_);
  return unreleased_.empty();
}

void DeliveryEngine::wake() {
  {
    const std::lock_guard lock(mutex_);
    new_work_ = true;
    // Every target is full or its circuit is not closed: new work waits for a
    // completion or a probe time, which wake the dispatcher anyway. Under load
    // against a target that is down, this spares a pass per received batch.
    if (new_work_futile_) return;
  }
  dispatcher_wake_.notify_one();
}

std::vector<TargetSnapshot> DeliveryEngine::targets() const {
  const std::lock_guard lock(mutex_);
  std::vector<TargetSnapshot> out;
  for (const auto& target : targets_)
    out.push_back({target->config->settings.name, target->metrics, target->circuit.state(), target->in_flight,
                   target->circuit.consecutiveFailures(), target->last_error});
  return out;
}

std::string DeliveryEngine::webhookId(const journal::DueDelivery& due) const {
  // Stable per journaled item: the same across retries and replays.
  if (due.event_seq) return fmt::format("msg_{}_{}_{}", journal_id_, due.batch_id, *due.event_seq);
  return fmt::format("msg_{}_{}", journal_id_, due.batch_id);
}

// Rows a previous process left in flight go back to pending before anything is
// dispatched. Retried, not fatal: with the disk below min_free the writer
// refuses every write, and the relay must still start and answer 503 (and
// /readyz) until space returns, rather than exit into a restart loop.
bool DeliveryEngine::releaseLeftInFlight() {
  while (true) {
    const std::int64_t now = clock_.wallMillis();
    const auto released =
        writer_.submit([now](journal::Journal& journal) { return journal::releaseInFlight(journal, now); }).get();
    if (released.committed()) {
      if (released.value > 0)
        log::warn("delivery", "deliveries in flight at the last stop are due again",
                  {{"count", std::to_string(released.value)}});
      return true;
    }
    log::error("delivery", "cannot release deliveries left in flight; retrying", {{"error", released.error}});
    std::unique_lock lock(mutex_);
    if (stopped_.wait_for(lock, kRecordRetry, [this] { return stopping_; })) return false;
  }
}

void DeliveryEngine::dispatchLoop() {
  pthread_setname_np(pthread_self(), "dispatcher");
  if (!releaseLeftInFlight()) return;
  std::unique_ptr<journal::Journal> reader;
  while (true) {
    {
      const std::lock_guard lock(mutex_);
      if (stopping_) return;
      woken_ = false;
      new_work_ = false;
      new_work_futile_ = false;
    }
    std::chrono::milliseconds wait = maxIdleWait();
    try {
      // Another file at the path: the writer put the journal back there after it
      // was removed (journal/writer.h); the old connection would read the old file.
      if (reader && reader->anotherFileAtPath()) reader.reset();
      if (!reader) reader = std::make_unique<journal::Journal>(journal_, journal::JournalOptions{0, true});
      applyReload();
      const std::int64_t now = clock_.wallMillis();
      maintain(now);
      retryUnrecorded();
      if (!settleUnreleased()) throw std::runtime_error("claimed deliveries not yet released");
      if (dispatchDue(*reader, now)) continue;
      wait = idleWait(*reader, now);
    } catch (const std::exception& e) {
      // A failed read or write is retried on the next pass; the reader is reopened.
      log::error("delivery", "dispatcher pass failed", {{"error", e.what()}});
      reader.reset();
      wait = std::chrono::milliseconds(1'000);
    }
    std::unique_lock lock(mutex_);
    dispatcher_wake_.wait_for(lock, wait, [this] { return stopping_ || woken_ || (new_work_ && !new_work_futile_); });
  }
}

std::chrono::milliseconds DeliveryEngine::maxIdleWait() const {
  return journal_.backend() == journal::Backend::Sqlite ? kMaxIdleWait : kMaxIdleWaitShared;
}

bool DeliveryEngine::dispatchDue(journal::Journal& reader, std::int64_t now_ms) {
  // targets_ changes only on this thread (applyReload), so it is read here without the lock.
  std::vector<std::pair<std::shared_ptr<Target>, journal::DueDelivery>> candidates;
  for (const auto& target : targets_) {
    if (!dispatches(target->config->settings.name)) continue;  // another relay's (journal/leases.h)
    int admitted = 0;
    {
      const std::lock_guard lock(mutex_);
      admitted = target->circuit.admits(kClaimAhead * target->config->settings.concurrency - target->in_flight, now_ms);
    }
    if (admitted <= 0) continue;
    for (auto& due : journal::selectDue(reader, target->config->settings.name, now_ms, admitted))
      candidates.emplace_back(target, std::move(due));
  }
  if (candidates.empty()) return false;

  std::vector<std::int64_t> ids;
  for (const auto& [t, due] : candidates) ids.push_back(due.id);
  auto claimed = std::make_shared<std::vector<bool>>(ids.size(), false);
  auto epochs = std::make_shared<std::vector<std::optional<std::int64_t>>>(ids.size());
  const auto outcome = writer_
                           .submit([ids, claimed, epochs, now_ms](journal::Journal& journal) {
                             std::int64_t count = 0;
                             for (std::size_t i = 0; i < ids.size(); ++i)
                               if (((*claimed)[i] = journal::claimDelivery(journal, ids[i], now_ms, &(*epochs)[i])))
                                 ++count;
                             return count;
                           })
                           .get();
  if (!outcome.committed()) {
    // The claim may still have reached the journal (see unreleased_).
    const std::lock_guard lock(mutex_);
    unreleased_.insert(unreleased_.end(), ids.begin(), ids.end());
    throw std::runtime_error("cannot claim deliveries: " + outcome.error);
  }

  for (std::size_t i = 0; i < candidates.size(); ++i) {
    if (!(*claimed)[i]) continue;  // moved by someone else meanwhile (a purge, a replay)
    auto& [target, due] = candidates[i];
    WorkItem item{std::move(due), target, target->config, {}, false, (*epochs)[i]};
    std::optional<journal::StoredBatch> batch;
    try {
      batch = journal::loadBatch(reader, item.due.batch_id);
      item.body = batch::buildBody(batch->kind, batch->body, item.due.event_seq, item.config->settings);
    } catch (const journal::StorageError& e) {
      // Reading failed, not the row: back to pending, tried again on a later pass.
      log::error("delivery", "cannot read a claimed batch; released",
                 {{"batch", std::to_string(item.due.batch_id)}, {"error", e.what()}});
      release({item.due.id}, item.epoch);
      continue;
    } catch (const std::exception& e) {
      // A row that cannot be turned into a request is not dropped: it becomes a
      // dead letter with the reason, for a person to look at. Nothing was sent,
      // so the target is not judged: its circuit stays as it is.
      HttpAttempt unsent;
      unsent.error = std::string("cannot build the request: ") + e.what();
      Judged judged = judge(item, unsent, AttemptResult::Kind::Unbuildable, now_ms);
      if (batch)
        judged.attempt.dead_letter_event_types =
            batch::deadLetterEventTypes(item.config->settings, batch->body, item.due.event_seq);
      record(std::move(judged));
      continue;
    }
    {
      const std::lock_guard lock(mutex_);
      item.probe = target->circuit.state() != CircuitState::Closed;
      target->circuit.onDispatch(now_ms);
      target->in_flight++;
      work_.push_back(std::move(item));
    }
    work_ready_.notify_one();
  }
  return true;
}

void DeliveryEngine::maintain(std::int64_t now_ms) {
  for (const auto& target_ptr : targets_) {
    Target& target = *target_ptr;
    if (now_ms < target.next_expire_ms || !dispatches(target.config->settings.name)) continue;
    target.next_expire_ms = now_ms + kExpireEveryMs;
    const config::TargetSettings& settings = target.config->settings;
    const std::string name = settings.name;
    const auto types = batch::deadLetterTypes(settings);
    const std::int64_t cutoff = now_ms - settings.max_age.count();
    const auto expired = writer_
                             .submit([name, types, cutoff, now_ms](journal::Journal& journal) {
                               return journal::expireOld(journal, name, types, cutoff, now_ms, kExpireStep);
                             })
                             .get();
    if (expired.committed() && expired.value > 0) {
      log::warn("delivery", "undelivered work passed max_age and went to the dead letters",
                {{"target", name}, {"count", std::to_string(expired.value)}});
      if (expired.value == kExpireStep) target.next_expire_ms = now_ms;  // more to do: next pass
    }
  }
  if (now_ms >= next_prune_ms_) {
    next_prune_ms_ = now_ms + kPruneEveryMs;
    const std::int64_t cutoff = now_ms - retention_.count();
    const auto pruned = writer_
                            .submit([cutoff](journal::Journal& journal) {
                              return journal::pruneDelivered(journal, cutoff, kPruneStep);
                            })
                            .get();
    // A full step means more is left: continue soon, a step at a time, so the
    // writer is never held long.
    if (pruned.committed() && pruned.value >= kPruneStep) next_prune_ms_ = now_ms + 100;
  }
}

std::chrono::milliseconds DeliveryEngine::idleWait(journal::Journal& reader, std::int64_t now_ms) {
  std::int64_t wait_ms = maxIdleWait().count();
  bool all_blocked = true;  // no target could take new work now
  {
    const std::lock_guard lock(mutex_);
    if (!unrecorded_.empty()) wait_ms = kRecordRetry.count();  // retryUnrecorded() paces itself
  }
  for (const auto& target : targets_) {
    CircuitState state;
    std::int64_t probe_at = 0;
    int free_slots = 0;
    {
      const std::lock_guard lock(mutex_);
      state = target->circuit.state();
      probe_at = target->circuit.probeAtMs();
      free_slots = kClaimAhead * target->config->settings.concurrency - target->in_flight;
    }
    if (free_slots <= 0 || state == CircuitState::HalfOpen) continue;  // a worker's completion wakes us
    if (state == CircuitState::Open && probe_at > now_ms)
      // Waits for its probe time, also for work that arrives meanwhile.
      wait_ms = std::min(wait_ms, probe_at - now_ms);
    else
      all_blocked = false;
    const auto next_due = journal::nextDueMs(reader, target->config->settings.name);
    if (!next_due) continue;
    const std::int64_t at = state == CircuitState::Open ? std::max(*next_due, probe_at) : *next_due;
    wait_ms = std::min(wait_ms, std::max<std::int64_t>(at - now_ms, 1));
  }
  {
    const std::lock_guard lock(mutex_);
    // Unless something woke the dispatcher since this pass began (then it runs again).
    if (!woken_ && !new_work_) new_work_futile_ = all_blocked;
  }
  return std::chrono::milliseconds(wait_ms);
}

void DeliveryEngine::workerLoop() {
  pthread_setname_np(pthread_self(), "delivery");
  // A send on a connection the target closed, or the deadline watchdog shut
  // down, fails with EPIPE; the SIGPIPE that comes with it stays pending on
  // this thread rather than ending the process (`serve` ignores it anyway; an
  // embedding program, such as a test, may not).
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
  while (true) {
    WorkItem item;
    bool held_back = false;
    {
      std::unique_lock lock(mutex_);
      // The first queued item whose target has a free sending slot: a target
      // at its concurrency never holds up another target's work.
      auto sendable = work_.end();
      work_ready_.wait(lock, [&] {
        if (stopping_) return true;
        sendable = std::find_if(work_.begin(), work_.end(), [&](const WorkItem& queued) {
          const Target& target = *queued.target;
          return target.sending < target.config->settings.concurrency;
        });
        return sendable != work_.end();
      });
      if (stopping_) return;  // what is still queued is released by stop()
      item = std::move(*sendable);
      work_.erase(sendable);
      item.target->sending++;
      // Claimed while the circuit was closed, and it opened since: not sent,
      // no attempt spent; back to pending, where the probe paces it.
      held_back = !item.probe && item.target->circuit.state() != CircuitState::Closed;
    }
    // Claimed before the target's lease was lost or handed over: not sent.
    if (!held_back) held_back = !dispatches(item.config->settings.name);
    // Claimed under an older lease of this relay (lost, then acquired again,
    // which released the row): not sent, and not this item's to release.
    const bool stale = leases_ && item.epoch && leases_->epoch(item.config->settings.name) != item.epoch;
    if (held_back && !stale) release({item.due.id}, item.epoch);
    held_back = held_back || stale;
    try {
      if (!held_back) deliver(item);
    } catch (const std::exception& e) {
      // Never a dead thread: the row goes back to pending for another attempt.
      log::error("delivery", "delivery failed unexpectedly; released for another attempt",
                 {{"delivery", std::to_string(item.due.id)}, {"error", e.what()}});
      release({item.due.id}, item.epoch);
    }
    {
      const std::lock_guard lock(mutex_);
      item.target->in_flight--;
      item.target->sending--;
      woken_ = true;
    }
    dispatcher_wake_.notify_one();
    work_ready_.notify_all();  // a sending slot is free: a waiting worker may take its item
  }
}

void DeliveryEngine::deliver(WorkItem& item) {
  const config::TargetSettings& settings = item.config->settings;
  const std::int64_t started_ms = clock_.wallMillis();
  const std::string id = webhookId(item.due);
  const std::string timestamp = std::to_string(started_ms / 1000);
  Headers headers{{"User-Agent", std::string("mews-relay/") + MEWS_RELAY_VERSION},
                  {"webhook-id", id},
                  {"webhook-timestamp", timestamp}};
  if (!settings.secret.empty())
    headers.emplace_back("webhook-signature", signPayload(settings.secret, id, started_ms / 1000, item.body));
  for (const auto& header : settings.headers) headers.push_back(header);

  const HttpAttempt attempt = item.config->client->post(item.body, headers);
  if (attempt.abandoned) {
    // The relay is stopping, or lost the target's lease, and the attempt came
    // to nothing: not judged, sent again (same webhook-id) after the restart or
    // by the lease's next holder.
    log::info("delivery", "attempt abandoned (stop or lease lost); released",
              {{"target", settings.name}, {"delivery", std::to_string(item.due.id)}});
    release({item.due.id}, item.epoch);
    return;
  }
  Judged judged =
      judge(item, attempt, attempt.redirect_refused ? AttemptResult::Kind::RedirectRefused : AttemptResult::Kind::Sent,
            started_ms);
  judged.attempt.request_headers_json = headersJson(headers, settings);
  // Named here, from the body sent (in event mode the one event, in batch mode
  // the events the filter passed), not by the writer from the stored batch:
  // that would parse the whole batch again for each of its events, on the
  // thread every acknowledgement waits for.
  if (judged.attempt.outcome == journal::AttemptOutcome::Dead)
    judged.attempt.dead_letter_event_types = batch::deadLetterEventTypes(settings, item.body, std::nullopt);
  item.target->metrics->attempt_seconds.observe(std::chrono::duration<double>(attempt.duration).count());
  record(std::move(judged));
}

DeliveryEngine::Judged DeliveryEngine::judge(const WorkItem& item, const HttpAttempt& attempt, AttemptResult::Kind kind,
                                             std::int64_t started_ms) {
  const std::int64_t now = clock_.wallMillis();
  Judged judged;
  judged.target = item.target;
  journal::AttemptRecord& record = judged.attempt;
  record.delivery_id = item.due.id;
  record.target = item.config->settings.name;
  record.started_ms = started_ms;
  record.duration_ms = attempt.duration.count();
  record.status = attempt.status;
  record.response_excerpt = attempt.response_excerpt;
  record.now_ms = now;
  record.claim = item.epoch;
  record.error = attempt.error;

  const std::lock_guard lock(mutex_);
  // The attempt's settings (as dispatched) decide its retry; the circuit is the target's.
  Target& target = *item.target;
  const config::TargetSettings& settings = item.config->settings;
  const CircuitState before = target.circuit.state();
  const int failures_before = target.circuit.consecutiveFailures();
  const Decision decision =
      decide({kind, attempt.status, attempt.retry_after}, item.due, item.probe, settings, target.circuit, now, random_);
  target.circuit.apply(decision.circuit, now, decision.next_probe_delay);
  record.outcome = decision.outcome;
  record.dead_reason = decision.dead_reason;
  record.spends_attempt = decision.spends_attempt;
  record.next_due_ms = decision.next_due_ms;
  const bool delivered = decision.outcome == journal::AttemptOutcome::Delivered;
  if (record.error.empty() && !delivered && attempt.status) record.error = fmt::format("HTTP {}", *attempt.status);
  if (decision.circuit == CircuitEvent::None) return judged;

  if (!delivered) target.last_error = record.error;
  const CircuitState after = target.circuit.state();
  // A success that changes nothing (closed before and after, no failures to
  // reset) is saved at most once a second: target_state's last_success_at is
  // then exact to the second, without an upsert per delivered batch.
  if (delivered && before == after && failures_before == 0 && now < target.success_saved_ms + kSuccessSaveEveryMs)
    return judged;
  if (delivered) target.success_saved_ms = now;
  if (before != after && !(before == CircuitState::Open && after == CircuitState::HalfOpen))
    log::warn("delivery", after == CircuitState::Closed ? "circuit closed: target is back" : "circuit opened",
              {{"target", settings.name},
               {"failures", std::to_string(target.circuit.consecutiveFailures())},
               {"last_error", target.last_error}});
  journal::TargetStateRecord& state = judged.target_state.emplace();
  state.target = settings.name;
  state.circuit = std::string(circuitName(after));
  state.consecutive_failures = target.circuit.consecutiveFailures();
  if (!delivered) state.last_error = record.error;
  state.success = delivered;
  state.opened = before == CircuitState::Closed && after == CircuitState::Open;
  state.now_ms = now;
  return judged;
}

void DeliveryEngine::record(Judged judged) {
  record(std::make_shared<const Judged>(std::move(judged)));
}

void DeliveryEngine::record(std::shared_ptr<const Judged> judged) {
  {
    const std::lock_guard lock(mutex_);
    ++records_pending_;
  }
  writer_.submit(
      [judged](journal::Journal& journal) {
        const bool moved = journal::recordAttempt(journal, judged->attempt);
        // Fenced out (the lease went to another relay): its circuit is not ours to write.
        const bool fenced_out = !moved && !journal.fenceOwner().empty();
        if (const auto& state = judged->target_state; state && !fenced_out) {
          journal::saveTargetState(journal, *state);
          if (state->opened) journal::requeueInReceiveOrder(journal, state->target, state->now_ms);
        }
        return static_cast<std::int64_t>(moved);
      },
      [this, judged](const journal::WriteOutcome& outcome) { onRecorded(judged, outcome); });
}

void DeliveryEngine::onRecorded(const std::shared_ptr<const Judged>& judged, const journal::WriteOutcome& outcome) {
  const journal::AttemptRecord& attempt = judged->attempt;
  if (!outcome.committed()) {
    // The row is still in_flight in the journal: nobody can claim it. Kept,
    // and handed to the writer again by the dispatcher (retryUnrecorded).
    log::error("delivery", "cannot record an attempt; retrying",
               {{"delivery", std::to_string(attempt.delivery_id)}, {"error", outcome.error}});
    {
      const std::lock_guard lock(mutex_);
      unrecorded_.push_back(judged);
      --records_pending_;
    }
    records_settled_.notify_all();
    return;
  }
  judged->target->metrics->outcomes[static_cast<std::size_t>(attempt.outcome)].add();
  const auto level = attempt.outcome == journal::AttemptOutcome::Delivered ? log::Level::Debug : log::Level::Warn;
  if (log::enabled(level))
    log::write(level, "delivery", journal::outcomeName(attempt.outcome),
               {{"target", attempt.target},
                {"delivery", std::to_string(attempt.delivery_id)},
                {"status", attempt.status ? std::to_string(*attempt.status) : "-"},
                {"error", attempt.error},
                {"duration_ms", std::to_string(attempt.duration_ms)}});
  {
    const std::lock_guard lock(mutex_);
    --records_pending_;
    woken_ = true;  // the row left in_flight: the circuit may have closed, a retry may be due
  }
  dispatcher_wake_.notify_one();
  records_settled_.notify_all();
}

void DeliveryEngine::retryUnrecorded() {
  std::vector<std::shared_ptr<const Judged>> again;
  {
    const std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (unrecorded_.empty() || now < next_record_retry_) return;
    next_record_retry_ = now + kRecordRetry;
    again.swap(unrecorded_);
  }
  for (auto& judged : again) record(std::move(judged));
}

}  // namespace mews::delivery
