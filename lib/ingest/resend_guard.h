// Recognising Mews's resends of a batch the relay committed after answering 503.
//
// Mews resends a message it did not see acknowledged, byte for byte, a few
// minutes later. When a commit outlasts kCommitWait the relay answers 503, yet
// the batch is journaled and will be delivered; the resend must not become a
// second batch with a second webhook-id. The relay knows exactly which batches
// those are, and remembers only them:
//
//   handler gives up waiting (503) --> lateCommitJob(): a writer job queued
//        behind the batch's own; if the batch committed, it writes a
//        late_commits row (journal/resends.h) and notes the body's digest here
//   a later post --> originalOf(): digest noted? (a hash lookup, no I/O) --> the
//        journal, read-only: a late-committed batch with these exact bytes and
//        this IntegrationId, received within the window? --> its id: answer 202
//        with it, store nothing
//
// Invariant: a post is answered without being stored only when a committed
// batch with the same bytes and IntegrationId is in the journal (read through a
// read-only connection, which sees committed data only). The digest noted by
// the job before its commit is a hint; a hint whose commit failed finds nothing.
// Identical bodies that were acknowledged normally are never matched: Mews
// events carry ids only, and the same entity may change twice.
//
// The notes are rebuilt from the journal at start, so a restart within the
// window still recognises a resend. [server] resend_window = 0s turns it off.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/units.h"
#include "journal/writer.h"

namespace mews::ingest {

class ResendGuard {
 public:
  // Reads the late commits still inside the window (ending at `now_ms`) from
  // the journal at `journal_path`, which the writer has created. Throws StorageError.
  ResendGuard(journal::JournalLocation journal, Millis window, std::int64_t now_ms);
  ~ResendGuard();
  ResendGuard(const ResendGuard&) = delete;
  ResendGuard& operator=(const ResendGuard&) = delete;

  [[nodiscard]] bool enabled() const;

  // The batch a post with these bytes and IntegrationId repeats, when that
  // batch was committed after a 503 and received within the window.
  std::optional<std::int64_t> originalOf(const std::optional<std::string>& integration_id, std::string_view body,
                                         std::int64_t now_ms) const;

  // For the handler that answered 503 while `insert` had not returned: the
  // writer job that records the batch as committed late, if it commits.
  // Submitted after the insert job, so it runs after it: in a later group (then
  // `insert` is ready) or in the same one (then `inserted_id` holds the id the
  // insert job got, 0 when it failed; a failed group rolls both back).
  journal::JournalWriter::Job lateCommitJob(std::shared_future<journal::WriteOutcome> insert,
                                            std::shared_ptr<const std::atomic<std::int64_t>> inserted_id,
                                            std::string_view body, std::int64_t received_ms,
                                            std::int64_t answered_ms) const;

  struct Notes;

 private:
  journal::JournalLocation journal_;
  Millis window_;
  std::shared_ptr<Notes> notes_;
};

}  // namespace mews::ingest
