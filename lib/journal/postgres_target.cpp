// The PostgreSQL side of the journal writer (writer.h): one connection, its
// durability checks, re-made with backoff when lost.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "common/log.h"
#include "journal/postgres.h"
#include "journal/writer.h"

namespace mews::journal {

namespace {

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5'000};

class PostgresWriteTarget : public WriteTarget {
 public:
  PostgresWriteTarget(const WriterOptions& options, WriterMetrics& metrics)
      : options_(options), metrics_(metrics), display_(conninfoForDisplay(options.url)) {
    // At start-up a database that cannot be reached, is not durable or is
    // served by another relay stops the relay, with the reason.
    journal_ = connect();
    journal_id_ = journal_->journalId();
  }

  std::string prepare(bool idle) override;
  [[nodiscard]] std::string refuseWrites() const override { return {}; }
  Journal& journal() override { return *journal_; }
  std::string beforeCommit() override { return {}; }
  std::string afterCommit(const std::string& refused) override { return refused; }
  void closeAfterFailure() override { dropConnection("connection to the journal database dropped after an error"); }
  [[nodiscard]] std::string journalId() const override { return journal_id_; }

 private:
  std::unique_ptr<Journal> connect();
  // Lets the connection go (counted, logged) and reconnects at once, then with backoff.
  void dropConnection(std::string_view why, const std::string& error = {});

  const WriterOptions& options_;
  WriterMetrics& metrics_;
  std::string display_;
  std::unique_ptr<Journal> journal_;
  std::string journal_id_;
  // While disconnected: when to try again, how long after that, and why the
  // last try failed (what every group fails with until then).
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::milliseconds backoff_ = kFirstBackoff;
  std::string last_failure_;
  std::string logged_failure_;
};

std::unique_ptr<Journal> PostgresWriteTarget::connect() {
  JournalOptions options = options_.journal;
  options.serving = true;  // the lock before any migration (journal.h)
  return std::make_unique<Journal>(JournalLocation{{}, options_.url}, options);
}

void PostgresWriteTarget::dropConnection(std::string_view why, const std::string& error) {
  metrics_.file_faults.add();
  const std::string message = fmt::format("{}; reconnecting", why);
  if (error.empty())
    log::warn("journal", message, {{"database", display_}});
  else
    log::warn("journal", message, {{"database", display_}, {"error", error}});
  journal_.reset();
  backoff_ = kFirstBackoff;
  next_attempt_ = std::chrono::steady_clock::now();
}

std::string PostgresWriteTarget::prepare(bool idle) {
  if (journal_) {
    if (!idle) return {};
    // Idle: find a dead connection now rather than at the next batch.
    try {
      Statement& ping = journal_->db().cached("SELECT 1");
      const ResetOnExit reset(ping);
      ping.step();
      return {};
    } catch (const StorageError& e) {
      dropConnection("connection to the journal database lost", e.what());
    }
  }
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) return last_failure_;
  try {
    journal_ = connect();
  } catch (const std::exception& e) {
    // Unreachable, not durable, served by another relay (a StorageError says
    // which), or a schema newer than this binary.
    const auto* storage = dynamic_cast<const StorageError*>(&e);
    last_failure_ = storage ? storage->reason() : std::string("journal database cannot be used");
    log::errorOnce(logged_failure_, e.what(), "journal", "cannot reconnect to the journal database; retrying",
                   {{"database", display_}, {"error", e.what()}, {"retry_ms", std::to_string(backoff_.count())}});
    next_attempt_ = now + backoff_;
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    return last_failure_;
  }
  if (!logged_failure_.empty() || !last_failure_.empty())
    log::warn("journal", "reconnected to the journal database", {{"database", display_}});
  logged_failure_.clear();
  last_failure_.clear();
  backoff_ = kFirstBackoff;
  return {};
}

}  // namespace

std::unique_ptr<WriteTarget> postgresWriteTarget(const WriterOptions& options, WriterMetrics& metrics) {
  return std::make_unique<PostgresWriteTarget>(options, metrics);
}

}  // namespace mews::journal
