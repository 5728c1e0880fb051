// `status`: per target, what waits, what is in flight, what was delivered in
// the last 24 h, what is dead, the oldest waiting work, the circuit and the
// last error; then the journal's size (journal::journalDiskBytes: the file,
// its WAL and its shared-memory index, as /metrics reports it) and totals.
#include <fmt/format.h>
#include <algorithm>
#include <iostream>
#include <map>
#include <set>

#include "cli.h"
#include "cli_support.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/text.h"
#include "common/units.h"
#include "journal/leases.h"
#include "journal/queue.h"
#include "journal/reports.h"

namespace mews::cli {
namespace {

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
  const std::uint64_t bytes = journal::journalSizeBytes(reader);
  // Several relays on one PostgreSQL journal: who runs, and who dispatches what.
  const bool cluster = reader.backend() == journal::Backend::Postgres;
  const auto relays = cluster ? journal::relays(reader) : std::vector<journal::RelayRow>{};
  std::map<std::string, std::string> owner_of;  // target -> relay, unexpired leases only
  for (const auto& lease : cluster ? journal::leases(reader) : std::vector<journal::LeaseRow>{})
    if (lease.expires_in_s > 0) owner_of[lease.target] = journal::ownerName(lease.owner);
  const auto ownerOf = [&](const std::string& target) -> std::optional<std::string> {
    const auto it = owner_of.find(target);
    if (it == owner_of.end()) return std::nullopt;
    return it->second;
  };
  const auto stateText = [](const journal::RelayRow& row) {
    return std::string(journal::relayStateName(journal::relayState(row)));
  };
  const auto dispatched = [&](const std::string& relay) {
    std::vector<std::string> targets_of;
    for (const auto& [target, owner] : owner_of)
      if (owner == relay) targets_of.push_back(target);
    return targets_of;
  };
  auto oldestAge = [&](const journal::TargetStatus& t) -> std::optional<std::int64_t> {
    if (!t.oldest_pending_at) return std::nullopt;
    return now - parseIsoMillis(*t.oldest_pending_at).value_or(now);
  };

  if (flags.has("--json")) {
    json::Writer out;
    out.beginObject().key("targets").beginArray();
    for (const auto& t : targets) {
      const auto age = oldestAge(t);
      out.beginObject()
          .field("target", t.target)
          .field("pending", t.pending)
          // Named like the delivery state it counts (journal/queue.h).
          .field(journal::stateName(journal::DeliveryState::InFlight), t.in_flight)
          .field("delivered_24h", t.delivered_24h)
          .field("dead", t.dead)
          .field("oldest_pending_age_s", age ? std::optional<std::int64_t>(*age / 1000) : std::nullopt)
          .field("circuit", configured(t) ? t.circuit : "unknown")
          .field("last_error", t.last_error)
          .field("configured", configured(t))
          .field("dispatched_by", ownerOf(t.target))
          .endObject();
    }
    out.endArray();
    if (cluster) {
      out.key("relays").beginArray();
      for (const auto& row : relays)
        out.beginObject()
            .field("name", row.relay.name)
            .field("state", stateText(row))
            .field("host", row.relay.host)
            .field("version", row.relay.version)
            .field("admin", row.relay.admin)
            .field("heartbeat_age_s", static_cast<std::int64_t>(row.heartbeat_age_s))
            .field("started_at", row.started_at)
            .field("accepted_last_hour", row.relay.accepted_hour)
            .field("targets_fingerprint", row.relay.fingerprint)
            .field("dispatches", dispatched(row.relay.name))
            .endObject();
      out.endArray();
    }
    out.key("journal")
        .beginObject()
        .field("path", reader.path())
        .field("bytes", bytes)
        .field("schema_version", totals.schema_version)
        .field("batches", totals.batches)
        .field("events", totals.events)
        .field("deliveries", totals.deliveries)
        .field("dead_letters", totals.dead_letters)
        .field("unrouted_batches", totals.unrouted_batches)
        .endObject()
        .endObject();
    std::cout << out.text() << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : targets) {
    const auto age = oldestAge(t);
    rows.push_back({t.target, std::to_string(t.pending), std::to_string(t.in_flight), std::to_string(t.delivered_24h),
                    std::to_string(t.dead), age ? ageText(*age) : "-", t.circuit, t.last_error.value_or("-")});
    if (cluster) rows.back().insert(rows.back().begin() + 1, ownerOf(t.target).value_or("-"));
  }
  std::vector<std::string> headers{"TARGET", "PENDING",        "IN FLIGHT", "DELIVERED 24H",
                                   "DEAD",   "OLDEST PENDING", "CIRCUIT",   "LAST ERROR"};
  if (cluster) headers.insert(headers.begin() + 1, "DISPATCHED BY");
  printTable(headers, rows);
  if (cluster) {
    std::vector<std::vector<std::string>> relay_rows;
    std::set<std::string> fingerprints;
    for (const auto& row : relays) {
      relay_rows.push_back({row.relay.name, stateText(row),
                            ageText(static_cast<std::int64_t>(row.heartbeat_age_s * 1000)), row.relay.version,
                            row.relay.host, row.relay.admin, std::to_string(row.relay.accepted_hour),
                            row.relay.fingerprint, text::joinList(dispatched(row.relay.name))});
      if (journal::relayState(row) == journal::RelayState::Live) fingerprints.insert(row.relay.fingerprint);
    }
    std::cout << "\n";
    printTable(
        {"RELAY", "STATE", "HEARTBEAT", "VERSION", "HOST", "ADMIN", "ACKED 1H", "TARGETS FINGERPRINT", "DISPATCHES"},
        relay_rows);
    if (fingerprints.size() > 1)
      std::cout << "\nthe live relays define their targets differently (TARGETS FINGERPRINT): each target is "
                   "dispatched with the definition of the relay that dispatches it\n";
  }
  for (const auto& name : unknown)
    std::cout << fmt::format(
        "\ntarget {0} is not in {1}; its work stays in the journal until you add [target.{0}] back, move it\n"
        "(mews-relay replay --from {0} --to TARGET) or delete it (mews-relay dlq purge --from {0})\n",
        name, settings.source_file);
  std::cout << fmt::format(
      "\njournal {}: {:.1f} MiB, schema {}; {} batches, {} events, {} deliveries, {} dead letters, {} unrouted\n",
      reader.path(), static_cast<double>(bytes) / (1024.0 * 1024.0), totals.schema_version, totals.batches,
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
          "then the journal's size and totals. On a PostgreSQL journal also which relay\n"
          "dispatches each target, and every relay: live, silent (no heartbeat for 6 s)\n"
          "or stopped, its heartbeat's age, version, host, admin address, batches it\n"
          "acknowledged in the last hour, the fingerprint of its target definitions and\n"
          "the targets it dispatches. Reads the journal read-only: safe while the relay\n"
          "runs.\n\n"
          "example:\n  mews-relay -c /etc/mews-relay/mews-relay.ini status\n",
          runStatus};
}

}  // namespace mews::cli
