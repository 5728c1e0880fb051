#include "batch/payload.h"

#include <fmt/format.h>

#include <algorithm>

namespace mews::batch {
namespace {

using journal::BatchKind;
using journal::BatchSummary;
using journal::EventRecord;
using json::Kind;
using json::Scanner;
using RawString = std::optional<std::string_view>;

// What the root object's members say, as the one pass over it finds them.
// Each member read replaces what an earlier one of the same name said.
struct RootReading {
  RawString enterprise_id;
  RawString integration_id;
  RawString action;
  bool has_data = false;
  RawString data_enterprise_id;
  RawString data_integration_id;
  bool events_are_general = false;  // an array of objects, each with a string Discriminator
  std::vector<BatchOutline::Event> events;
};

// The next value's raw content when it is a string; any other value is
// consumed and reads as none. False only on a scan fault.
bool readString(Scanner& scanner, RawString& out) {
  out.reset();
  Kind kind{};
  if (!scanner.peek(kind)) return false;
  if (kind != Kind::String) return scanner.skipValue();
  std::string_view raw;
  if (!scanner.string(raw)) return false;
  out = raw;
  return true;
}

// {"Id": "…"} (Value, Data.Enterprise, Data.Integration): its string Id.
bool readIdOf(Scanner& scanner, RawString& id) {
  id.reset();
  Kind kind{};
  if (!scanner.peek(kind)) return false;
  if (kind != Kind::Object) return scanner.skipValue();
  if (!scanner.enterObject()) return false;
  std::string_view name;
  while (scanner.nextMember(name))
    if (!(json::equals(name, "Id") ? readString(scanner, id) : scanner.skipValue())) return false;
  return !scanner.failed();
}

// One object of Events: its Discriminator and Value.Id.
bool readEvent(Scanner& scanner, RawString& discriminator, RawString& entity_id) {
  if (!scanner.enterObject()) return false;
  std::string_view name;
  while (scanner.nextMember(name)) {
    bool read = false;
    if (json::equals(name, "Discriminator"))
      read = readString(scanner, discriminator);
    else if (json::equals(name, "Value"))
      read = readIdOf(scanner, entity_id);
    else
      read = scanner.skipValue();
    if (!read) return false;
  }
  return !scanner.failed();
}

bool readEvents(Scanner& scanner, std::string_view body, RootReading& reading) {
  reading.events.clear();
  reading.events_are_general = false;
  Kind kind{};
  if (!scanner.peek(kind)) return false;
  if (kind != Kind::Array) return scanner.skipValue();
  if (!scanner.enterArray()) return false;
  // Room for a typical batch at once (an event of Mews takes 80 bytes or more).
  reading.events.reserve(std::min<std::size_t>(64, body.size() / 80));
  bool general = true;
  while (scanner.nextElement()) {
    if (!scanner.peek(kind)) return false;
    const std::size_t start = scanner.offset();
    if (!general || kind != Kind::Object) {
      general = false;  // the rest is only validated
      if (!scanner.skipValue()) return false;
      continue;
    }
    RawString discriminator;
    RawString entity_id;
    if (!readEvent(scanner, discriminator, entity_id)) return false;
    if (!discriminator) {
      general = false;
      continue;
    }
    reading.events.push_back({body.substr(start, scanner.offset() - start), *discriminator, entity_id});
  }
  if (scanner.failed()) return false;
  reading.events_are_general = general;
  if (!general) reading.events.clear();
  return true;
}

bool readData(Scanner& scanner, RootReading& reading) {
  reading.has_data = true;
  reading.data_enterprise_id.reset();
  reading.data_integration_id.reset();
  Kind kind{};
  if (!scanner.peek(kind)) return false;
  if (kind != Kind::Object) return scanner.skipValue();
  if (!scanner.enterObject()) return false;
  std::string_view name;
  while (scanner.nextMember(name)) {
    bool read = false;
    if (json::equals(name, "Enterprise"))
      read = readIdOf(scanner, reading.data_enterprise_id);
    else if (json::equals(name, "Integration"))
      read = readIdOf(scanner, reading.data_integration_id);
    else
      read = scanner.skipValue();
    if (!read) return false;
  }
  return !scanner.failed();
}

// Reads one member's value, noting where the members the relay uses are.
bool readMember(Scanner& scanner, std::string_view body, std::string_view name, BatchOutline& outline,
                RootReading& reading) {
  const std::size_t index = outline.members.size();
  if (json::equals(name, "Events")) {
    outline.events_member = index;
    return readEvents(scanner, body, reading);
  }
  if (json::equals(name, "EnterpriseId")) {
    outline.enterprise_member = index;
    return readString(scanner, reading.enterprise_id);
  }
  if (json::equals(name, "IntegrationId")) {
    outline.integration_member = index;
    return readString(scanner, reading.integration_id);
  }
  if (json::equals(name, "Action")) return readString(scanner, reading.action);
  if (json::equals(name, "Data")) return readData(scanner, reading);
  return scanner.skipValue();
}

void classify(RootReading& reading, BatchOutline& outline) {
  if (reading.events_are_general) {
    outline.kind = BatchKind::General;
    outline.enterprise_id = reading.enterprise_id;
    outline.integration_id = reading.integration_id;
    outline.events = std::move(reading.events);
  } else if (reading.action && reading.has_data) {
    outline.kind = BatchKind::Integration;
    outline.enterprise_id = reading.data_enterprise_id;
    outline.integration_id = reading.data_integration_id;
    outline.action = reading.action;
  }  // else an object of another shape: unknown
}

std::string reasonFor(const Scanner& scanner) {
  switch (scanner.fault()) {
    case json::Fault::Empty:
      return "body is empty; expected a JSON object";
    case json::Fault::Utf8:
      return fmt::format("body is not valid UTF-8 (at byte {})", scanner.faultOffset());
    case json::Fault::Depth:
      return fmt::format("JSON nests deeper than {} levels (at byte {})", kMaxDepth, scanner.faultOffset());
    default:
      return fmt::format("body is not valid JSON ({})", scanner.reason());
  }
}

std::optional<std::string> decoded(const RawString& raw) {
  if (!raw) return std::nullopt;
  return json::decode(*raw);
}

}  // namespace

Parsed<BatchOutline> outlineBatch(std::string_view body) {
  Scanner scanner(body);
  Kind kind{};
  if (!scanner.begin() || !scanner.peek(kind)) return {reasonFor(scanner)};
  if (kind != Kind::Object) {
    if (scanner.skipValue() && scanner.end()) return {std::string("body is not a JSON object")};
    return {reasonFor(scanner)};
  }

  BatchOutline outline;
  outline.members.reserve(8);
  RootReading reading;
  scanner.enterObject();
  std::string_view name;
  while (scanner.nextMember(name)) {
    if (!scanner.peek(kind)) break;
    const std::size_t value_start = scanner.offset();
    const std::size_t index = outline.members.size();
    if (!readMember(scanner, body, name, outline, reading)) break;
    // The raw name sits between its quotes in `body`: widen the view to them.
    outline.members.push_back({std::string_view(name.data() - 1, name.size() + 2),
                               body.substr(value_start, scanner.offset() - value_start),
                               outline.events_member == index});
  }
  if (!scanner.end()) return {reasonFor(scanner)};
  classify(reading, outline);
  return {std::move(outline)};
}

BatchSummary summarize(const BatchOutline& outline) {
  BatchSummary summary;
  summary.kind = outline.kind;
  summary.enterprise_id = decoded(outline.enterprise_id);
  summary.integration_id = decoded(outline.integration_id);
  if (outline.kind == BatchKind::General) {
    summary.events.reserve(outline.events.size());
    for (const auto& event : outline.events)
      summary.events.push_back({json::decode(event.discriminator), decoded(event.entity_id)});
  } else if (outline.kind == BatchKind::Integration) {
    summary.events.push_back({json::decode(*outline.action), summary.integration_id});
  }
  return summary;
}

Parsed<BatchSummary> parseBatch(std::string_view body) {
  const auto outlined = outlineBatch(body);
  if (!outlined.ok()) return {outlined.error()};
  return {summarize(outlined.value())};
}

std::vector<std::string> eventTypes(std::string_view body, std::optional<std::int64_t> event_seq) {
  auto parsed = parseBatch(body);
  if (!parsed.ok()) return {};
  std::vector<std::string> types;
  const auto& events = parsed.value().events;
  for (std::size_t seq = 0; seq < events.size(); ++seq)
    if (!event_seq || static_cast<std::int64_t>(seq) == *event_seq) types.push_back(events[seq].discriminator);
  return types;
}

}  // namespace mews::batch
