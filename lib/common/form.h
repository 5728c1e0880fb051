// URL-encoded key/value text (application/x-www-form-urlencoded): the query
// strings and forms of the admin API and the console, and the links the
// console builds. One spelling for both surfaces, so that an operator's
// request (journal/requests.h) reads the same whether the CLI sent it in a
// query string or a browser posted it as a form.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mews::form {

using Pairs = std::vector<std::pair<std::string, std::string>>;

// Percent-encodes everything but unreserved characters (RFC 3986).
std::string urlEncode(std::string_view text);

// "a=1&b=x+y&a=2" -> {{"a","1"},{"b","x y"},{"a","2"}}; '+' is a space,
// %XX decoded; malformed escapes are kept as they are.
Pairs parseUrlEncoded(std::string_view text);

// {{"a","1"},{"b","x y"}} -> "a=1&b=x%20y": what parseUrlEncoded reads back.
std::string encode(const Pairs& pairs);

class Params {
 public:
  Params() = default;
  explicit Params(Pairs values) : values_(std::move(values)) {}
  // The first non-empty value of `name`.
  [[nodiscard]] std::optional<std::string> get(std::string_view name) const;
  [[nodiscard]] std::vector<std::string> all(std::string_view name) const;
  [[nodiscard]] bool has(std::string_view name) const;
  [[nodiscard]] const Pairs& pairs() const { return values_; }

 private:
  Pairs values_;
};

}  // namespace mews::form
