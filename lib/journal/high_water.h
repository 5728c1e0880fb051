// The highest ids a SQLite journal has given out, kept beside it in
// "<journal>.ids", so that a journal put back from a backup (older than the
// one the relay served last) never gives an id out twice: a batch id names a
// webhook-id (msg_<journal>_<batch>), which consumers deduplicate on, and a
// dead-letter id names what an operator's Replay acts on.
//
//   after each of the writer's transactions --> record(): the journal's
//       sequences (sqlite_sequence) written to the file when they grew
//   when the writer opens the journal --> adopt(): a file for the same
//       journal id with higher ids raises the journal's sequences to them, and
//       says so (the journal is older than the one served last)
//
// The file is written without fsync: it follows the journal through a process
// crash (the page cache), which is the case a restore follows; a journal of
// another journal id, or no file, changes nothing. Failure to read or write it
// is logged, never fatal: the ids then go on from the journal alone, as before.
// PostgreSQL keeps its sequences in the database (a restored dump brings its
// own: see the README, "Upgrade").
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "journal/journal.h"

namespace mews::journal {

struct HighWater {
  std::string journal_id;
  std::int64_t batches = 0;
  std::int64_t deliveries = 0;
  std::int64_t dead_letters = 0;

  bool operator==(const HighWater&) const = default;
};

// The journal's sequences now.
HighWater currentHighWater(Journal& journal);

std::string highWaterPath(const std::string& journal_path);
std::optional<HighWater> readHighWater(const std::string& journal_path);
// Throws std::runtime_error naming the file.
void writeHighWater(const std::string& journal_path, const HighWater& mark);

// Inside no transaction: raises the journal's sequences to `recorded` where
// they are lower (same journal id only). True when it raised one.
bool raiseSequences(Journal& journal, const HighWater& recorded);

}  // namespace mews::journal
