#include "console/web.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "common/text.h"

namespace mews::console::web {
std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

bool originMatches(std::string_view origin, std::string_view host_header, bool tls) {
  if (origin.empty() || host_header.empty()) return false;
  return text::lower(origin) == text::lower(fmt::format("{}://{}", tls ? "https" : "http", host_header));
}

std::optional<std::string> cookie(std::string_view cookie_header, std::string_view name) {
  std::size_t start = 0;
  while (start < cookie_header.size()) {
    const auto semi = cookie_header.find(';', start);
    auto part = cookie_header.substr(start, semi == std::string_view::npos ? std::string_view::npos : semi - start);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    const auto eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) return std::string(part.substr(eq + 1));
    if (semi == std::string_view::npos) break;
    start = semi + 1;
  }
  return std::nullopt;
}

std::string prettyJson(std::string_view json) {
  std::string out;
  out.reserve(json.size() * 2);
  int depth = 0;
  auto newline = [&] {
    out += '\n';
    out.append(static_cast<std::size_t>(std::max(depth, 0)) * 2, ' ');
  };
  auto nextSignificant = [&](std::size_t from) {
    while (from < json.size() && std::isspace(static_cast<unsigned char>(json[from]))) ++from;
    return from;
  };
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '"') {
      const std::size_t begin = i++;
      while (i < json.size() && json[i] != '"') i += json[i] == '\\' ? 2 : 1;
      out.append(json.substr(begin, std::min(i, json.size() - 1) - begin + 1));
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    if (c == '{' || c == '[') {
      const std::size_t next = nextSignificant(i + 1);
      if (next < json.size() && (json[next] == '}' || json[next] == ']')) {
        out += c;
        out += json[next];
        i = next;
        continue;
      }
      out += c;
      ++depth;
      newline();
    } else if (c == '}' || c == ']') {
      --depth;
      newline();
      out += c;
    } else if (c == ',') {
      out += c;
      newline();
    } else if (c == ':') {
      out += ": ";
    } else {
      out += c;
    }
  }
  return out;
}

std::string sizeText(std::uint64_t bytes) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, kUnits[unit]);
}

std::string ageText(std::int64_t millis) {
  const std::int64_t seconds = std::max<std::int64_t>(0, millis / 1000);
  if (seconds < 120) return fmt::format("{} s", seconds);
  if (seconds < 7200) return fmt::format("{} min", seconds / 60);
  if (seconds < 172800) return fmt::format("{} h", seconds / 3600);
  return fmt::format("{} d", seconds / 86400);
}

}  // namespace mews::console::web
