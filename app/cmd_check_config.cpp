// `check-config`: loads and validates the config and prints the effective
// settings, secrets masked.
#include <fmt/format.h>
#include <iostream>

#include "cli.h"
#include "common/json.h"
#include "config/config.h"

namespace mews::cli {
namespace {

int runCheckConfig(const GlobalOptions& options, const std::vector<std::string>& args) {
  bool json = false;
  for (const auto& arg : args) {
    if (arg == "--json")
      json = true;
    else
      throw UsageError(fmt::format("unexpected argument '{}'", arg));
  }
  const config::Settings settings = config::loadSettings(options.config_path);
  if (json) {
    std::string out = "{\"file\":" + json::quote(settings.source_file) + ",\"settings\":[";
    bool first = true;
    for (const auto& entry : settings.effective) {
      out += fmt::format("{}{{\"section\":{},\"key\":{},\"value\":{},\"reloadable\":{}}}", first ? "" : ",",
                         json::quote(entry.section), json::quote(entry.key), json::quote(entry.value),
                         !entry.restart_only);
      first = false;
    }
    std::cout << out << "]}\n";
    return kExitOk;
  }
  std::cout << fmt::format("{}: configuration is valid\n", settings.source_file);
  std::string section;
  for (const auto& entry : settings.effective) {
    if (entry.section != section) {
      section = entry.section;
      std::cout << fmt::format("\n[{}]\n", section);
    }
    if (entry.restart_only)
      std::cout << fmt::format("{:<16} = {:<24} ; restart to change\n", entry.key, entry.value);
    else
      std::cout << fmt::format("{:<16} = {}\n", entry.key, entry.value);
  }
  return kExitOk;
}

}  // namespace

Command checkConfigCommand() {
  return {"check-config", "validate the config and print effective settings (secrets masked)",
          "usage: mews-relay [-c FILE] check-config [--json]\n\n"
          "Loads and validates the configuration and prints every effective setting,\n"
          "defaults included. Tokens, signing secrets and header values are masked.\n"
          "Keys marked \"restart to change\" keep their running value at a reload\n"
          "(SIGHUP); every other key, targets included, changes with it.\n"
          "Exit 1 with the file, key and reason of every problem found.\n\n"
          "example:\n  mews-relay -c /etc/mews-relay/mews-relay.ini check-config\n",
          runCheckConfig};
}

}  // namespace mews::cli
