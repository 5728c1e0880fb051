// GET /metrics: the relay's Prometheus exposition, assembled from what each
// part records (ingest counters, journal commit histograms, per-target
// delivery outcomes) and, at scrape time, from the journal itself (queue depth,
// oldest pending age and dead letters per target) through a read-only
// connection opened for the scrape. Labels carry kinds, reasons, outcomes and
// target names only: never a token, secret or header value.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "delivery/engine.h"
#include "ingest/server.h"
#include "journal/writer.h"
#include "relay/cluster.h"

namespace mews::relay {

struct MetricsSources {
  const config::Settings& settings;
  const ingest::IngestMetrics& ingest;
  const journal::WriterMetrics& writer;
  std::vector<delivery::TargetSnapshot> targets;
  std::int64_t now_ms = 0;
  // Several relays on one PostgreSQL journal (relay/cluster.h); null: one relay.
  const journal::HeldLeases* leases = nullptr;
  std::optional<ClusterView> cluster;
};

std::string renderMetrics(const MetricsSources& sources);

}  // namespace mews::relay
