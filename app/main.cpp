// mews-relay [-c FILE] [--log-level LEVEL] COMMAND ...
#include <malloc.h>

#include <fmt/format.h>
#include <cstdlib>
#include <iostream>

#include "cli.h"
#include "common/log.h"
#include "config/config.h"

namespace mews::cli {

bool wantsHelp(const std::vector<std::string>& args) {
  for (const auto& arg : args)
    if (arg == "-h" || arg == "--help") return true;
  return false;
}

void expectNoArguments(const std::vector<std::string>& args) {
  if (!args.empty()) throw UsageError(fmt::format("unexpected argument '{}'", args.front()));
}

}  // namespace mews::cli

namespace {

using namespace mews::cli;

std::vector<Command> allCommands() {
  return {serveCommand(),   statusCommand(),         dlqCommand(), replayCommand(), checkConfigCommand(),
          migrateCommand(), consolePasswordCommand()};
}

void printUsage(std::ostream& out) {
  out << "usage: mews-relay [-c FILE] [--log-level LEVEL] COMMAND [ARGS]\n\n"
         "A durable store-and-forward relay for Mews webhooks.\n\n"
         "options:\n"
         "  -c, --config FILE    configuration (default: $MEWS_RELAY_CONFIG, then ./mews-relay.ini)\n"
         "  --log-level LEVEL    debug, info, warn or error (default: info)\n"
         "  -h, --help           this text; COMMAND --help for a command's\n\n"
         "commands:\n";
  for (const auto& command : allCommands()) out << fmt::format("  {:<17} {}\n", command.name, command.summary);
}

std::string defaultConfigPath() {
  if (const char* env = std::getenv("MEWS_RELAY_CONFIG"); env != nullptr && *env != '\0') return env;
  return "mews-relay.ini";
}

}  // namespace

int main(int argc, char** argv) {
  // glibc gives memory a thread freed back to the kernel (madvise) as soon as
  // a little is free at the top of its arena; with the journal writer and the
  // workers each freeing per request, that was a fifth of the drain's CPU
  // (docs/benchmarks.md). Freed memory is kept for reuse instead; the peak
  // stays what the relay needs (RSS is measured in the benchmarks).
  mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
  std::vector<std::string> args(argv + 1, argv + argc);
  GlobalOptions options;
  options.config_path = defaultConfigPath();

  std::size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&](std::string_view flag) -> std::string {
      if (i + 1 >= args.size()) {
        std::cerr << fmt::format("error: {} needs a value\n", flag);
        std::exit(kExitUsage);
      }
      return args[++i];
    };
    if (arg == "-c" || arg == "--config") {
      options.config_path = value(arg);
    } else if (arg.rfind("--config=", 0) == 0) {
      options.config_path = arg.substr(9);
    } else if (arg == "--log-level" || arg.rfind("--log-level=", 0) == 0) {
      const std::string level = arg == "--log-level" ? value(arg) : arg.substr(12);
      const auto parsed = mews::log::parseLevel(level);
      if (!parsed) {
        std::cerr << fmt::format("error: --log-level '{}' is not debug, info, warn or error\n", level);
        return kExitUsage;
      }
      mews::log::setLevel(*parsed);
      options.log_level_given = true;
    } else if (arg == "-h" || arg == "--help") {
      printUsage(std::cout);
      return kExitOk;
    } else if (arg == "--version") {
      std::cout << "mews-relay " << MEWS_RELAY_VERSION << "\n";
      return kExitOk;
    } else if (!arg.empty() && arg[0] == '-') {
      std::cerr << fmt::format("error: unknown option '{}'\n\n", arg);
      printUsage(std::cerr);
      return kExitUsage;
    } else {
      break;
    }
  }
  if (i >= args.size()) {
    printUsage(std::cerr);
    return kExitUsage;
  }
  const std::string name = args[i];
  const std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
  for (const auto& command : allCommands()) {
    if (command.name != name) continue;
    if (wantsHelp(rest)) {
      std::cout << command.usage;
      return kExitOk;
    }
    try {
      return command.run(options, rest);
    } catch (const UsageError& e) {
      std::cerr << fmt::format("error: {}\n\n{}", e.what(), command.usage);
      return kExitUsage;
    } catch (const mews::config::ConfigError& e) {
      std::cerr << fmt::format("error: invalid configuration\n{}\n", e.what());
      return kExitFailed;
    } catch (const std::exception& e) {
      std::cerr << fmt::format("error: {}\n", e.what());
      return kExitFailed;
    }
  }
  std::cerr << fmt::format("error: unknown command '{}'\n\n", name);
  printUsage(std::cerr);
  return kExitUsage;
}
