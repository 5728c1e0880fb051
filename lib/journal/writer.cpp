#include "journal/writer.h"

#include <pthread.h>

#include <fmt/format.h>
#include <algorithm>

#include "common/log.h"

namespace mews::journal {

JournalWriter::JournalWriter(WriterOptions options)
    : options_(std::move(options)),
      target_(options_.url.empty() ? sqliteWriteTarget(options_, metrics_) : postgresWriteTarget(options_, metrics_)),
      journal_id_(target_->journalId()),
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
        target_->prepare(true);  // nothing to write: check (and recover) all the same
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

namespace {

// An error after which the transaction cannot go on (the backend rolled it
// back: SQLite's SQLITE_FULL and I/O errors can, a lost connection does), or
// the connection is suspect: the whole group fails, and the error says why.
bool endsTheGroup(const Connection& db, const std::exception& error) {
  if (!db.inTransaction()) return true;
  const auto* storage = dynamic_cast<const StorageError*>(&error);
  return storage != nullptr && storage->needsReopen();
}

}  // namespace

bool JournalWriter::applyAll(Journal& journal, std::deque<Pending>& group, std::vector<WriteOutcome>& outcomes) {
  for (std::size_t i = 0; i < group.size(); ++i) {
    try {
      outcomes[i] = {WriteOutcome::Status::Committed, group[i].job(journal), {}};
    } catch (const std::exception& e) {
      if (endsTheGroup(journal.db(), e)) throw;
      return false;
    }
  }
  return true;
}

void JournalWriter::applyEach(Journal& journal, std::deque<Pending>& group, std::vector<WriteOutcome>& outcomes) {
  Savepoints& savepoint = journal.savepoints();
  for (std::size_t i = 0; i < group.size(); ++i) {
    savepoint.begin.run();
    try {
      outcomes[i] = {WriteOutcome::Status::Committed, group[i].job(journal), {}};
      savepoint.release.run();
    } catch (const std::exception& e) {
      if (endsTheGroup(journal.db(), e)) throw;
      savepoint.rollback.run();
      savepoint.release.run();
      const auto* storage = dynamic_cast<const StorageError*>(&e);
      if (storage != nullptr && storage->isStorageFailure())
        outcomes[i] = {WriteOutcome::Status::StorageFailure, 0, storage->reason()};
      else
        outcomes[i] = {WriteOutcome::Status::Rejected, 0, storage ? storage->reason() : "journal refused the write"};
      log::error("journal", "write failed", {{"error", e.what()}});
    }
  }
}

void JournalWriter::commitGroup(std::deque<Pending>& group) {
  if (const std::string low = target_->refuseWrites(); !low.empty()) {
    failGroup(group, WriteOutcome::Status::StorageFailure, low);
    return;
  }
  if (const std::string refused = target_->prepare(false); !refused.empty()) {
    failGroup(group, WriteOutcome::Status::StorageFailure, refused);
    return;
  }

  Journal& journal = target_->journal();
  Connection& db = journal.db();
  std::vector<WriteOutcome> outcomes(group.size());
  const auto started = std::chrono::steady_clock::now();
  auto applied = started;
  auto committed_at = started;
  std::string refused;  // why the target refused the COMMIT, if it did
  try {
    // The target may refuse the commit (SQLite: the files left the path while
    // the jobs ran): the transaction then rolls back as it goes out of scope.
    const auto commit = [&](Transaction& transaction) {
      applied = std::chrono::steady_clock::now();
      refused = target_->beforeCommit();
      if (refused.empty()) transaction.commit();
    };
    bool clean = false;
    {
      Transaction transaction(db);
      clean = applyAll(journal, group, outcomes);
      if (clean) commit(transaction);
    }
    if (!clean) {
      // A job failed: nothing of that pass stays. Again, each job in a
      // savepoint of its own, so that only the failing one fails.
      Transaction transaction(db);
      applyEach(journal, group, outcomes);
      commit(transaction);
    }
    committed_at = std::chrono::steady_clock::now();
  } catch (const StorageError& e) {
    log::error("journal", "commit failed; nothing in this group is acknowledged",
               {{"jobs", std::to_string(group.size())}, {"error", e.what()}});
    if (e.needsReopen())
      target_->closeAfterFailure();
    else
      target_->afterRollback();
    failGroup(group, WriteOutcome::Status::StorageFailure, e.reason());
    return;
  } catch (const std::exception& e) {
    // Anything else (out of memory): the transaction was rolled back by its
    // destructor; the group fails, the writer thread lives on.
    log::error("journal", "group failed; nothing in it is acknowledged", {{"error", e.what()}});
    target_->afterRollback();
    failGroup(group, WriteOutcome::Status::StorageFailure, "journal cannot take the write");
    return;
  }

  // Refused before COMMIT, or durable but perhaps not where the next start
  // looks (SQLite: files that left the path during the COMMIT): not
  // acknowledged.
  if (const std::string problem = target_->afterCommit(refused); !problem.empty()) {
    failGroup(group, WriteOutcome::Status::StorageFailure, problem);
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

}  // namespace mews::journal
