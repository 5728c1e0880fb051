// The journal's single writer: one thread owns the one writable connection
// and applies every write of the serving process, in group commits.
//
//   submitters (HTTP threads, later the delivery workers)
//        | submit(job) -> future
//        v
//   [queue] --writer thread--> BEGIN IMMEDIATE; job; job; ...; COMMIT --> fulfil futures
//
// Invariants:
// - A future reports `committed` only after the COMMIT that contains its job
//   returned SQLITE_OK. With synchronous=FULL that commit's WAL frames are on
//   disk. This is what lets the ingest handler answer 202.
// - A job that fails is rolled back to its own savepoint and reports its error;
//   the others in the group still commit. If SQLite rolled back the whole
//   transaction (disk full, I/O error), or COMMIT itself fails, every job in the
//   group reports the failure: nothing in it is acknowledged.
// - A failed COMMIT is never retried on the same connection (after a failed
//   fsync Linux may have dropped the dirty pages): the connection is closed and
//   the journal reopened before the next group. If it cannot be reopened, every
//   job fails until it can.
// - Free disk below `min_free_bytes` fails a group before it writes anything.
// - stop() refuses new jobs, then drains and commits what was queued.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "journal/journal.h"
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
};

class JournalWriter {
 public:
  using Job = std::function<std::int64_t(Journal&)>;

  // Opens the journal (migrating it) on the calling thread so a bad journal
  // fails start-up, then starts the writer thread. Throws SqliteError.
  explicit JournalWriter(WriterOptions options);
  ~JournalWriter();
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  std::future<WriteOutcome> submit(Job job);
  void stop();

  [[nodiscard]] WriterStats stats() const;
  [[nodiscard]] const WriterMetrics& metrics() const { return metrics_; }
  [[nodiscard]] std::string journalId() const;

 private:
  struct Pending {
    Job job;
    std::promise<WriteOutcome> promise;
  };

  void run();
  void commitGroup(std::deque<Pending>& group);
  void failGroup(std::deque<Pending>& group, WriteOutcome::Status status, const std::string& error);
  [[nodiscard]] std::string diskBelowWatermark() const;

  WriterOptions options_;
  std::unique_ptr<Journal> journal_;
  std::string journal_id_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  WriterStats stats_;
  WriterMetrics metrics_;
  std::thread thread_;
};

}  // namespace mews::journal
