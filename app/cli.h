// The command line: global options, the table of subcommands, and the error
// conventions every subcommand follows.
//   exit 0 done, 1 failed (message names the file, key or id), 2 usage error.
// Each subcommand lives in its own app/cmd_<verb>.cpp with its usage text.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace mews::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// Thrown for a bad flag or argument: printed with the command's usage, exit 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct GlobalOptions {
  std::string config_path;
  bool log_level_given = false;  // --log-level: it wins over [log] level, at start and at every reload
};

struct Command {
  std::string name;
  std::string summary;
  std::string usage;  // shown by --help and after a usage error
  std::function<int(const GlobalOptions&, const std::vector<std::string>&)> run;
};

// Declared once per cmd_<verb>.cpp.
Command serveCommand();
Command checkConfigCommand();
Command migrateCommand();
Command statusCommand();
Command dlqCommand();
Command replayCommand();
Command consolePasswordCommand();

// Small shared helpers for argument handling.
bool wantsHelp(const std::vector<std::string>& args);
void expectNoArguments(const std::vector<std::string>& args);

}  // namespace mews::cli
