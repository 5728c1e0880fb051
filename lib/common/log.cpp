#include "common/log.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <mutex>

#include "common/clock.h"

namespace mews::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::mutex g_write_mutex;

constexpr std::array<std::string_view, 4> kLevelNames{"debug", "info", "warn", "error"};

bool needsQuoting(std::string_view value) {
  if (value.empty()) return true;
  for (const char c : value)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  return false;
}

void appendValue(std::string& line, std::string_view value) {
  if (!needsQuoting(value)) {
    line += value;
    return;
  }
  line += '"';
  for (const char c : value) {
    switch (c) {
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
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          line += "\\x";
          line += kHex[(c >> 4) & 0xf];
          line += kHex[c & 0xf];
        } else {
          line += c;
        }
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
