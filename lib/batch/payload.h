// Reading a received body: is it a JSON object, which kind of Mews webhook is
// it, which events does it carry, and where each part sits in its bytes. Pure
// functions over bytes; no I/O. Ingest reads a body with it to accept it and
// route it; delivery reads the stored body with it again to cut filtered and
// per-event bodies out of those bytes: one reader, so whatever ingest accepted
// delivery can build.
//
// Kinds (README, "What Mews (or any sender) sees"):
//   general      an `Events` array whose items are objects with a string
//                `Discriminator`; `Value.Id` is the entity id when it is a string.
//   integration  a string `Action` and a `Data` member; one event (the action),
//                entity Data.Integration.Id, enterprise Data.Enterprise.Id.
//   unknown      any other JSON object. Journaled and forwarded, never refused:
//                Mews adds event types and shapes over time.
//
// The whole body is validated by common/json_scan.h (its header lists what
// is accepted and what is refused); only a JSON object is a batch. Names and
// strings are compared decoded ("Customer\u0041dded" is CustomerAdded). When
// a name repeats in an object, the last one counts, as it does for
// JavaScript, Python, Jackson and .NET reading what the relay forwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_scan.h"
#include "common/units.h"
#include "journal/records.h"

namespace mews::batch {

inline constexpr std::size_t kMaxDepth = json::kMaxDepth;

// Where each part of a body sits, and its kind: views into the body it was
// read from (keep the body alive), nothing decoded or copied. Ingest turns it
// into the journal's summary; delivery cuts bodies out of the same bytes.
struct BatchOutline {
  struct Member {
    std::string_view name;   // the name as received, quotes and escapes included
    std::string_view value;  // the value as received
    bool is_events = false;  // the name decodes to "Events"
  };
  struct Event {
    std::string_view bytes;                     // the event object as received
    std::string_view discriminator;             // raw string content (json::decode reads it)
    std::optional<std::string_view> entity_id;  // raw Value.Id, when a string
  };

  journal::BatchKind kind = journal::BatchKind::Unknown;
  std::vector<Member> members;  // the root object's, in order, repeated names included
  // Indexes into `members` of the last Events, EnterpriseId and IntegrationId.
  std::optional<std::size_t> events_member;
  std::optional<std::size_t> enterprise_member;
  std::optional<std::size_t> integration_member;
  std::vector<Event> events;  // General: each event in order; otherwise empty
  // Raw string contents, when strings: General reads EnterpriseId and
  // IntegrationId, Integration reads Data.Enterprise.Id and Data.Integration.Id.
  std::optional<std::string_view> enterprise_id;
  std::optional<std::string_view> integration_id;
  std::optional<std::string_view> action;  // Integration
};

// `body` may be any bytes. Returns the outline, or a one-line reason.
Parsed<BatchOutline> outlineBatch(std::string_view body);

// The summary ingest journals: the outline's strings decoded.
journal::BatchSummary summarize(const BatchOutline& outline);
// outlineBatch, then summarize.
Parsed<journal::BatchSummary> parseBatch(std::string_view body);

// The event types (discriminators, or the action) of a stored body, in order:
// all of them, or only event `event_seq`'s. The journal keeps no per-event rows
// (migrations/0005_lean_ack.sql); dead letters and the console read them here.
// Empty for an unknown kind or a body this reader refuses.
std::vector<std::string> eventTypes(std::string_view body, std::optional<std::int64_t> event_seq = std::nullopt);

}  // namespace mews::batch
