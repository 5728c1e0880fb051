// GET /metrics: the relay's Prometheus exposition, assembled from what each
// part records (ingest counters, journal commit histograms, per-target
// delivery outcomes) and, at scrape time, from the journal itself (queue depth,
// oldest pending age and dead letters per target) through a read-only
// connection opened for the scrape. Labels carry kinds, reasons, outcomes and
// target names only: never a token, secret or header value.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "delivery/engine.h"
#include "ingest/server.h"
#include "journal/writer.h"

namespace mews::relay {

struct MetricsSources {
  const config::Settings& settings;
  const ingest::IngestMetrics& ingest;
  const journal::WriterMetrics& writer;
  std::vector<delivery::TargetSnapshot> targets;
  std::int64_t now_ms = 0;
};

std::string renderMetrics(const MetricsSources& sources);

}  // namespace mews::relay
