#include "delivery/body.h"

#include <simdjson.h>

#include <stdexcept>

#include "common/json.h"

namespace mews::delivery {
namespace {

simdjson::dom::element parseStored(simdjson::dom::parser& parser, const std::string& body) {
  simdjson::dom::element root;
  if (parser.parse(body).get(root) != simdjson::SUCCESS || !root.is_object())
    throw std::runtime_error("stored batch body does not parse");
  return root;
}

std::string_view discriminatorOf(simdjson::dom::element event) {
  std::string_view name;
  if (event["Discriminator"].get_string().get(name) != simdjson::SUCCESS) return {};
  return name;
}

}  // namespace

std::string buildBody(journal::BatchKind kind, const std::string& stored_body, std::optional<std::int64_t> event_seq,
                      const config::TargetSettings& target) {
  if (kind != journal::BatchKind::General) return stored_body;
  if (!event_seq && target.acceptsAllEvents()) return stored_body;

  simdjson::dom::parser parser;
  const simdjson::dom::element root = parseStored(parser, stored_body);
  simdjson::dom::array events;
  if (root["Events"].get_array().get(events) != simdjson::SUCCESS)
    throw std::runtime_error("stored General batch has no Events array");

  if (event_seq) {
    std::string out = "{";
    for (const char* member : {"EnterpriseId", "IntegrationId"}) {
      simdjson::dom::element value;
      if (root[member].get(value) == simdjson::SUCCESS)
        out += json::quote(member) + ":" + simdjson::minify(value) + ",";
    }
    simdjson::dom::element event;
    if (events.at(static_cast<std::size_t>(*event_seq)).get(event) != simdjson::SUCCESS)
      throw std::runtime_error("stored batch has no event at that position");
    return out + "\"Events\":[" + simdjson::minify(event) + "]}";
  }

  bool all_match = true;
  for (simdjson::dom::element event : events) all_match = all_match && target.accepts(discriminatorOf(event));
  if (all_match) return stored_body;

  std::string out = "{";
  bool first_member = true;
  for (const auto field : simdjson::dom::object(root)) {
    if (!first_member) out += ',';
    first_member = false;
    out += json::quote(field.key) + ":";
    if (field.key != "Events") {
      out += simdjson::minify(field.value);
      continue;
    }
    out += '[';
    bool first_event = true;
    for (simdjson::dom::element event : events) {
      if (!target.accepts(discriminatorOf(event))) continue;
      if (!first_event) out += ',';
      first_event = false;
      out += simdjson::minify(event);
    }
    out += ']';
  }
  return out + "}";
}

}  // namespace mews::delivery
