#include "ingest/payload.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <algorithm>
#include <optional>

namespace mews::ingest {
namespace {

using journal::BatchKind;
using journal::BatchSummary;
using journal::EventRecord;

std::optional<std::string> stringMember(simdjson::dom::element object, std::string_view key) {
  std::string_view value;
  if (object[key].get_string().get(value) != simdjson::SUCCESS) return std::nullopt;
  return std::string(value);
}

// Data.Enterprise.Id and the like: nested objects, each step optional.
std::optional<std::string> nestedId(simdjson::dom::element object, std::string_view member) {
  simdjson::dom::element inner;
  if (object[member].get(inner) != simdjson::SUCCESS || !inner.is_object()) return std::nullopt;
  return stringMember(inner, "Id");
}

bool readGeneral(simdjson::dom::element root, BatchSummary& summary) {
  simdjson::dom::array events;
  if (root["Events"].get_array().get(events) != simdjson::SUCCESS) return false;
  std::vector<EventRecord> records;
  records.reserve(events.size());
  for (simdjson::dom::element event : events) {
    if (!event.is_object()) return false;
    auto discriminator = stringMember(event, "Discriminator");
    if (!discriminator) return false;
    records.push_back({std::move(*discriminator), nestedId(event, "Value")});
  }
  summary.kind = BatchKind::General;
  summary.enterprise_id = stringMember(root, "EnterpriseId");
  summary.integration_id = stringMember(root, "IntegrationId");
  summary.events = std::move(records);
  return true;
}

bool readIntegration(simdjson::dom::element root, BatchSummary& summary) {
  auto action = stringMember(root, "Action");
  simdjson::dom::element data;
  if (!action || root["Data"].get(data) != simdjson::SUCCESS) return false;
  summary.kind = BatchKind::Integration;
  if (data.is_object()) {
    summary.enterprise_id = nestedId(data, "Enterprise");
    summary.integration_id = nestedId(data, "Integration");
  }
  summary.events.push_back(EventRecord{std::move(*action), summary.integration_id});
  return true;
}

bool isJsonNumber(std::string_view token) {
  std::size_t i = 0;
  auto digits = [&] {
    const std::size_t start = i;
    while (i < token.size() && token[i] >= '0' && token[i] <= '9') ++i;
    return i > start;
  };
  if (i < token.size() && token[i] == '-') ++i;
  if (i < token.size() && token[i] == '0')
    ++i;
  else if (!digits())
    return false;
  if (i < token.size() && token[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < token.size() && (token[i] == 'e' || token[i] == 'E')) {
    ++i;
    if (i < token.size() && (token[i] == '+' || token[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == token.size();
}

// simdjson refuses numbers it cannot represent (1e999, 30-digit integers),
// which are valid JSON and may carry a real event: the relay stores bytes and
// never needs their value. This copy replaces each number token, checked
// against the JSON grammar, by a 0 padded with spaces, so the structure can be
// validated and read. Returns nullopt when a token is not a JSON number.
std::optional<std::string> withNumbersZeroed(std::string_view body) {
  std::string copy(body);
  bool in_string = false;
  for (std::size_t i = 0; i < copy.size(); ++i) {
    const char c = copy[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != '-' && (c < '0' || c > '9')) continue;
    std::size_t end = i;
    while (end < copy.size() && std::string_view("+-.eE0123456789").find(copy[end]) != std::string_view::npos) ++end;
    if (!isJsonNumber(std::string_view(copy).substr(i, end - i))) return std::nullopt;
    copy[i] = '0';
    std::fill(copy.begin() + static_cast<std::ptrdiff_t>(i) + 1, copy.begin() + static_cast<std::ptrdiff_t>(end), ' ');
    i = end - 1;
  }
  return copy;
}

std::string reasonFor(simdjson::error_code error) {
  switch (error) {
    case simdjson::UTF8_ERROR:
      return "body is not valid UTF-8";
    case simdjson::DEPTH_ERROR:
      return fmt::format("JSON nests deeper than {} levels", kMaxDepth);
    case simdjson::NUMBER_ERROR:
      return "body is not valid JSON (malformed number)";
    case simdjson::EMPTY:
      return "body is empty; expected a JSON object";
    default:
      return fmt::format("body is not valid JSON ({})", simdjson::error_message(error));
  }
}

}  // namespace

Parsed<BatchSummary> parseBatch(std::string_view body) {
  // One parser per thread: it keeps its buffers between requests and grows
  // them (keeping kMaxDepth) when a larger body arrives.
  thread_local simdjson::dom::parser parser;
  thread_local bool allocated = false;
  if (!allocated) {
    if (parser.allocate(64 * 1024, kMaxDepth) != simdjson::SUCCESS)
      return {std::string("out of memory parsing the body")};
    allocated = true;
  }
  simdjson::dom::element root;
  // realloc_if_needed: the body's buffer has no simdjson padding, so it is copied.
  auto error = parser.parse(body.data(), body.size(), true).get(root);
  std::optional<std::string> zeroed;
  if (error == simdjson::NUMBER_ERROR && (zeroed = withNumbersZeroed(body)))
    error = parser.parse(zeroed->data(), zeroed->size(), true).get(root);
  if (error != simdjson::SUCCESS) return {reasonFor(error)};
  if (!root.is_object()) return {std::string("body is not a JSON object")};

  BatchSummary summary;
  if (!readGeneral(root, summary)) {
    summary = {};
    if (!readIntegration(root, summary)) summary = {};  // an object of another shape: unknown
  }
  return {std::move(summary)};
}

}  // namespace mews::ingest
