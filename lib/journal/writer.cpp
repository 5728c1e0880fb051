#include "journal/writer.h"

#include <pthread.h>

#include <fmt/format.h>
#include <algorithm>

#include "common/log.h"
#include "journal/files.h"

namespace mews::journal {

namespace {

// Reasons a group fails, as a client and /readyz see them: no paths.
constexpr const char* kFilesChanged = "journal file was removed or replaced under the relay";
constexpr const char* kCannotSave = "journal file was removed or replaced; the relay cannot save its copy yet";
constexpr const char* kRefused = "another file is at the journal's path; writes refused until an operator acts";
constexpr const char* kLockLost = "journal lock is held by another process or cannot be taken";

std::string reasonFor(const SqliteError& e) {
  switch (e.primary()) {
    case SQLITE_FULL:
      return "journal is full";
    case SQLITE_READONLY:
      return "journal is read-only";
    case SQLITE_CANTOPEN:
      return "journal file is missing or cannot be opened";
    default:
      return "journal cannot take the write";
  }
}

std::int64_t wallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Logs `message` when `detail` differs from what was logged last for it: a
// condition that lasts is logged once, not at every group.
void logOnce(std::string& last, const std::string& detail, std::string_view message,
             std::initializer_list<log::Field> fields) {
  if (detail == last) return;
  last = detail;
  log::error("journal", message, fields);
}

}  // namespace

JournalWriter::JournalWriter(WriterOptions options)
    : options_(std::move(options)),
      journal_(std::make_unique<Journal>(options_.path, options_.journal)),
      journal_id_(journal_->journalId()),
      thread_([this] { run(); }) {}

JournalWriter::~JournalWriter() {
  stop();
}

std::string JournalWriter::journalId() const {
  return journal_id_;
}

void JournalWriter::Pending::finish(WriteOutcome outcome) {
  if (auto* promise = std::get_if<std::promise<WriteOutcome>>(&reply))
    promise->set_value(std::move(outcome));
  else
    std::get<Completion>(reply)(outcome);
}

std::future<WriteOutcome> JournalWriter::submit(Job job) {
  std::promise<WriteOutcome> promise;
  auto future = promise.get_future();
  enqueue({std::move(job), std::move(promise)});
  return future;
}

void JournalWriter::submit(Job job, Completion done) {
  enqueue({std::move(job), std::move(done)});
}

void JournalWriter::enqueue(Pending pending) {
  bool queued = false;
  {
    const std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back(std::move(pending));
      queued = true;
    }
  }
  if (queued)
    wake_.notify_one();
  else
    pending.finish({WriteOutcome::Status::StorageFailure, 0, "relay is shutting down"});
}

void JournalWriter::stop() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

WriterStats JournalWriter::stats() const {
  const std::lock_guard lock(mutex_);
  return stats_;
}

std::size_t JournalWriter::queued() const {
  const std::lock_guard lock(mutex_);
  return queue_.size();
}

void JournalWriter::run() {
  pthread_setname_np(pthread_self(), "journal-writer");
  std::deque<Pending> group;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (!wake_.wait_for(lock, options_.idle_check, [this] { return stopping_ || !queue_.empty(); })) {
        lock.unlock();
        prepare(true);  // nothing to write: check (and recover) all the same
        continue;
      }
      if (queue_.empty()) return;  // stopping, and everything queued is done
      // Everything queued while the previous commit was fsyncing goes into this
      // one: that is the group commit.
      while (!queue_.empty() && group.size() < options_.max_group) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    commitGroup(group);
    group.clear();
  }
}

std::string JournalWriter::diskBelowWatermark() const {
  if (options_.min_free_bytes == 0) return {};
  const auto free_bytes = freeDiskBytes(options_.path);
  if (!free_bytes || *free_bytes >= options_.min_free_bytes) return {};  // cannot tell: let SQLite report
  return fmt::format("free disk below min_free ({} bytes left)", *free_bytes);
}

void JournalWriter::failGroup(std::deque<Pending>& group, WriteOutcome::Status status, const std::string& error) {
  // Counted before the submitters can see their outcome, so that the figures
  // never lag behind what a caller already knows.
  metrics_.failed_groups.add();
  {
    const std::lock_guard lock(mutex_);
    stats_.jobs_failed += group.size();
  }
  for (auto& pending : group) pending.finish({status, 0, error});
}

void JournalWriter::commitGroup(std::deque<Pending>& group) {
  if (const std::string low = diskBelowWatermark(); !low.empty()) {
    failGroup(group, WriteOutcome::Status::StorageFailure, low);
    return;
  }
  if (const std::string refused = prepare(false); !refused.empty()) {
    failGroup(group, WriteOutcome::Status::StorageFailure, refused);
    return;
  }

  Database& db = journal_->db();
  Savepoints& savepoint = journal_->savepoints();
  std::vector<WriteOutcome> outcomes(group.size());
  const auto started = std::chrono::steady_clock::now();
  auto applied = started;
  auto committed_at = started;
  std::string left_path;  // which files left the path during the group, if any
  try {
    Transaction transaction(db);
    for (std::size_t i = 0; i < group.size(); ++i) {
      savepoint.begin.run();
      try {
        outcomes[i] = {WriteOutcome::Status::Committed, group[i].job(*journal_), {}};
        savepoint.release.run();
      } catch (const SqliteError& e) {
        // SQLite may have rolled back the whole transaction (SQLITE_FULL and
        // I/O errors can): then nothing of this group survives. An error that
        // makes the connection suspect fails the group too, and retires it.
        if (!db.inTransaction() || e.needsReopen()) throw;
        savepoint.rollback.run();
        savepoint.release.run();
        const bool storage = e.isStorageFailure();
        outcomes[i] = {storage ? WriteOutcome::Status::StorageFailure : WriteOutcome::Status::Rejected, 0,
                       storage ? "journal cannot take the write" : "journal refused the write"};
        log::error("journal", "write failed", {{"error", e.what()}});
      } catch (const std::exception& e) {
        if (!db.inTransaction()) throw;
        savepoint.rollback.run();
        savepoint.release.run();
        outcomes[i] = {WriteOutcome::Status::Rejected, 0, "journal refused the write"};
        log::error("journal", "write job failed", {{"error", e.what()}});
      }
    }
    applied = std::chrono::steady_clock::now();
    // Files that left the path while the jobs ran: commit nothing where no
    // restart would look (the transaction rolls back as it goes out of scope).
    left_path = journal_->files().changes();
    if (left_path.empty()) transaction.commit();
    committed_at = std::chrono::steady_clock::now();
  } catch (const SqliteError& e) {
    log::error("journal", "commit failed; nothing in this group is acknowledged",
               {{"jobs", std::to_string(group.size())}, {"error", e.what()}});
    if (e.needsReopen()) closeAfterFailure();
    failGroup(group, WriteOutcome::Status::StorageFailure, reasonFor(e));
    return;
  } catch (const std::exception& e) {
    // Anything else (out of memory): the transaction was rolled back by its
    // destructor; the group fails, the writer thread lives on.
    log::error("journal", "group failed; nothing in it is acknowledged", {{"error", e.what()}});
    failGroup(group, WriteOutcome::Status::StorageFailure, "journal cannot take the write");
    return;
  }

  // The commit is on disk, but in the files this connection holds: when they
  // left the path during the COMMIT, no restart would find it there. (The copy
  // saved by detach() holds it; it is not acknowledged all the same.)
  if (left_path.empty()) left_path = journal_->files().changes();
  if (!left_path.empty()) {
    failGroup(group, WriteOutcome::Status::StorageFailure, detach(left_path));
    return;
  }

  const auto committed = static_cast<std::uint64_t>(
      std::count_if(outcomes.begin(), outcomes.end(), [](const WriteOutcome& o) { return o.committed(); }));
  const auto micros = [](auto duration) {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(duration).count());
  };
  // Counted before the submitters can see their outcome (as in failGroup).
  metrics_.commit_seconds.observe(std::chrono::duration<double>(committed_at - applied).count());
  metrics_.group_size.observe(static_cast<double>(group.size()));
  {
    const std::lock_guard lock(mutex_);
    stats_.apply_micros += micros(applied - started);
    stats_.commit_micros += micros(committed_at - applied);
    stats_.commits += 1;
    stats_.jobs_committed += committed;
    stats_.jobs_failed += group.size() - committed;
  }
  for (std::size_t i = 0; i < group.size(); ++i) group[i].finish(std::move(outcomes[i]));
}

std::string JournalWriter::prepare(bool idle) {
  // The files first: restoring a journal re-creates its directory, which the
  // lock file needs when the directory was renamed away.
  std::string problem;
  if (!journal_) {
    problem = saved_copy_.empty() ? reopen("journal reopened after a failed commit") : restoreSavedCopy();
  } else if (idle) {
    // A group checks them before its COMMIT (and a change found then rolls
    // it back), so only here when there is no group.
    if (const std::string changes = journal_->files().changes(); !changes.empty()) problem = detach(changes);
  }
  // The lock even when the files are not ready, so that a lock file removed
  // with them is taken again as soon as the journal is back.
  std::string lock_problem = checkLock();
  return problem.empty() ? lock_problem : problem;
}

std::string JournalWriter::checkLock() {
  if (options_.lock == nullptr) return {};
  const auto check = options_.lock->reclaim();
  switch (check.state) {
    case JournalLock::Check::State::Held:
      logged_lock_loss_.clear();
      return {};
    case JournalLock::Check::State::Reclaimed:
      metrics_.file_faults.add();
      logged_lock_loss_.clear();
      log::error("journal", "journal lock file was removed or replaced under the relay; locked again",
                 {{"detail", check.detail}});
      return {};
    case JournalLock::Check::State::Lost:
      if (logged_lock_loss_.empty()) metrics_.file_faults.add();
      logOnce(logged_lock_loss_, check.detail,
              "journal lock lost; writes refused until it is held again (is a second relay running?)",
              {{"detail", check.detail}});
      break;
  }
  return kLockLost;
}

std::string JournalWriter::detach(const std::string& changes) {
  if (logged_save_error_.empty()) {
    metrics_.file_faults.add();
    log::error("journal", "journal files are no longer those at the journal's path; saving what the relay holds",
               {{"path", options_.path}, {"change", changes}});
  }
  try {
    saved_copy_ = saveCopy(journal_->db(), options_.path, wallMillis());
  } catch (const std::exception& e) {
    // The open connection is now the only copy: keep it, and try again at the
    // next group (after space was freed, say).
    // Logged once until a save succeeds (each attempt names a new file).
    logOnce(logged_save_error_, "failing",
            "cannot save the journal the relay holds; retrying at each write (do not stop the relay: it holds the "
            "only copy)",
            {{"path", options_.path}, {"error", e.what()}});
    return kCannotSave;
  }
  logged_save_error_.clear();
  log::warn("journal", "journal saved from the open connection", {{"path", options_.path}, {"copy", saved_copy_}});
  // Its own files still at the path are stale now (the copy has everything),
  // and a stale -wal would be applied to whatever database is put there.
  journal_->files().removeRecordedFromPath();
  journal_->db().keepFilesOnClose();
  journal_.reset();
  restoreSavedCopy();
  return kFilesChanged;
}

std::string JournalWriter::restoreSavedCopy() {
  const std::string present = JournalFiles::firstPresent(options_.path);
  try {
    if (present.empty() && placeCopy(saved_copy_, options_.path)) {
      log::warn("journal", "journal put back at its path from the saved copy",
                {{"path", options_.path}, {"from", saved_copy_}});
      saved_copy_.clear();
      logged_restore_block_.clear();
      return reopen("journal reopened at its path");
    }
  } catch (const std::exception& e) {
    logOnce(logged_restore_block_, e.what(), "cannot put the saved journal back at its path",
            {{"path", options_.path}, {"saved", saved_copy_}, {"error", e.what()}});
    return kRefused;
  }
  const std::string blocking = present.empty() ? options_.path : present;
  logOnce(logged_restore_block_, blocking,
          "another file is at the journal's path; writes refused until an operator acts: move it away to go on with "
          "the saved journal, or stop the relay to serve that file instead",
          {{"path", options_.path}, {"file", blocking}, {"saved", saved_copy_}});
  return kRefused;
}

std::string JournalWriter::reopen(std::string_view success) {
  try {
    JournalOptions options = options_.journal;
    options.create = false;
    journal_ = std::make_unique<Journal>(options_.path, options);
  } catch (const SqliteError& e) {
    logOnce(logged_reopen_error_, e.what(), "cannot reopen journal; writes refused until it can be",
            {{"path", options_.path}, {"error", e.what()}});
    return reasonFor(e);
  } catch (const std::exception& e) {
    logOnce(logged_reopen_error_, e.what(), "cannot reopen journal; writes refused until it can be",
            {{"path", options_.path}, {"error", e.what()}});
    return "journal unavailable";
  }
  logged_reopen_error_.clear();
  log::warn("journal", success, {{"path", options_.path}});
  return {};
}

void JournalWriter::closeAfterFailure() {
  // Whether or not the error came from that, files that left the path are
  // saved before the connection goes (it may hold the only copy).
  if (const std::string changes = journal_->files().changes(); !changes.empty()) {
    detach(changes);
    return;
  }
  journal_.reset();
}

}  // namespace mews::journal
