// Reading a received body: is it a JSON object, which kind of Mews webhook is
// it, and which events does it carry. Pure functions over bytes; no I/O.
//
// Kinds (README, "What Mews (or any sender) sees"):
//   general      an `Events` array whose items are objects with a string
//                `Discriminator`; `Value.Id` is the entity id when it is a string.
//   integration  a string `Action` and a `Data` member; one event (the action),
//                entity Data.Integration.Id, enterprise Data.Enterprise.Id.
//   unknown      any other JSON object. Journaled and forwarded, never refused:
//                Mews adds event types and shapes over time.
//
// The whole document is validated (simdjson DOM): invalid JSON, invalid UTF-8,
// and nesting deeper than kMaxDepth are errors. Numbers too large for a double
// are valid JSON and accepted: their bytes are stored, their value never used.
#pragma once

#include <string>
#include <string_view>

#include "common/units.h"
#include "journal/records.h"

namespace mews::ingest {

inline constexpr std::size_t kMaxDepth = 256;

// `body` may be any bytes. Returns the summary, or a one-line reason.
Parsed<journal::BatchSummary> parseBatch(std::string_view body);

}  // namespace mews::ingest
