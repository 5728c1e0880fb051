// `status`: per target, what waits, what is in flight, what was delivered in
// the last 24 h, what is dead, the oldest waiting work, the circuit and the
// last error; then the journal's size and totals.
#include <fmt/format.h>
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "cli.h"
#include "cli_support.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/units.h"
#include "journal/operator.h"

namespace mews::cli {
namespace {

std::uint64_t journalBytes(const std::string& path) {
  std::uint64_t total = 0;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::error_code ignored;
    const auto size = std::filesystem::file_size(path + suffix, ignored);
    if (!ignored) total += size;
  }
  return total;
}

int runStatus(const GlobalOptions& options, const std::vector<std::string>& args) {
  const Flags flags(args, {}, {"--json"});
  expectNoArguments(flags.positionals());
  const config::Settings settings = config::loadSettings(options.config_path, config::Secrets::Optional);
  auto reader = openReader(settings);
  const std::int64_t now = SystemClock::instance().wallMillis();
  std::vector<std::string> names;
  for (const auto& target : settings.targets) names.push_back(target.name);
  auto targets = journal::targetStatus(reader, names, now);
  // A target removed from the configuration whose work still waits: shown, not hidden.
  std::vector<std::string> unknown;
  for (const auto& work : journal::unknownTargets(reader, names)) unknown.push_back(work.target);
  for (auto& status : journal::targetStatus(reader, unknown, now)) {
    status.circuit = "unknown target";
    targets.push_back(std::move(status));
  }
  auto configured = [&](const journal::TargetStatus& t) {
    return std::find(names.begin(), names.end(), t.target) != names.end();
  };
  const auto totals = journal::journalTotals(reader);
  const std::uint64_t bytes = journalBytes(settings.journal.path);
  auto oldestAge = [&](const journal::TargetStatus& t) -> std::optional<std::int64_t> {
    if (!t.oldest_pending_at) return std::nullopt;
    return now - parseIsoMillis(*t.oldest_pending_at).value_or(now);
  };

  if (flags.has("--json")) {
    std::string out = "{\"targets\":[";
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const auto& t = targets[i];
      const auto age = oldestAge(t);
      out += fmt::format(
          "{}{{\"target\":{},\"pending\":{},\"in_flight\":{},\"delivered_24h\":{},\"dead\":{},"
          "\"oldest_pending_age_s\":{},\"circuit\":{},\"last_error\":{},\"configured\":{}}}",
          i ? "," : "", json::quote(t.target), t.pending, t.in_flight, t.delivered_24h, t.dead,
          age ? std::to_string(*age / 1000) : "null", json::quote(configured(t) ? t.circuit : "unknown"),
          t.last_error ? json::quote(*t.last_error) : "null", configured(t));
    }
    out += fmt::format(
        "],\"journal\":{{\"path\":{},\"bytes\":{},\"schema_version\":{},\"batches\":{},\"events\":{},"
        "\"deliveries\":{},\"dead_letters\":{},\"unrouted_batches\":{}}}}}",
        json::quote(settings.journal.path), bytes, totals.schema_version, totals.batches, totals.events,
        totals.deliveries, totals.dead_letters, totals.unrouted_batches);
    std::cout << out << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : targets) {
    const auto age = oldestAge(t);
    rows.push_back({t.target, std::to_string(t.pending), std::to_string(t.in_flight), std::to_string(t.delivered_24h),
                    std::to_string(t.dead), age ? ageText(*age) : "-", t.circuit, t.last_error.value_or("-")});
  }
  printTable({"TARGET", "PENDING", "IN FLIGHT", "DELIVERED 24H", "DEAD", "OLDEST PENDING", "CIRCUIT", "LAST ERROR"},
             rows);
  for (const auto& name : unknown)
    std::cout << fmt::format(
        "\ntarget {0} is not in {1}; its work stays in the journal until you add [target.{0}] back, move it\n"
        "(mews-relay replay --from {0} --to TARGET) or delete it (mews-relay dlq purge --from {0})\n",
        name, settings.source_file);
  std::cout << fmt::format(
      "\njournal {}: {:.1f} MiB, schema {}; {} batches, {} events, {} deliveries, {} dead letters, {} unrouted\n",
      settings.journal.path, static_cast<double>(bytes) / (1024.0 * 1024.0), totals.schema_version, totals.batches,
      totals.events, totals.deliveries, totals.dead_letters, totals.unrouted_batches);
  return kExitOk;
}

}  // namespace

Command statusCommand() {
  return {"status", "per-target queue, circuit and last error; journal size and totals",
          "usage: mews-relay [-c FILE] status [--json]\n\n"
          "Per target: pending (waiting or due for retry), in flight, delivered in the\n"
          "last 24 h, dead, age of the oldest waiting work, circuit state, last error;\n"
          "a target no longer configured whose work still waits is listed as an\n"
          "\"unknown target\";\n"
          "then the journal's size and totals. Reads the journal read-only: safe while\n"
          "the relay runs.\n\n"
          "example:\n  mews-relay -c /etc/mews-relay/mews-relay.ini status\n",
          runStatus};
}

}  // namespace mews::cli
