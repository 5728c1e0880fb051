#include "batch/body.h"

#include <stdexcept>

#include "batch/payload.h"
#include "common/json_scan.h"

namespace mews::batch {
namespace {

batch::BatchOutline outlineStored(const std::string& body) {
  auto outlined = batch::outlineBatch(body);
  if (!outlined.ok()) throw std::runtime_error("stored batch body does not parse: " + outlined.error());
  if (outlined.value().kind != journal::BatchKind::General)
    throw std::runtime_error("stored batch body is no longer a General webhook");
  return std::move(std::get<0>(outlined.result));
}

std::string oneEvent(const batch::BatchOutline& outline, std::int64_t seq) {
  if (seq < 0 || static_cast<std::size_t>(seq) >= outline.events.size())
    throw std::runtime_error("stored batch has no event at that position");
  std::string out = "{";
  if (outline.enterprise_member)
    out.append("\"EnterpriseId\":").append(outline.members[*outline.enterprise_member].value) += ',';
  if (outline.integration_member)
    out.append("\"IntegrationId\":").append(outline.members[*outline.integration_member].value) += ',';
  return out.append("\"Events\":[").append(outline.events[static_cast<std::size_t>(seq)].bytes).append("]}");
}

// The same test routing made at ingest, on the decoded discriminator.
bool wanted(const config::TargetSettings& target, const batch::BatchOutline::Event& event) {
  if (event.discriminator.find('\\') == std::string_view::npos) return target.accepts(event.discriminator);
  return target.accepts(json::decode(event.discriminator));
}

// An Events member before the last one: every reader uses the last, but its
// bytes are still in the body, events of any type included.
bool hasShadowedEvents(const batch::BatchOutline& outline) {
  for (std::size_t m = 0; m < outline.members.size(); ++m)
    if (outline.members[m].is_events && m != outline.events_member) return true;
  return false;
}

std::string filtered(const batch::BatchOutline& outline, const config::TargetSettings& target) {
  std::string out = "{";
  for (std::size_t m = 0; m < outline.members.size(); ++m) {
    const auto& member = outline.members[m];
    // An earlier Events, shadowed by the last: readers ignore it, and it may
    // hold events this target did not ask for.
    if (member.is_events && m != outline.events_member) continue;
    if (out.size() > 1) out += ',';
    out.append(member.name) += ':';
    if (m != outline.events_member) {
      out.append(member.value);
      continue;
    }
    out += '[';
    bool first_event = true;
    for (const auto& event : outline.events) {
      if (!wanted(target, event)) continue;
      if (!first_event) out += ',';
      first_event = false;
      out.append(event.bytes);
    }
    out += ']';
  }
  return out + "}";
}

}  // namespace

std::string buildBody(journal::BatchKind kind, const std::string& stored_body, std::optional<std::int64_t> event_seq,
                      const config::TargetSettings& target) {
  if (kind != journal::BatchKind::General) return stored_body;
  if (!event_seq && target.acceptsAllEvents()) return stored_body;

  const batch::BatchOutline outline = outlineStored(stored_body);
  if (event_seq) return oneEvent(outline, *event_seq);
  bool all_match = true;
  for (const auto& event : outline.events) all_match = all_match && wanted(target, event);
  // Every event passes: the body as received, unless a shadowed Events in it
  // holds events this target did not ask for (filtered() leaves it out).
  if (all_match && !hasShadowedEvents(outline)) return stored_body;
  return filtered(outline, target);
}

}  // namespace mews::batch
