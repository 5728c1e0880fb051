#include "common/json.h"

#include <fmt/format.h>

#include "common/text.h"

namespace mews::json {

std::string quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t start = pos;
    const auto code_point = text::nextCodePoint(text, pos);
    if (!code_point) {
      out += "\\ufffd";
      continue;
    }
    switch (*code_point) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (text::isControl(*code_point))
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(*code_point));
        else
          out.append(text.substr(start, pos - start));
    }
  }
  out += '"';
  return out;
}

void Writer::separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (first_.empty()) return;
  if (!first_.back()) out_ += ',';
  first_.back() = false;
}

Writer& Writer::beginObject() {
  separate();
  out_ += '{';
  first_.push_back(true);
  return *this;
}

Writer& Writer::endObject() {
  out_ += '}';
  first_.pop_back();
  return *this;
}

Writer& Writer::beginArray() {
  separate();
  out_ += '[';
  first_.push_back(true);
  return *this;
}

Writer& Writer::endArray() {
  out_ += ']';
  first_.pop_back();
  return *this;
}

Writer& Writer::key(std::string_view name) {
  separate();
  out_ += quote(name);
  out_ += ':';
  after_key_ = true;
  return *this;
}

Writer& Writer::value(std::string_view text) {
  return literal(quote(text));
}

Writer& Writer::value(bool flag) {
  return literal(flag ? "true" : "false");
}

Writer& Writer::value(std::nullptr_t) {
  return literal("null");
}

Writer& Writer::literal(std::string_view json) {
  separate();
  out_.append(json);
  return *this;
}

}  // namespace mews::json
