// The operator's moves: dead letters replayed or sent to another target,
// received batches sent again, a removed target's work moved or purged, dead
// letters purged. Each is one guarded statement per row (`AND state = 'dead'`,
// or the removed target's waiting and dead work), so a move racing the
// delivery workers changes only rows still in the state it names (queue.h
// draws every state and move). Run inside a writer transaction: the serving
// process's writer, or the CLI's own connection when no relay runs (lock.h).
// With dry_run each says how many it would move and changes nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "journal/journal.h"
#include "journal/reports.h"

namespace mews::journal {

// Dead letters replayed per writer job by the CLI and the console alike: a
// replay of thousands neither holds the writer long nor stays silent.
inline constexpr std::size_t kReplayStep = 500;

// Dead letters back to the queue with a fresh attempt budget and max_age
// window, same webhook-id. Rows no longer dead (already replayed) are skipped.
// Returns how many were (or, with dry_run, would be) requeued.
std::int64_t replayDeadLetters(Journal& journal, const std::vector<std::int64_t>& ids, std::int64_t now_ms,
                               bool dry_run);

// Re-sends batches received in [since, until) to `target` again, delivered
// ones included (a target that lost its data). Work in flight is left alone.
std::int64_t replayReceived(Journal& journal, const std::string& target, std::int64_t since_ms,
                            std::optional<std::int64_t> until_ms, std::int64_t now_ms, bool dry_run);

// Dead letters back to the queue for target `to` instead of their own, with a
// fresh attempt budget and the same webhook-id; the letter follows (its target
// becomes `to`). Rows no longer dead are skipped. Returns how many.
std::int64_t retargetDeadLetters(Journal& journal, const std::vector<std::int64_t>& ids, const std::string& to,
                                 std::int64_t now_ms, bool dry_run);
// Every waiting or dead delivery of `from` moves to `to`, due now with a fresh
// budget, same webhook-id. Work in flight is left alone.
std::int64_t retargetWork(Journal& journal, const std::string& from, const std::string& to, std::int64_t now_ms,
                          bool dry_run);
// Deletes every waiting or dead delivery of `from` (and its dead letters).
// Work in flight is left alone.
std::int64_t purgeTargetWork(Journal& journal, const std::string& from, bool dry_run);

// Deletes the matching dead letters that died at or before `as_of_ms`, and
// their dead deliveries, so retention can prune the batches (a letter already
// replayed keeps its delivery, which is live work). Returns how many letters.
std::int64_t purgeDeadMatching(Journal& journal, const DeadLetterQuery& query, std::int64_t as_of_ms, bool dry_run);

}  // namespace mews::journal
