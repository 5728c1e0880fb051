// The SQLite side of the journal writer (writer.h): the file, its lock, and
// what to do when they change under the relay.
#include <fmt/format.h>

#include <filesystem>
#include <optional>
#include <utility>

#include "common/log.h"
#include "journal/files.h"
#include "journal/high_water.h"
#include "journal/writer.h"

namespace mews::journal {

namespace {

// Reasons a group fails, as a client and /readyz see them: no paths.
constexpr const char* kFilesChanged = "journal file was removed or replaced under the relay";
constexpr const char* kCannotSave = "journal file was removed or replaced; the relay cannot save its copy yet";
constexpr const char* kRefused = "another file is at the journal's path; writes refused until an operator acts";
constexpr const char* kLockLost = "journal lock is held by another process or cannot be taken";
constexpr const char* kFilesWritten = "journal file was written by another process under the relay";
constexpr const char* kDamaged =
    "journal file was written by another process and the relay's copy is incomplete; writes refused until an "
    "operator acts";

// SQLite's own automatic checkpoint threshold (pages in the -wal), which the
// writer's WAL hook takes over so that it knows when the database file is
// written by a checkpoint of its own.
constexpr int kAutoCheckpointPages = 1000;

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
      : options_(options), metrics_(metrics), journal_(std::make_unique<Journal>(options_.path, options_.journal)) {
    opened();
  }

  std::string prepare(bool idle) override;
  [[nodiscard]] std::string refuseWrites() const override;
  Journal& journal() override { return *journal_; }
  std::string beforeCommit() override { return journal_->files().changes(); }
  std::string afterCommit(const std::string& refused) override {
    const std::string changes = refused.empty() ? journal_->files().changes() : refused;
    if (!changes.empty()) return detach(changes);
    if (!rewrite_.empty()) return rewritten(rewrite_);  // found by walHook
    return settle();
  }
  void closeAfterFailure() override;
  void afterRollback() override {
    if (journal_) settle();
  }
  [[nodiscard]] std::string journalId() const override { return journal_ ? journal_->journalId() : ""; }

 private:
  std::string checkLock();
  // After the connection opened, and after each of its transactions: the
  // files as the relay left them, and which batches only the -wal holds.
  void opened();
  std::string settle();
  std::int64_t highestBatch();
  // The ids given out, kept beside the journal (high_water.h).
  void adoptHighWater();
  void recordHighWater();
  static int walHook(void* self, sqlite3* db, const char* name, int pages);
  // Written in place by another process: detach() with what to tell.
  std::string rewritten(const std::string& changes);
  std::string detach(const std::string& changes, const std::string& batches = {});
  // After such a write, a copy that cannot be saved whole: refuse writes for good.
  std::string refuseDamaged(const std::string& check, const std::string& batches);
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
  // Files written by another process, until what the connection holds is saved.
  std::string rewrite_;
  // After such a write, no whole copy could be saved: writes refused.
  bool damaged_ = false;
  // A checkpoint ran in the current transaction (walHook).
  bool checkpointed_ = false;
  // The highest batch id at the last settle(), and the first one the -wal may
  // hold (the batches from there on are not in the database file yet).
  std::int64_t last_batch_ = 0;
  std::int64_t wal_first_batch_ = 1;
  // What "<journal>.ids" holds, and the last failure to write it (logged once).
  HighWater high_water_;
  std::string logged_high_water_error_;
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
  if (damaged_) {
    problem = kDamaged;
  } else if (!journal_) {
    problem = saved_copy_.empty() ? reopen("journal reopened after a failed commit") : restoreSavedCopy();
  } else if (!rewrite_.empty()) {
    problem = rewritten(rewrite_);  // found before, its copy not saved yet
  } else {
    // A group checks which files are at the path before its COMMIT (and a
    // change found then rolls it back), so only here when there is no group.
    const std::string changes = idle ? journal_->files().changes() : std::string();
    if (!changes.empty()) {
      problem = detach(changes);
    } else if (const std::string written = journal_->files().rewrites(journal_->sqlite()); !written.empty()) {
      problem = rewritten(written);
    }
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

void SqliteWriteTarget::opened() {
  checkpointed_ = false;
  sqlite3_wal_hook(journal_->sqlite().handle(), &SqliteWriteTarget::walHook, this);
  // Before the files are settled: raising the sequences is a write of our own.
  adoptHighWater();
  last_batch_ = highestBatch();
  journal_->files().settle(journal_->sqlite(), false);
  // A -wal with frames from before (a crash) may hold any batch.
  wal_first_batch_ = journal_->files().takeWalRestart() ? last_batch_ + 1 : 1;
}

std::string SqliteWriteTarget::settle() {
  const std::string written = journal_->files().settle(journal_->sqlite(), std::exchange(checkpointed_, false));
  if (!written.empty()) return rewritten(written);
  const std::int64_t before = last_batch_;
  last_batch_ = highestBatch();
  // Restarted in this transaction: everything up to the last one is in the database file.
  if (journal_->files().takeWalRestart()) wal_first_batch_ = before + 1;
  recordHighWater();
  return {};
}

void SqliteWriteTarget::adoptHighWater() {
  try {
    if (const auto recorded = readHighWater(options_.path); recorded && raiseSequences(*journal_, *recorded))
      log::warn(
          "journal",
          "the journal is older than the one this relay served last (a backup put back?); its ids go on above "
          "those given out before, so no webhook-id or dead-letter id names two things",
          {{"batches_given_out_up_to", std::to_string(recorded->batches)}, {"file", highWaterPath(options_.path)}});
    high_water_ = currentHighWater(*journal_);
  } catch (const std::exception& e) {
    log::warn("journal", "cannot read the journal's ids file; ids go on from the journal alone", {{"error", e.what()}});
  }
}

void SqliteWriteTarget::recordHighWater() {
  try {
    const HighWater now = currentHighWater(*journal_);
    if (now == high_water_) return;
    writeHighWater(options_.path, now);
    high_water_ = now;
    logged_high_water_error_.clear();
  } catch (const std::exception& e) {
    log::errorOnce(logged_high_water_error_, e.what(), "journal",
                   "cannot record the ids given out beside the journal; a backup put back later could give them again",
                   {{"error", e.what()}});
  }
}

std::int64_t SqliteWriteTarget::highestBatch() {
  try {
    Statement& highest = journal_->db().cached("SELECT coalesce(max(id), 0) FROM batches");
    const ResetOnExit reset(highest);
    return highest.step() ? highest.columnInt(0) : last_batch_;
  } catch (const std::exception&) {
    return last_batch_;  // only for the log line's range: the last one known
  }
}

int SqliteWriteTarget::walHook(void* self, sqlite3* db, const char* name, int pages) {
  // What SQLite's default hook does (sqlite3_wal_autocheckpoint), noting that it ran.
  if (pages < kAutoCheckpointPages) return SQLITE_OK;
  auto* target = static_cast<SqliteWriteTarget*>(self);
  // Never checkpoint into a database file another process wrote meanwhile:
  // its pages would be mixed with the relay's, and the change taken for the
  // checkpoint's own. afterCommit() acts on it.
  if (std::string written = target->journal_->files().rewrites(target->journal_->sqlite(), true); !written.empty()) {
    target->rewrite_ = std::move(written);
    return SQLITE_OK;
  }
  target->checkpointed_ = true;
  sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  return SQLITE_OK;
}

std::string SqliteWriteTarget::rewritten(const std::string& changes) {
  rewrite_ = changes;
  // Acknowledged batches whose pages were in the written file: every one when
  // it was the database file, else those committed since the -wal last restarted.
  const bool database =
      changes.find(std::filesystem::path(options_.path).filename().string() + " was ") == 0 ||
      changes.find("; " + std::filesystem::path(options_.path).filename().string() + " was ") != std::string::npos;
  const std::int64_t first = database ? 1 : wal_first_batch_;
  const std::string batches = first > last_batch_ ? "none" : fmt::format("{}..{}", first, last_batch_);
  return detach(changes, batches);
}

std::string SqliteWriteTarget::detach(const std::string& changes, const std::string& batches) {
  const bool in_place = !batches.empty();
  if (logged_save_error_.empty()) {
    metrics_.file_faults.add();
    if (in_place)
      log::error("journal",
                 "journal files were written by another process while the relay held them; saving what the relay "
                 "holds",
                 {{"path", options_.path}, {"change", changes}, {"affected_batches", batches}});
    else
      log::error("journal", "journal files are no longer those at the journal's path; saving what the relay holds",
                 {{"path", options_.path}, {"change", changes}});
  }
  std::optional<std::string> save_error;
  try {
    saved_copy_ = saveCopy(journal_->sqlite(), options_.path, wallMillis());
  } catch (const SqliteError& e) {
    // Pages read back from a file written by another process that SQLite
    // cannot even read (or -wal frames cut off): no retry will save more.
    if (in_place &&
        (e.primary() == SQLITE_CORRUPT || e.primary() == SQLITE_NOTADB || e.code() == SQLITE_IOERR_SHORT_READ))
      return refuseDamaged(e.what(), batches);
    save_error = e.what();
  } catch (const std::exception& e) {
    save_error = e.what();
  }
  if (save_error) {
    // The open connection is now the only copy: keep it, and try again at the
    // next group (after space was freed, say). Logged once until a save
    // succeeds (each attempt names a new file).
    log::errorOnce(
        logged_save_error_, "failing", "journal",
        "cannot save the journal the relay holds; retrying at each write (do not stop the relay: it holds the "
        "only copy)",
        {{"path", options_.path}, {"error", *save_error}});
    return kCannotSave;
  }
  logged_save_error_.clear();
  rewrite_.clear();
  log::warn("journal", "journal saved from the open connection", {{"path", options_.path}, {"copy", saved_copy_}});
  if (in_place) {
    // Pages the connection had to read back from the written file are that
    // file's now, not the relay's: a copy that is not whole must not be served.
    if (const std::string check = checkCopy(saved_copy_); check != "ok") return refuseDamaged(check, batches);
  }
  // Its own files still at the path are stale now (the copy has everything),
  // and a stale -wal would be applied to whatever database is put there.
  journal_->files().removeRecordedFromPath();
  journal_->sqlite().keepFilesOnClose();
  journal_.reset();
  restoreSavedCopy();
  return in_place ? kFilesWritten : kFilesChanged;
}

std::string SqliteWriteTarget::refuseDamaged(const std::string& check, const std::string& batches) {
  damaged_ = true;
  rewrite_.clear();
  // The relay's -wal would be applied to the database file at the path at the
  // next start, mixing two journals: moved aside, that file opens alone (what
  // another process put there, or what the relay had checkpointed).
  std::string wal_aside;
  try {
    wal_aside = journal_->files().moveWalAside(wallMillis());
  } catch (const std::exception& e) {
    wal_aside = fmt::format("not moved: {}", e.what());
  }
  log::error("journal",
             "the journal the relay holds cannot be saved whole: acknowledged batches may be lost; writes refused "
             "until an operator acts (stop the relay, keep every file, restore from a backup)",
             {{"path", options_.path},
              {"copy", saved_copy_.empty() ? "none" : saved_copy_},
              {"wal", wal_aside.empty() ? "none" : wal_aside},
              {"check", check},
              {"affected_batches", batches}});
  saved_copy_.clear();  // the operator's now: never put back at the path
  journal_->sqlite().keepFilesOnClose();
  journal_.reset();
  return kDamaged;
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
  opened();
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
  // A truncated -wal shows as an I/O error (a short read) first; closing
  // would checkpoint what is left of it.
  const std::string written =
      rewrite_.empty() ? journal_->files().settle(journal_->sqlite(), std::exchange(checkpointed_, false)) : rewrite_;
  if (!written.empty()) {
    rewritten(written);
    return;
  }
  journal_.reset();
}

std::unique_ptr<WriteTarget> sqliteWriteTarget(const WriterOptions& options, WriterMetrics& metrics) {
  return std::make_unique<SqliteWriteTarget>(options, metrics);
}

}  // namespace mews::journal
