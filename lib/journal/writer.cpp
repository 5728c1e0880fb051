#include "journal/writer.h"

#include <pthread.h>

#include <fmt/format.h>
#include <algorithm>

#include "common/log.h"

namespace mews::journal {

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

std::future<WriteOutcome> JournalWriter::submit(Job job) {
  Pending pending{std::move(job), {}};
  auto future = pending.promise.get_future();
  {
    const std::lock_guard lock(mutex_);
    if (stopping_) {
      pending.promise.set_value({WriteOutcome::Status::StorageFailure, 0, "relay is shutting down"});
      return future;
    }
    queue_.push_back(std::move(pending));
  }
  wake_.notify_one();
  return future;
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

void JournalWriter::run() {
  pthread_setname_np(pthread_self(), "journal-writer");
  std::deque<Pending> group;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
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
  for (auto& pending : group) pending.promise.set_value({status, 0, error});
}

void JournalWriter::commitGroup(std::deque<Pending>& group) {
  if (const std::string low = diskBelowWatermark(); !low.empty()) {
    failGroup(group, WriteOutcome::Status::StorageFailure, low);
    return;
  }
  if (!journal_) {
    try {
      journal_ = std::make_unique<Journal>(options_.path, options_.journal);
      log::warn("journal", "journal reopened after a failed commit", {{"path", options_.path}});
    } catch (const std::exception& e) {
      log::error("journal", "cannot reopen journal", {{"path", options_.path}, {"error", e.what()}});
      failGroup(group, WriteOutcome::Status::StorageFailure, "journal unavailable");
      return;
    }
  }

  Database& db = journal_->db();
  Savepoints& savepoint = journal_->savepoints();
  std::vector<WriteOutcome> outcomes(group.size());
  const auto started = std::chrono::steady_clock::now();
  auto applied = started;
  auto committed_at = started;
  try {
    Transaction transaction(db);
    for (std::size_t i = 0; i < group.size(); ++i) {
      savepoint.begin.run();
      try {
        outcomes[i] = {WriteOutcome::Status::Committed, group[i].job(*journal_), {}};
        savepoint.release.run();
      } catch (const SqliteError& e) {
        // SQLite may have rolled back the whole transaction (SQLITE_FULL and
        // I/O errors can): then nothing of this group survives.
        if (!db.inTransaction()) throw;
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
    transaction.commit();
    committed_at = std::chrono::steady_clock::now();
  } catch (const SqliteError& e) {
    log::error("journal", "commit failed; nothing in this group is acknowledged",
               {{"jobs", std::to_string(group.size())}, {"error", e.what()}});
    if (e.primary() == SQLITE_IOERR || e.primary() == SQLITE_CORRUPT) {
      // Never retry a failed fsync on the same file descriptor.
      journal_.reset();
    }
    failGroup(group, WriteOutcome::Status::StorageFailure,
              e.primary() == SQLITE_FULL ? "journal is full" : "journal cannot take the write");
    return;
  } catch (const std::exception& e) {
    // Anything else (out of memory): the transaction was rolled back by its
    // destructor; the group fails, the writer thread lives on.
    log::error("journal", "group failed; nothing in it is acknowledged", {{"error", e.what()}});
    failGroup(group, WriteOutcome::Status::StorageFailure, "journal cannot take the write");
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
  for (std::size_t i = 0; i < group.size(); ++i) group[i].promise.set_value(std::move(outcomes[i]));
}

}  // namespace mews::journal
