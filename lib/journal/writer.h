// The journal's single writer: one thread owns the one writable connection
// and applies every write of the serving process, in group commits.
//
//   submitters (HTTP threads, the delivery dispatcher and workers, the admin listener)
//        | submit(job) -> future
//        v
//   [queue] --writer thread--> check lock; BEGIN IMMEDIATE; job; job; ...;
//                              check files; COMMIT; check files --> fulfil futures
//
// Invariants:
// - A future reports `committed` only after the COMMIT that contains its job
//   returned SQLITE_OK *and* the files that COMMIT went to were still the ones
//   at the configured path afterwards. With synchronous=FULL that commit's WAL
//   frames are on disk, where the next start will find them. This is what lets
//   the ingest handler answer 202.
// - A job that fails is rolled back to its own savepoint and reports its error;
//   the others in the group still commit. If SQLite rolled back the whole
//   transaction (disk full), a job or COMMIT fails with an error that makes the
//   connection suspect (I/O error, read-only, corrupt, cannot open), or COMMIT
//   itself fails, every job in the group reports the failure: nothing in it is
//   acknowledged.
// - After such an error the connection is never used again (after a failed
//   fsync Linux may have dropped the dirty pages; a read-only file stays
//   read-only for the connection that met it): it is closed and the journal
//   reopened before the next group. Until it can be (file still read-only,
//   missing), every group fails with the reason; the writer retries at each
//   group and every `idle_check` without one, so it recovers by itself.
// - Before each COMMIT and after it (and every `idle_check` without a group),
//   the writer compares the files it holds (journal, -wal, -shm: device and
//   inode) with those at the path, and before each group it checks it still
//   holds the lock (journal/lock.h): 7 stat calls per group. A connection whose files were removed, renamed or
//   replaced keeps writing where no restart looks. So when they differ:
//   * the group fails with the reason (503): rolled back when found before
//     COMMIT; when found only after it, the commit is in the saved copy but
//     still not acknowledged;
//   * everything the connection holds is copied beside the path
//     (`<path>.saved-<time>`, fsynced) before the connection is let go, and its
//     own stale files still at the path are removed;
//   * when nothing is at the path, the copy is moved there and writes go on;
//   * when another file is there, it is never written over: every group fails
//     ("writes refused until an operator acts") until the path is free again
//     (the copy then goes back and writes resume) or the relay restarts (it
//     then serves the file at the path; the copy is the operator's);
//   * when the copy cannot be made (no space), the connection, then the only
//     copy, is kept, and the writer tries again at each group.
// - A reopen never creates a journal: one that vanished while closed is
//   reported ("journal file is missing"), not replaced by an empty one.
// - Free disk below `min_free_bytes` fails a group before it writes anything.
// - stop() refuses new jobs, then drains and commits what was queued.
// - A job submitted with a completion instead of a future: the completion runs
//   on the writer thread, with the same outcome a future would get, after the
//   commit (or the failure) and before the next group starts. It must be short
//   and must not wait for the writer (it would wait for itself).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <variant>

#include "journal/journal.h"
#include "journal/lock.h"
#include "metrics/metrics.h"

namespace mews::journal {

struct WriteOutcome {
  enum class Status { Committed, StorageFailure, Rejected };
  Status status = Status::Rejected;
  std::int64_t value = 0;  // what the job returned, e.g. a batch id
  std::string error;       // why, when not committed; safe to show a client

  [[nodiscard]] bool committed() const { return status == Status::Committed; }
};

struct WriterOptions {
  std::string path;
  JournalOptions journal;
  std::uint64_t min_free_bytes = 0;
  std::size_t max_group = 512;  // jobs per transaction at most
  // The serving process's lock on the journal, checked before each group (and
  // taken again if its file was removed); null where no lock is held (tests).
  JournalLock* lock = nullptr;
  // Without jobs, the writer checks its files and lock, and retries a reopen
  // or a restore, this often: so a removed journal is restored (and a lost
  // lock retaken) within about this long even when nothing writes.
  std::chrono::milliseconds idle_check{1'000};
};

struct WriterStats {
  std::uint64_t commits = 0;
  std::uint64_t jobs_committed = 0;
  std::uint64_t jobs_failed = 0;
  std::uint64_t apply_micros = 0;   // time spent running jobs inside transactions
  std::uint64_t commit_micros = 0;  // time spent in COMMIT (the WAL fsync)
};

// Exposed on /metrics: how long COMMIT (the fsync) takes and how many jobs
// share one commit.
struct WriterMetrics {
  metrics::Histogram commit_seconds{metrics::latencyBounds()};
  metrics::Histogram group_size{{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}};
  metrics::Counter failed_groups;
  // Journal files or its lock found removed, renamed or replaced under the relay.
  metrics::Counter file_faults;
};

class JournalWriter {
 public:
  using Job = std::function<std::int64_t(Journal&)>;
  using Completion = std::function<void(const WriteOutcome&)>;

  // Opens the journal (migrating it) on the calling thread so a bad journal
  // fails start-up, then starts the writer thread. Throws SqliteError.
  explicit JournalWriter(WriterOptions options);
  ~JournalWriter();
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  std::future<WriteOutcome> submit(Job job);
  // The same job, but nobody waits: `done` is called with the outcome (see
  // the header). A job refused at stop gets its failure at once, on this thread.
  void submit(Job job, Completion done);
  void stop();

  [[nodiscard]] WriterStats stats() const;
  // Jobs waiting for the writer thread (not those of the group it is applying).
  [[nodiscard]] std::size_t queued() const;
  [[nodiscard]] const WriterMetrics& metrics() const { return metrics_; }
  [[nodiscard]] std::string journalId() const;

 private:
  struct Pending {
    Job job;
    std::variant<std::promise<WriteOutcome>, Completion> reply;
    void finish(WriteOutcome outcome);
  };
  void enqueue(Pending pending);

  void run();
  void commitGroup(std::deque<Pending>& group);
  void failGroup(std::deque<Pending>& group, WriteOutcome::Status status, const std::string& error);
  [[nodiscard]] std::string diskBelowWatermark() const;

  // Each returns "" when the journal is ready for a group, else why not (a
  // reason safe to show a client), having tried to recover and logged what
  // happened. Writer thread only.
  std::string prepare(bool idle);
  std::string checkLock();
  std::string detach(const std::string& changes);
  std::string restoreSavedCopy();
  std::string reopen(std::string_view success);
  // After an error that makes the connection suspect.
  void closeAfterFailure();

  WriterOptions options_;
  std::unique_ptr<Journal> journal_;
  std::string journal_id_;
  // Writer thread only: a copy of the journal waiting to be put back at the
  // path, and the last failure logged per kind (a lasting one is logged once).
  std::string saved_copy_;
  std::string logged_save_error_;
  std::string logged_restore_block_;
  std::string logged_reopen_error_;
  std::string logged_lock_loss_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  WriterStats stats_;
  WriterMetrics metrics_;
  std::thread thread_;
};

}  // namespace mews::journal
