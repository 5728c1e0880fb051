// The journal's record of batches committed after the relay had already
// answered 503 (the commit outlasted ingest::kCommitWait), which a byte-identical
// resend from Mews may refer to (see ingest/resend_guard.h). SQL only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "journal/journal.h"

namespace mews::journal {

// Inside a writer transaction: batch `batch_id` was committed late. Throws
// SqliteError (a foreign key failure) when no such batch exists.
void recordLateCommit(Journal& journal, std::int64_t batch_id, std::string_view body_sha256, std::int64_t answered_ms);

// Inside a writer transaction: the late-committed batch received at or after
// `since_ms` whose body is exactly `body` and whose IntegrationId is
// `integration_id` (both absent counts as the same), if any, the oldest when
// there are several; its late_commits row is deleted, so that each late commit
// answers at most one post (a General webhook carries no timestamp: the same
// bytes may be a real second change, which must be stored). Concurrent callers
// (several relays) consume a row once: the DELETE that finds it gone changes
// nothing and returns nothing.
std::optional<std::int64_t> consumeLateCommit(Journal& journal, std::string_view body_sha256,
                                              const std::optional<std::string>& integration_id, std::string_view body,
                                              std::int64_t since_ms);

struct LateCommit {
  std::string body_sha256;
  std::int64_t received_ms = 0;
};
// Late-committed batches received at or after `since_ms`.
std::vector<LateCommit> lateCommitsSince(Journal& reader, std::int64_t since_ms);

}  // namespace mews::journal
