// `migrate`: applies pending migrations to the journal and prints the version.
#include <fmt/format.h>
#include <filesystem>
#include <iostream>

#include "cli.h"
#include "config/config.h"
#include "journal/journal.h"
#include "journal/lock.h"
#include "journal/migrations.h"

namespace mews::cli {
namespace {

int runMigrate(const GlobalOptions& options, const std::vector<std::string>& args) {
  expectNoArguments(args);
  const config::Settings settings = config::loadSettings(options.config_path, config::Secrets::Optional);
  if (settings.journal.location().backend() == journal::Backend::Postgres) {
    // Each step under an advisory lock (journal/migrations.h): safe beside a running relay.
    journal::Journal journal(settings.journal.location(), {});
    std::cout << fmt::format("{}: schema version {}\n", journal.path(), journal::schemaVersion(journal.db()));
    return kExitOk;
  }
  const auto directory = std::filesystem::path(settings.journal.path).parent_path();
  if (!directory.empty()) std::filesystem::create_directories(directory);
  // A running relay migrated the journal at its start-up and is its only
  // writer: then only report. Otherwise take the lock and migrate.
  journal::JournalLock lock(settings.journal.path);
  if (!lock.held()) {
    journal::Journal reader(settings.journal.path, {0, true});
    std::cout << fmt::format("{}: schema version {} (a running relay holds it; nothing to apply)\n",
                             settings.journal.path, journal::schemaVersion(reader.db()));
    return kExitOk;
  }
  // Opening a writable journal applies what is pending (see journal/migrations.h).
  journal::Journal journal(settings.journal.path, {});
  std::cout << fmt::format("{}: schema version {}\n", settings.journal.path, journal::schemaVersion(journal.db()));
  return kExitOk;
}

}  // namespace

Command migrateCommand() {
  return {"migrate", "apply pending journal migrations and print the schema version",
          "usage: mews-relay [-c FILE] migrate\n\n"
          "Creates the journal if needed, applies the migrations built into this\n"
          "binary that it does not have yet, and prints its schema version.\n"
          "A journal newer than the binary is refused (exit 1).\n\n"
          "example:\n  mews-relay -c /etc/mews-relay/mews-relay.ini migrate\n",
          runMigrate};
}

}  // namespace mews::cli
