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
//   a later post --> mayRepeat(): digest noted? (a hash lookup, no I/O) --> in
//        the post's own writer job, before it would insert:
//        journal::consumeLateCommit(): a late-committed batch with these exact
//        bytes and this IntegrationId, received within the window? Its row is
//        deleted and its id answered (202, "resend":true); else the post is
//        stored as a new batch. Either way one COMMIT precedes the 202.
//
// Invariants:
// - A post is answered without being stored only when a committed batch with
//   the same bytes and IntegrationId is in the journal, and only by a commit
//   that consumed that batch's late_commits row.
// - Each late commit answers at most one post. A General webhook carries no
//   timestamp and no message id, so two real changes to one reservation can be
//   byte-identical: after the one post that consumed the row, the same bytes
//   are a new batch again. Every 503 whose batch committed anyway earns one
//   post that is not stored, and Mews resends such a message until it sees a
//   202: so the batches stored for a body are never fewer than the distinct
//   notifications Mews sent with it. The cost is the other way round: a real
//   change that arrives before Mews's resend consumes the row, and the resend
//   is then stored and delivered a second time (at least once, never lost).
// - A consuming post answered 503 itself (its commit late again) records the
//   original batch as committed late once more: Mews will resend it again.
// - Identical bodies that were acknowledged normally are never matched.
//
// The notes are rebuilt from the journal at start, so a restart within the
// window still recognises a resend; on a PostgreSQL journal they are also read
// every kShareEvery, so that a relay recognises a resend of a batch another
// relay committed late (the row is consumed once, whichever relay consumes
// it). [server] resend_window = 0s turns it off.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

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

  // A post whose bytes a late commit noted here may repeat (a hash lookup, no
  // I/O): its writer job must try journal::consumeLateCommit with these
  // before it inserts. std::nullopt, the usual case: store it.
  struct Repeat {
    std::string body_sha256;
    std::int64_t since_ms = 0;  // received at or after: the window
  };
  std::optional<Repeat> mayRepeat(std::string_view body, std::int64_t now_ms) const;

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
  static constexpr std::chrono::milliseconds kShareEvery{1'000};

 private:
  void shareLoop();

  journal::JournalLocation journal_;
  Millis window_;
  std::shared_ptr<Notes> notes_;
  std::mutex stop_mutex_;
  std::condition_variable stop_wake_;
  bool stopping_ = false;
  std::thread sharer_;  // PostgreSQL only: other relays' late commits
};

}  // namespace mews::ingest
