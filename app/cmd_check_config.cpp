// `check-config`: loads and validates the config and prints the effective
// settings, secrets masked; `--keys` prints the key table instead.
#include <fmt/format.h>
#include <iostream>

#include "cli.h"
#include "cli_support.h"
#include "common/json.h"
#include "config/config.h"

namespace mews::cli {
namespace {

int printKeys(bool as_json) {
  const auto keys = config::keyTable();
  if (as_json) {
    json::Writer out;
    out.beginArray();
    for (const auto& key : keys)
      out.beginObject()
          .field("section", key.section)
          .field("key", key.name)
          .field("type", key.type)
          .field("default", key.default_value)
          .field("required", key.required)
          .field("reload", key.restart ? "restart" : "reload")
          .field("doc", key.doc)
          .endObject();
    std::cout << std::move(out.endArray()).text() << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& key : keys)
    rows.push_back({key.section, key.name, key.type,
                    key.required                ? "(required)"
                    : key.default_value.empty() ? "-"
                                                : key.default_value,
                    key.restart ? "restart" : "reload", key.doc});
  printTable({"SECTION", "KEY", "TYPE", "DEFAULT", "CHANGED BY", "WHAT IT DOES"}, rows);
  return kExitOk;
}

int runCheckConfig(const GlobalOptions& options, const std::vector<std::string>& args) {
  const Flags flags(args, {}, {"--json", "--keys"});
  expectNoArguments(flags.positionals());
  const bool as_json = flags.has("--json");
  if (flags.has("--keys")) return printKeys(as_json);
  const config::Settings settings = config::loadSettings(options.config_path);
  if (as_json) {
    json::Writer out;
    out.beginObject().field("file", settings.source_file).key("settings").beginArray();
    for (const auto& entry : settings.effective)
      out.beginObject()
          .field("section", entry.section)
          .field("key", entry.key)
          .field("value", entry.value)
          .field("reloadable", !entry.restart_only)
          .endObject();
    std::cout << std::move(out.endArray().endObject()).text() << "\n";
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
          "usage: mews-relay [-c FILE] check-config [--json]\n"
          "       mews-relay check-config --keys [--json]\n\n"
          "Loads and validates the configuration and prints every effective setting,\n"
          "defaults included. Tokens, signing secrets, header values and the query\n"
          "values of URLs are masked. Keys marked \"restart to change\" keep their\n"
          "running value at a reload (SIGHUP); every other key, targets included,\n"
          "changes with it. Exit 1 with the file, key and reason of every problem\n"
          "found. --keys prints every key the config takes (section, type and\n"
          "bounds, default, what it does) without reading a config.\n\n"
          "examples:\n  mews-relay -c /etc/mews-relay/mews-relay.ini check-config\n"
          "  mews-relay check-config --keys\n",
          runCheckConfig};
}

}  // namespace mews::cli
