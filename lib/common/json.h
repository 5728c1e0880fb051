// The one JSON writer for everything the relay prints or answers (the CLI's
// --json output, the admin listener's answers). It never re-encodes a body
// the relay forwards: those go byte for byte.
//
// Strings are escaped so that the output is valid JSON and safe on a
// terminal: C0 controls, DEL and C1 controls become \u00XX, and a byte that
// is not well-formed UTF-8 becomes U+FFFD (\ufffd) — text from outside may
// carry anything.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mews::json {

// `text` as a JSON string literal, quotes included.
std::string quote(std::string_view text);

// Compact JSON, built in order; commas and colons are placed by the writer.
//   json::Writer w;
//   w.beginObject().field("count", 3).key("ids").beginArray().value(1).endArray().endObject();
//   std::move(w).text()  // {"count":3,"ids":[1]}
class Writer {
 public:
  Writer& beginObject();
  Writer& endObject();
  Writer& beginArray();
  Writer& endArray();
  Writer& key(std::string_view name);

  Writer& value(std::string_view text);
  Writer& value(const char* text) { return value(std::string_view(text)); }
  Writer& value(const std::string& text) { return value(std::string_view(text)); }
  Writer& value(bool flag);
  Writer& value(std::nullptr_t);
  template <std::integral T>
  requires(!std::same_as<T, bool>) Writer& value(T number) { return literal(std::to_string(number)); }
  template <typename T>
  Writer& value(const std::optional<T>& maybe) {
    return maybe ? value(*maybe) : value(nullptr);
  }
  template <typename T>
  Writer& value(const std::vector<T>& items) {
    beginArray();
    for (const auto& item : items) value(item);
    return endArray();
  }
  // Text that is JSON already (e.g. an object the relay itself stored as JSON).
  Writer& raw(std::string_view json) { return literal(json); }

  template <typename T>
  Writer& field(std::string_view name, const T& v) {
    return key(name).value(v);
  }

  [[nodiscard]] const std::string& text() const& { return out_; }
  [[nodiscard]] std::string text() && { return std::move(out_); }

 private:
  Writer& literal(std::string_view json);
  void separate();  // the comma before a value or key that is not its container's first

  std::string out_;
  std::vector<bool> first_;  // one per open container: nothing written in it yet
  bool after_key_ = false;
};

}  // namespace mews::json
