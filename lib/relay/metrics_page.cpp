#include "relay/metrics_page.h"

#include "common/clock.h"
#include "common/log.h"
#include "journal/reports.h"
#include "journal/queue.h"
#include "journal/records.h"
#include "metrics/metrics.h"

namespace mews::relay {

namespace {

using metrics::Exposition;

void ingestFamilies(Exposition& out, const ingest::IngestMetrics& ingest) {
  constexpr journal::BatchKind kKinds[] = {journal::BatchKind::General, journal::BatchKind::Integration,
                                           journal::BatchKind::Unknown};
  out.family("mews_relay_batches_received_total", "counter", "Batches acknowledged (202) by kind.");
  for (const auto kind : kKinds)
    out.sample("mews_relay_batches_received_total", {{"kind", journal::kindName(kind)}},
               static_cast<double>(ingest.batches[static_cast<std::size_t>(kind)].value()));
  out.family("mews_relay_events_received_total", "counter", "Events in acknowledged batches by kind.");
  for (const auto kind : kKinds)
    out.sample("mews_relay_events_received_total", {{"kind", journal::kindName(kind)}},
               static_cast<double>(ingest.events[static_cast<std::size_t>(kind)].value()));
  out.family("mews_relay_batches_unrouted_total", "counter",
             "Batches acknowledged and journaled that no target wanted (property or event filters), by kind.");
  for (const auto kind : kKinds)
    out.sample("mews_relay_batches_unrouted_total", {{"kind", journal::kindName(kind)}},
               static_cast<double>(ingest.unrouted[static_cast<std::size_t>(kind)].value()));
  out.family("mews_relay_resends_recognised_total", "counter",
             "Posts byte-identical to a batch committed after a 503, answered 202 with its id; nothing stored.");
  out.sample("mews_relay_resends_recognised_total", {}, static_cast<double>(ingest.resends.value()));
  out.family("mews_relay_requests_rejected_total", "counter", "Requests not acknowledged, by reason.");
  for (std::size_t i = 0; i < ingest::kRejectionCount; ++i)
    out.sample("mews_relay_requests_rejected_total",
               {{"reason", ingest::rejectionName(static_cast<ingest::Rejection>(i))}},
               static_cast<double>(ingest.rejected[i].value()));
}

void journalSizeFamily(Exposition& out, std::uint64_t bytes) {
  out.family("mews_relay_journal_size_bytes", "gauge",
             "What the journal takes: the SQLite file, its write-ahead log and shared-memory index; or the "
             "PostgreSQL journal's tables and indexes.");
  out.sample("mews_relay_journal_size_bytes", {}, static_cast<double>(bytes));
}

void journalFamilies(Exposition& out, const journal::WriterMetrics& writer, const journal::JournalLocation& location) {
  out.family("mews_relay_journal_commit_duration_seconds", "histogram",
             "Time spent in COMMIT (the WAL fsync) per group commit.");
  out.histogram("mews_relay_journal_commit_duration_seconds", {}, writer.commit_seconds.snapshot());
  out.family("mews_relay_journal_commit_group_jobs", "histogram", "Writes (batches, attempt records) per commit.");
  out.histogram("mews_relay_journal_commit_group_jobs", {}, writer.group_size.snapshot());
  out.family("mews_relay_journal_failed_commits_total", "counter",
             "Groups that failed as a whole (disk full, I/O error, below min_free): nothing in them acknowledged.");
  out.sample("mews_relay_journal_failed_commits_total", {}, static_cast<double>(writer.failed_groups.value()));
  out.family("mews_relay_journal_file_faults_total", "counter",
             "SQLite: journal files or its lock found removed, renamed or replaced under the relay; PostgreSQL: "
             "the connection to the server lost (see the log).");
  out.sample("mews_relay_journal_file_faults_total", {}, static_cast<double>(writer.file_faults.value()));

  // PostgreSQL: the size is read with the queue figures (queueFamilies); the
  // server's disk is the server's to report.
  if (location.backend() != journal::Backend::Sqlite) return;
  const std::string& path = location.path;
  journalSizeFamily(out, journal::journalDiskBytes(path));
  if (const auto free_bytes = journal::freeDiskBytes(path)) {
    out.family("mews_relay_journal_disk_free_bytes", "gauge", "Free disk where the journal lives (see min_free).");
    out.sample("mews_relay_journal_disk_free_bytes", {}, static_cast<double>(*free_bytes));
  }
}

void deliveryFamilies(Exposition& out, const std::vector<delivery::TargetSnapshot>& targets) {
  out.family("mews_relay_deliveries_total", "counter", "Delivery attempts recorded, by target and outcome.");
  for (const auto& target : targets)
    for (std::size_t i = 0; i < journal::kAttemptOutcomeCount; ++i)
      out.sample("mews_relay_deliveries_total",
                 {{"target", target.name}, {"outcome", journal::outcomeName(static_cast<journal::AttemptOutcome>(i))}},
                 static_cast<double>(target.metrics->outcomes[i].value()));
  out.family("mews_relay_delivery_attempt_duration_seconds", "histogram",
             "Duration of one delivery attempt (redirects included), by target.");
  for (const auto& target : targets)
    out.histogram("mews_relay_delivery_attempt_duration_seconds", {{"target", target.name}},
                  target.metrics->attempt_seconds.snapshot());
  constexpr delivery::CircuitState kStates[] = {delivery::CircuitState::Closed, delivery::CircuitState::HalfOpen,
                                                delivery::CircuitState::Open};
  out.family("mews_relay_circuit_state", "gauge", "1 for the target's current circuit state, 0 for the others.");
  for (const auto& target : targets)
    for (const auto state : kStates)
      out.sample("mews_relay_circuit_state", {{"target", target.name}, {"state", delivery::circuitName(state)}},
                 target.circuit == state ? 1 : 0);
}

// Several relays on one journal: what this one dispatches, and who it sees.
void clusterFamilies(Exposition& out, const MetricsSources& sources) {
  if (!sources.leases || !sources.cluster) return;
  out.family("mews_relay_target_dispatched_here", "gauge",
             "1 when this relay holds the target's lease and dispatches it, 0 when another relay does.");
  for (const auto& target : sources.targets)
    out.sample("mews_relay_target_dispatched_here", {{"target", target.name}},
               sources.leases->mayDispatch(target.name) ? 1 : 0);
  out.family("mews_relay_cluster_relays", "gauge", "Relays with a fresh heartbeat on this journal, this one included.");
  out.sample("mews_relay_cluster_relays", {}, static_cast<double>(sources.cluster->live_relays));
  out.family("mews_relay_cluster_definitions_differ", "gauge",
             "1 when a live relay on this journal defines its targets differently from this one.");
  out.sample("mews_relay_cluster_definitions_differ", {}, sources.cluster->definitions_differ ? 1 : 0);
}

// What only the journal knows; false when it could not be read.
bool queueFamilies(Exposition& out, const MetricsSources& sources) {
  std::vector<std::string> names;
  for (const auto& target : sources.targets) names.push_back(target.name);
  std::vector<journal::TargetStatus> statuses;
  std::vector<journal::UnknownTargetWork> unknown;
  try {
    journal::Journal reader(sources.settings.journal.location(), journal::JournalOptions{0, true});
    statuses = journal::targetStatus(reader, names, sources.now_ms);
    unknown = journal::unknownTargets(reader, names);
    if (reader.backend() != journal::Backend::Sqlite) journalSizeFamily(out, journal::journalSizeBytes(reader));
  } catch (const std::exception& e) {
    log::warn("admin", "metrics: cannot read the journal", {{"error", e.what()}});
    return false;
  }
  out.family("mews_relay_queue_depth", "gauge", "Deliveries waiting (pending or waiting for a retry), by target.");
  for (const auto& status : statuses)
    out.sample("mews_relay_queue_depth", {{"target", status.target}}, static_cast<double>(status.pending));
  out.family("mews_relay_deliveries_in_flight", "gauge", "Deliveries claimed by the workers, by target.");
  for (const auto& status : statuses)
    out.sample("mews_relay_deliveries_in_flight", {{"target", status.target}}, static_cast<double>(status.in_flight));
  out.family("mews_relay_oldest_pending_age_seconds", "gauge",
             "Age of the oldest undelivered delivery (0 when none), by target.");
  for (const auto& status : statuses) {
    const auto oldest = status.oldest_pending_at ? parseIsoMillis(*status.oldest_pending_at) : std::nullopt;
    const double age = oldest ? std::max<double>(0, static_cast<double>(sources.now_ms - *oldest) / 1000.0) : 0;
    out.sample("mews_relay_oldest_pending_age_seconds", {{"target", status.target}}, age);
  }
  out.family("mews_relay_dead_letters", "gauge", "Deliveries in the dead letters now, by target.");
  for (const auto& status : statuses)
    out.sample("mews_relay_dead_letters", {{"target", status.target}}, static_cast<double>(status.dead));
  out.family("mews_relay_unknown_target_deliveries", "gauge",
             "Undelivered deliveries (waiting, in flight or dead) of a target that is no longer configured.");
  for (const auto& work : unknown)
    out.sample("mews_relay_unknown_target_deliveries", {{"target", work.target}},
               static_cast<double>(work.waiting + work.in_flight + work.dead));
  return true;
}

}  // namespace

std::string renderMetrics(const MetricsSources& sources) {
  Exposition out;
  out.family("mews_relay_build_info", "gauge", "The running version.");
  out.sample("mews_relay_build_info", {{"version", MEWS_RELAY_VERSION}}, 1);
  ingestFamilies(out, sources.ingest);
  journalFamilies(out, sources.writer, sources.settings.journal.location());
  deliveryFamilies(out, sources.targets);
  clusterFamilies(out, sources);
  const bool readable = queueFamilies(out, sources);
  out.family("mews_relay_journal_readable", "gauge", "1 when the scrape could read the journal's queue figures.");
  out.sample("mews_relay_journal_readable", {}, readable ? 1 : 0);
  return out.text();
}

}  // namespace mews::relay
