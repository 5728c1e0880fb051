// The SQLite side of the journal writer (writer.h): the file, its lock, and
// what to do when they change under the relay.
#include <fmt/format.h>

#include "common/log.h"
#include "journal/files.h"
#include "journal/writer.h"

namespace mews::journal {

namespace {

// Reasons a group fails, as a client and /readyz see them: no paths.
constexpr const char* kFilesChanged = "journal file was removed or replaced under the relay";
constexpr const char* kCannotSave = "journal file was removed or replaced; the relay cannot save its copy yet";
constexpr const char* kRefused = "another file is at the journal's path; writes refused until an operator acts";
constexpr const char* kLockLost = "journal lock is held by another process or cannot be taken";

std::int64_t wallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The SQLite journal file at options.path: checks its files and lock before
// each group, saves and restores a journal removed under the relay, reopens
// after a suspect error (writer.h, files.h, lock.h).
class SqliteWriteTarget : public WriteTarget {
 public:
  SqliteWriteTarget(const WriterOptions& options, WriterMetrics& metrics)
      : options_(options), metrics_(metrics), journal_(std::make_unique<Journal>(options_.path, options_.journal)) {}

  std::string prepare(bool idle) override;
  [[nodiscard]] std::string refuseWrites() const override;
  Journal& journal() override { return *journal_; }
  std::string beforeCommit() override { return journal_->files().changes(); }
  std::string afterCommit(const std::string& refused) override {
    const std::string changes = refused.empty() ? journal_->files().changes() : refused;
    return changes.empty() ? changes : detach(changes);
  }
  void closeAfterFailure() override;
  [[nodiscard]] std::string journalId() const override { return journal_ ? journal_->journalId() : ""; }

 private:
  std::string checkLock();
  std::string detach(const std::string& changes);
  std::string restoreSavedCopy();
  std::string reopen(std::string_view success);

  const WriterOptions& options_;
  WriterMetrics& metrics_;
  std::unique_ptr<Journal> journal_;
  // A copy of the journal waiting to be put back at the path, and the last
  // failure logged per kind (a lasting one is logged once).
  std::string saved_copy_;
  std::string logged_save_error_;
  std::string logged_restore_block_;
  std::string logged_reopen_error_;
  std::string logged_lock_loss_;
};

}  // namespace

std::string SqliteWriteTarget::refuseWrites() const {
  if (options_.min_free_bytes == 0) return {};
  const auto free_bytes = freeDiskBytes(options_.path);
  if (!free_bytes || *free_bytes >= options_.min_free_bytes) return {};  // cannot tell: let SQLite report
  return fmt::format("free disk below min_free ({} bytes left)", *free_bytes);
}

std::string SqliteWriteTarget::prepare(bool idle) {
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

std::string SqliteWriteTarget::checkLock() {
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
      log::errorOnce(logged_lock_loss_, check.detail, "journal",
                     "journal lock lost; writes refused until it is held again (is a second relay running?)",
                     {{"detail", check.detail}});
      break;
  }
  return kLockLost;
}

std::string SqliteWriteTarget::detach(const std::string& changes) {
  if (logged_save_error_.empty()) {
    metrics_.file_faults.add();
    log::error("journal", "journal files are no longer those at the journal's path; saving what the relay holds",
               {{"path", options_.path}, {"change", changes}});
  }
  try {
    saved_copy_ = saveCopy(journal_->sqlite(), options_.path, wallMillis());
  } catch (const std::exception& e) {
    // The open connection is now the only copy: keep it, and try again at the
    // next group (after space was freed, say).
    // Logged once until a save succeeds (each attempt names a new file).
    log::errorOnce(
        logged_save_error_, "failing", "journal",
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
  journal_->sqlite().keepFilesOnClose();
  journal_.reset();
  restoreSavedCopy();
  return kFilesChanged;
}

std::string SqliteWriteTarget::restoreSavedCopy() {
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
    log::errorOnce(logged_restore_block_, e.what(), "journal", "cannot put the saved journal back at its path",
                   {{"path", options_.path}, {"saved", saved_copy_}, {"error", e.what()}});
    return kRefused;
  }
  const std::string blocking = present.empty() ? options_.path : present;
  log::errorOnce(
      logged_restore_block_, blocking, "journal",
      "another file is at the journal's path; writes refused until an operator acts: move it away to go on with "
      "the saved journal, or stop the relay to serve that file instead",
      {{"path", options_.path}, {"file", blocking}, {"saved", saved_copy_}});
  return kRefused;
}

std::string SqliteWriteTarget::reopen(std::string_view success) {
  try {
    JournalOptions options = options_.journal;
    options.create = false;
    journal_ = std::make_unique<Journal>(options_.path, options);
  } catch (const SqliteError& e) {
    log::errorOnce(logged_reopen_error_, e.what(), "journal", "cannot reopen journal; writes refused until it can be",
                   {{"path", options_.path}, {"error", e.what()}});
    return e.reason();
  } catch (const std::exception& e) {
    log::errorOnce(logged_reopen_error_, e.what(), "journal", "cannot reopen journal; writes refused until it can be",
                   {{"path", options_.path}, {"error", e.what()}});
    return "journal unavailable";
  }
  logged_reopen_error_.clear();
  log::warn("journal", success, {{"path", options_.path}});
  return {};
}

void SqliteWriteTarget::closeAfterFailure() {
  // Whether or not the error came from that, files that left the path are
  // saved before the connection goes (it may hold the only copy).
  if (const std::string changes = journal_->files().changes(); !changes.empty()) {
    detach(changes);
    return;
  }
  journal_.reset();
}

std::unique_ptr<WriteTarget> sqliteWriteTarget(const WriterOptions& options, WriterMetrics& metrics) {
  return std::make_unique<SqliteWriteTarget>(options, metrics);
}

}  // namespace mews::journal
