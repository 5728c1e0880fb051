#include "common/text.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace mews::text {
namespace {

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

std::string terminalText(std::string_view text, bool keep_layout) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t start = pos;
    const auto code_point = nextCodePoint(text, pos);
    if (!code_point) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(text[start]));
    } else if (keep_layout && (*code_point == '\n' || *code_point == '\t')) {
      out += static_cast<char>(*code_point);
    } else if (*code_point == '\n' || *code_point == '\t' || *code_point == '\r') {
      out += *code_point == '\n' ? "\\n" : *code_point == '\t' ? "\\t" : "\\r";
    } else if (*code_point < 0x20 || *code_point == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(*code_point));
    } else if (isControl(*code_point)) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(*code_point));
    } else {
      out.append(text.substr(start, pos - start));
    }
  }
  return out;
}

}  // namespace

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::vector<std::string> splitList(std::string_view text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const auto item = trim(text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
    if (!item.empty()) items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return items;
}

std::string joinList(const std::vector<std::string>& items) {
  return fmt::format("{}", fmt::join(items, ","));
}

std::string joinList(const std::vector<std::int64_t>& items) {
  return fmt::format("{}", fmt::join(items, ","));
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<char32_t> nextCodePoint(std::string_view text, std::size_t& pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) {
    ++pos;
    return lead;
  }
  std::size_t length = 0;
  char32_t value = 0;
  char32_t minimum = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2, value = lead & 0x1f, minimum = 0x80;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3, value = lead & 0x0f, minimum = 0x800;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4, value = lead & 0x07, minimum = 0x10000;
  } else {
    ++pos;
    return std::nullopt;
  }
  if (pos + length > text.size()) {
    ++pos;
    return std::nullopt;
  }
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(pos + i) & 0xc0) != 0x80) {
      ++pos;
      return std::nullopt;
    }
    value = (value << 6) | (byte(pos + i) & 0x3f);
  }
  if (value < minimum || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) {
    ++pos;
    return std::nullopt;
  }
  pos += length;
  return value;
}

std::string terminalLine(std::string_view text) {
  return terminalText(text, false);
}

std::string terminalBlock(std::string_view text) {
  return terminalText(text, true);
}

std::string wellFormedUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t start = pos;
    const auto code_point = nextCodePoint(text, pos);
    if (code_point && *code_point != 0)
      out.append(text.substr(start, pos - start));
    else
      out.append("\xEF\xBF\xBD");  // U+FFFD
  }
  return out;
}

}  // namespace mews::text
