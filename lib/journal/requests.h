// The operator's verbs as requests: one type per verb (ReplayRequest,
// PurgeRequest), one encoder and one decoder, and one way to carry each out
// on a journal. The CLI encodes a request into the query string it POSTs to a
// running relay's admin listener (or applies it itself when no relay runs);
// the admin listener decodes and applies it; the console's confirmation forms
// carry the same encoding as hidden fields, and its handlers decode them with
// the same decoder. So a filter, an id list or a dry run is spelled once:
//
//   replay  id=17&id=18[&to=T]                     these dead letters (all or nothing)
//           dead=1[&target=T][&reason=R][&since_ms=A][&until_ms=B][&to=T]
//                                                  the dead letters matching
//           dead=1&id=17&id=18[&...]               a step of that: those of them still dead
//           received_since_ms=A[&until_ms=B]&target=T
//                                                  batches received in [A, B) sent to T again
//           from=S&to=T                            a removed target's work moved to T
//   purge   [target=T][&reason=R][&since_ms=A][&until_ms=B]
//                                                  the dead letters matching that died before B
//                                                  (without B: up to the moment it is carried out)
//           from=S                                 a removed target's waiting and dead work
//   either  &dry_run=1                             count, change nothing
//
// Times are milliseconds since the epoch, absolute: the sender resolves "2h"
// or an ISO date against its own clock, so that what a confirmation page
// counted is what its button changes (the console's forms always name the
// upper bound, so nothing that dies after the operator looked is purged).
//
// Decoding refuses, naming the key: an unknown or repeated key, a number that
// is not one, a reason that is not rejected, max_attempts or max_age, no kind
// or two kinds, a key that does not go with the kind. A request read in part
// would change more than was asked for.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "common/form.h"
#include "journal/journal.h"
#include "journal/moves.h"
#include "journal/reports.h"

namespace mews::journal {

// The reasons a delivery dies with (dead_letters.reason).
inline constexpr std::string_view kDeathReasons[] = {"rejected", "max_attempts", "max_age"};

// A request that cannot be read; what() names the key and says why.
class RequestError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct ReplayRequest {
  struct DeadLetterIds {
    std::vector<std::int64_t> ids;
  };
  struct DeadLettersMatching {
    DeadLetterQuery query;
    // Not empty: a step of a larger replay (replaySteps), the ids the query
    // read; those gone or no longer dead since are skipped, not refused.
    std::vector<std::int64_t> among;
  };
  struct Received {
    std::string target;
    std::int64_t since_ms = 0;
    std::optional<std::int64_t> until_ms;
  };
  struct RemovedTargetWork {
    std::string from;
  };
  std::variant<DeadLetterIds, DeadLettersMatching, Received, RemovedTargetWork> what;
  std::optional<std::string> to;  // dead letters: to this target instead of their own; a removed target's: required
  bool dry_run = false;
};

struct PurgeRequest {
  struct DeadLetters {
    DeadLetterQuery query;
  };
  struct RemovedTargetWork {
    std::string from;
  };
  std::variant<DeadLetters, RemovedTargetWork> what;
  bool dry_run = false;
};

inline constexpr std::string_view kReplayPath = "/admin/replay";
inline constexpr std::string_view kPurgePath = "/admin/purge";

form::Pairs encode(const ReplayRequest& request);
form::Pairs encode(const PurgeRequest& request);
// Throws RequestError.
ReplayRequest decodeReplay(const form::Pairs& pairs);
PurgeRequest decodePurge(const form::Pairs& pairs);

// The targets a request names against a configuration: `to` and a received
// window's target must be configured; a removed target (`from`) must not be
// (while configured, its work is its own). The refusal, naming the target and
// `where` ("in /etc/mews-relay.ini", "in the running configuration"), or
// nullopt.
std::optional<std::string> refusalByTargets(const ReplayRequest& request, const std::vector<std::string>& configured,
                                            const std::string& where);
std::optional<std::string> refusalByTargets(const PurgeRequest& request, const std::vector<std::string>& configured,
                                            const std::string& where);

// A replay in steps of at most kReplayStep dead letters, so that a replay of
// thousands neither holds the writer long nor stays silent: named ids are cut
// in steps, the matching dead letters are read (on `reader`) into steps of
// `among`. Other kinds are one step.
std::vector<ReplayRequest> replaySteps(Journal& reader, const ReplayRequest& request);

struct ReplayOutcome {
  std::int64_t count = 0;             // moved (or, with dry_run, that would be)
  std::vector<std::int64_t> unknown;  // named dead letters that do not exist: nothing was changed
};
// Inside a writer transaction (moves.h). Dead letter ids are all or nothing:
// one unknown id and nothing changes.
ReplayOutcome apply(Journal& journal, const ReplayRequest& request, std::int64_t now_ms);
// Returns how many dead letters (or deliveries of a removed target) went.
std::int64_t apply(Journal& journal, const PurgeRequest& request, std::int64_t now_ms);

}  // namespace mews::journal
