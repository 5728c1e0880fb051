// The journal's single writer: one thread owns the one writable connection
// and applies every write of the serving process, in group commits. The same
// for both backends; what differs (checking files and a lock, or reconnecting
// to a server) is the WriteTarget's.
//
//   submitters (HTTP threads, the delivery dispatcher and workers, the admin listener)
//        | submit(job) -> future
//        v
//   [queue] --writer thread--> target.prepare; BEGIN; job; job; ...;
//                              target.beforeCommit; COMMIT; target.afterCommit --> fulfil futures
//
// Invariants (both backends):
// - A future reports `committed` only after the COMMIT that contains its job
//   returned OK and the target found the commit where the next start will look.
//   This is what lets the ingest handler answer 202.
// - A job that fails is rolled back alone and reports its error; the others in
//   the group still commit. The group is first applied without a savepoint
//   per job (on PostgreSQL each is a round trip); when a job fails, that pass
//   is rolled back and the group applied again, each job in a savepoint. So a
//   job may run twice before it commits: it writes only through the journal,
//   and what it hands back it sets (never appends), so that the second run
//   leaves the same. An error that makes the connection
//   suspect, or a failed COMMIT, fails every job in the group: nothing in it is
//   acknowledged, and the connection is never used again.
// - stop() refuses new jobs, then drains and commits what was queued.
// - A job submitted with a completion instead of a future: the completion runs
//   on the writer thread, with the same outcome a future would get, after the
//   commit (or the failure) and before the next group starts. It must be short
//   and must not wait for the writer (it would wait for itself).
//
// PostgreSQL (postgres.h): the COMMIT returned with synchronous_commit at
// least `on` on a server with fsync on (checked at every connect). A lost
// connection fails the group (503) and is re-made with backoff, before the next
// group and every `idle_check`; until it is, every group fails with the reason.
// Several relays may serve one database; which one dispatches a target is
// journal/leases.h's (the writer's claims and records are fenced there).
//
// SQLite:
// - With synchronous=FULL the commit's WAL frames are on disk; the target
//   also checks the files that COMMIT went to were still the ones at the
//   configured path afterwards.
// - If SQLite rolled back the whole transaction (disk full), the group fails too.
// - After an error that makes the connection suspect the connection is never used again (after a failed
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
// - The same when the database file or its -wal was written in place by
//   another process (`cp backup.db relay.db`, `truncate -s0 relay.db-wal`):
//   the writer records their size, modification time and header after each
//   of its own transactions, checks that the transaction changed only what its
//   own commit can (the -wal grows or restarts with the next salts; the
//   database file changes only in a checkpoint, which the writer runs itself
//   from its WAL hook, at SQLite's default 1,000 pages), and finds them
//   unchanged before the next group and every `idle_check`. A change fails
//   the group (or the next one), is logged with the acknowledged batch ids
//   whose pages were in the written file, and the connection's view is saved,
//   checked (quick_check) and put back as above; a copy that fails its check
//   is kept aside, the writer's -wal moved aside too (so the file at the path
//   opens alone at the next start), and writes are refused until an operator
//   acts. Cost: 2 more stat calls and 2 header reads before the group, the
//   same after it, and a max(id) (about 25 µs per group here).
// - A reopen never creates a journal: one that vanished while closed is
//   reported ("journal file is missing"), not replaced by an empty one.
// - Free disk below `min_free_bytes` fails a group before it writes anything.
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
#include <vector>

#include "journal/journal.h"
#include "journal/lock.h"
#include "journal/sql.h"
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
  // The SQLite file, unless `url` (last, below) names a PostgreSQL database.
  std::string path;
  JournalOptions journal;
  std::uint64_t min_free_bytes = 0;
  std::size_t max_group = 512;  // jobs per transaction at most
  // SQLite: the serving process's lock on the journal, checked before each
  // group (and taken again if its file was removed); null where no lock is
  // held (tests). PostgreSQL: several relays may write (journal/leases.h).
  JournalLock* lock = nullptr;
  // Without jobs, the writer checks its files and lock, and retries a reopen
  // or a restore, this often: so a removed journal is restored (and a lost
  // lock retaken) within about this long even when nothing writes.
  std::chrono::milliseconds idle_check{1'000};
  // A PostgreSQL journal: libpq's connection string (then `path`, `lock` and
  // `min_free_bytes` are not used).
  std::string url{};
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
  // Journal files or its lock found removed, renamed or replaced under the
  // relay (SQLite), or the connection to the server lost (PostgreSQL).
  metrics::Counter file_faults;
};

// The backend's side of a group commit. Writer thread only.
class WriteTarget {
 public:
  virtual ~WriteTarget() = default;
  // "" when the journal is ready for a group, else why not (a reason safe to
  // show a client), having tried to recover and logged what happened. `idle`:
  // no group is waiting, only a check.
  virtual std::string prepare(bool idle) = 0;
  // Before anything is written: "" or why no group can be (free disk low).
  [[nodiscard]] virtual std::string refuseWrites() const = 0;
  // The writable connection; valid after prepare() returned "".
  virtual Journal& journal() = 0;
  // Before COMMIT: "" to commit, else what is wrong (the group rolls back).
  virtual std::string beforeCommit() = 0;
  // After the COMMIT returned, or was refused with `refused`: "" when the
  // commit is where the next start will look, else why the group is not
  // acknowledged (having acted on it).
  virtual std::string afterCommit(const std::string& refused) = 0;
  // After an error that makes the connection suspect: let it go.
  virtual void closeAfterFailure() = 0;
  // After a group that failed and was rolled back on a connection that is
  // kept (disk full, a job's exception): what that transaction left.
  virtual void afterRollback() {}
  [[nodiscard]] virtual std::string journalId() const = 0;
};

// Open the journal on the calling thread (so a bad journal fails start-up) and
// migrate it. Throw StorageError or std::runtime_error with the reason.
std::unique_ptr<WriteTarget> sqliteWriteTarget(const WriterOptions& options, WriterMetrics& metrics);
std::unique_ptr<WriteTarget> postgresWriteTarget(const WriterOptions& options, WriterMetrics& metrics);

class JournalWriter {
 public:
  using Job = std::function<std::int64_t(Journal&)>;
  using Completion = std::function<void(const WriteOutcome&)>;

  // Opens the journal (migrating it) on the calling thread so a bad journal
  // fails start-up, then starts the writer thread. Throws StorageError or
  // std::runtime_error.
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
  // The group's jobs one after the other: false when one failed (the pass is
  // then rolled back whole). Throws what ends the group.
  bool applyAll(Journal& journal, std::deque<Pending>& group, std::vector<WriteOutcome>& outcomes);
  // Each job in a savepoint: a failing one is rolled back alone.
  void applyEach(Journal& journal, std::deque<Pending>& group, std::vector<WriteOutcome>& outcomes);
  void failGroup(std::deque<Pending>& group, WriteOutcome::Status status, const std::string& error);

  WriterOptions options_;
  WriterMetrics metrics_;
  std::unique_ptr<WriteTarget> target_;
  std::string journal_id_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  WriterStats stats_;
  std::thread thread_;
};

}  // namespace mews::journal
