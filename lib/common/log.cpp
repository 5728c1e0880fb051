#include "common/log.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <mutex>

#include "common/clock.h"
#include "common/text.h"

namespace mews::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::mutex g_write_mutex;

constexpr std::array<std::string_view, 4> kLevelNames{"debug", "info", "warn", "error"};

bool needsQuoting(std::string_view value) {
  if (value.empty()) return true;
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    // Bytes from 0x80 up: checked (and kept, when plain UTF-8) in quotes.
    if (byte <= ' ' || byte >= 0x7f || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

// A value's text as the terminal rule of text.h has it (journalctl and tail
// print log lines raw): C0 controls and DEL as \xHH, C1 controls (an 8-bit
// CSI is U+009B) as \u00HH, bytes that are not well-formed UTF-8 as \xHH;
// and, for logfmt, quotes and backslashes escaped.
void appendValue(std::string& line, std::string_view value) {
  if (!needsQuoting(value)) {
    line += value;
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  const auto appendHex = [&](std::string_view prefix, unsigned byte) {
    line += prefix;
    line += kHex[(byte >> 4) & 0xf];
    line += kHex[byte & 0xf];
  };
  line += '"';
  for (std::size_t pos = 0; pos < value.size();) {
    const std::size_t start = pos;
    const auto code_point = text::nextCodePoint(value, pos);
    if (!code_point) {
      appendHex("\\x", static_cast<unsigned char>(value[start]));
      continue;
    }
    switch (*code_point) {
      case '"':
        line += "\\\"";
        break;
      case '\\':
        line += "\\\\";
        break;
      case '\n':
        line += "\\n";
        break;
      case '\r':
        line += "\\r";
        break;
      case '\t':
        line += "\\t";
        break;
      default:
        if (*code_point < 0x20 || *code_point == 0x7f)
          appendHex("\\x", static_cast<unsigned>(*code_point));
        else if (text::isControl(*code_point))
          appendHex("\\u00", static_cast<unsigned>(*code_point));
        else
          line.append(value.substr(start, pos - start));
    }
  }
  line += '"';
}

}  // namespace

std::optional<Level> parseLevel(std::string_view name) {
  for (std::size_t i = 0; i < kLevelNames.size(); ++i)
    if (kLevelNames[i] == name) return static_cast<Level>(i);
  return std::nullopt;
}

void setLevel(Level level) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

bool enabled(Level level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void write(Level level, std::string_view component, std::string_view message, std::initializer_list<Field> fields) {
  std::string line = "ts=";
  line += formatIsoMillis(SystemClock::instance().wallMillis());
  line += " level=";
  line += kLevelNames[static_cast<std::size_t>(level)];
  line += " component=";
  appendValue(line, component);
  line += " msg=";
  appendValue(line, message);
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    appendValue(line, value);
  }
  line += '\n';
  // One fwrite per line under a lock: lines from different threads never interleave.
  const std::lock_guard lock(g_write_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace mews::log
