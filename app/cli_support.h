// Helpers shared by the operator commands: flag parsing, TIME and DURATION
// arguments, aligned tables, and the two ways to change the journal (directly
// when no relay serves it, through the relay's admin listener when one does).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "journal/journal.h"
#include "journal/requests.h"

namespace mews::cli {

// A small flag reader: `--name value`, `--name=value`, switches, positionals.
class Flags {
 public:
  Flags(const std::vector<std::string>& args, const std::vector<std::string>& with_value,
        const std::vector<std::string>& switches);
  [[nodiscard]] std::optional<std::string> value(const std::string& name) const;
  [[nodiscard]] bool has(const std::string& name) const;
  [[nodiscard]] const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  std::vector<std::pair<std::string, std::string>> values_;
  std::vector<std::string> switches_;
  std::vector<std::string> positionals_;
};

// TIME: ISO 8601 ("2026-11-27T10:00:00Z") or an age ("2h", "3d") before now.
std::int64_t parseTimeArg(const std::string& flag, const std::string& text, std::int64_t now_ms);
std::int64_t parseDurationArg(const std::string& flag, const std::string& text);
std::int64_t parseIdArg(const std::string& text);
// A count for `flag` (e.g. --limit): 1 or more; UsageError naming the flag otherwise.
int parseCountArg(const std::string& flag, const std::string& text);

// Cells are text from the journal, some of it from outside: each is printed
// through text::terminalLine, so no control sequence reaches the terminal.
void printTable(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows);
std::string ageText(std::int64_t millis);

// Whether `name` is a [target.NAME] of `settings`.
bool isConfigured(const config::Settings& settings, const std::string& name);

// A read-only view of the configured journal. Throws with the path when missing.
journal::Journal openReader(const config::Settings& settings);

// The names of the configured targets.
std::vector<std::string> targetNames(const config::Settings& settings);

// Runs an operator's request (journal/requests.h): directly, in one
// transaction, while holding the journal lock when no relay runs (PostgreSQL:
// always directly, beside any relay); otherwise by POSTing its encoding to the
// relay's admin listener. Returns the count it reports. Throws
// std::runtime_error with the reason (the relay's, or naming unknown dead
// letters and the journal) on failure.
std::int64_t applyRequest(const config::Settings& settings, const journal::ReplayRequest& request, bool& via_relay);
std::int64_t applyRequest(const config::Settings& settings, const journal::PurgeRequest& request, bool& via_relay);

}  // namespace mews::cli
