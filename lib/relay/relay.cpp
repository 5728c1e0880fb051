#include "relay/relay.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <filesystem>
#include <thread>

#include "auth/secrets.h"
#include "common/log.h"
#include "common/text.h"
#include "common/url.h"
#include "journal/leases.h"
#include "journal/queue.h"
#include "journal/reports.h"
#include "relay/metrics_page.h"

namespace mews::relay {

namespace {

journal::WriterOptions writerOptions(const config::Settings& settings, journal::JournalLock* lock,
                                     const std::string& instance) {
  journal::WriterOptions options;
  options.lock = lock;
  options.path = settings.journal.path;
  options.url = settings.journal.url;
  options.journal.max_size_bytes = settings.journal.max_size;
  // Several relays on one PostgreSQL journal: claims and records fenced by
  // this relay's leases (journal/leases.h).
  if (settings.journal.location().backend() == journal::Backend::Postgres)
    options.journal.fence_owner = journal::leaseOwner(settings.relay.name, instance);
  options.min_free_bytes = settings.journal.min_free;
  return options;
}

}  // namespace

Relay::Relay(config::Settings settings, const Clock& clock) : settings_(std::move(settings)) {
  // A SQLite journal is locked by a file beside it; a PostgreSQL one may be
  // served by several relays, which share its targets by lease (cluster.h).
  const bool sqlite = settings_.journal.location().backend() == journal::Backend::Sqlite;
  if (sqlite) {
    const auto directory = std::filesystem::path(settings_.journal.path).parent_path();
    if (!directory.empty()) std::filesystem::create_directories(directory);
    lock_ = std::make_unique<journal::JournalLock>(settings_.journal.path);
    if (!lock_->held())
      throw std::runtime_error("journal " + settings_.journal.path + " is in use by another process (" + lock_->path() +
                               " is locked): is mews-relay already serving it?");
  }
  const std::string instance = auth::randomHex(8);  // this process, among relays of one name (cluster.h)
  writer_ = std::make_unique<journal::JournalWriter>(writerOptions(settings_, lock_.get(), instance));
  if (!sqlite) {
    leases_ = std::make_unique<journal::HeldLeases>();
    journal::Journal journal(settings_.journal.location(), {});
    awaitNameFree(journal, settings_.relay.name, "");
  }
  delivery_ = std::make_unique<delivery::DeliveryEngine>(settings_, *writer_, clock, leases_.get());
  ingest_ = std::make_unique<ingest::IngestServer>(settings_, *writer_, clock,
                                                   [engine = delivery_.get()] { engine->wake(); });
  credential_ = std::make_unique<auth::CredentialFile>(sqlite ? settings_.journal.path : std::string());
  console_ = std::make_shared<console::Console>(
      console::ConsoleSources{settings_, *writer_, clock, [engine = delivery_.get()] { engine->wake(); },
                              &ingest_->metrics(), [engine = delivery_.get()] { return engine->targets(); }});
  admin_ = std::make_unique<admin::AdminServer>(
      settings_, *writer_, clock, credential_->value(), [engine = delivery_.get()] { engine->wake(); },
      [this, &clock] {
        return renderMetrics({settings_, ingest_->metrics(), writer_->metrics(), delivery_->targets(),
                              clock.wallMillis(), leases_.get(),
                              cluster_ ? std::optional(cluster_->view()) : std::nullopt});
      },
      console_);
  if (leases_) {
    const auto& ingest_metrics = ingest_->metrics();
    cluster_ = std::make_unique<Cluster>(
        Cluster::Sources{settings_, instance, *leases_, admin_->address(),
                         [engine = delivery_.get()](const std::string& target) { return engine->busy(target); },
                         [&ingest_metrics] {
                           std::uint64_t total = 0;
                           for (const auto& kind : ingest_metrics.batches) total += kind.value();
                           return total;
                         },
                         [engine = delivery_.get()](const std::string& target) { engine->leaseAcquired(target); }});
    admin_->setReadyWarning([cluster = cluster_.get()]() -> std::optional<std::string> {
      const auto view = cluster->view();
      if (!view.definitions_differ) return std::nullopt;
      return "relays define their targets differently (" + view.differing +
             "): each target is dispatched with the definition of the relay that holds its lease";
    });
  }
  // The CLI reads where to send its changes, and whether that listener speaks TLS.
  if (lock_) lock_->publish("admin=" + admin_->address() + "\n" + (admin_->tls() ? "admin_scheme=https\n" : ""));
}

Relay::~Relay() {
  stop();
}

void Relay::start() {
#ifdef MEWS_RELAY_UNSAFE_ACK_BEFORE_COMMIT
  log::error("relay", "UNSAFE BUILD: batches are acknowledged before they are committed (chaos negative control)");
#endif
  if (cluster_) cluster_->start();
  delivery_->start();
  console_->start();
  admin_->start();
  ingest_->start();
  log::info("relay", "serving",
            {{"version", MEWS_RELAY_VERSION},
             {"listen", settings_.server.listen},
             {"tls", settings_.server.tls_certificate.empty() ? "off" : "on"},
             {"port", std::to_string(ingest_->port())},
             {"path", settings_.server.path},
             {"admin", admin_->address()},
             {"journal", settings_.journal.location().display()},
             {"relay", settings_.relay.name},
             {"targets", std::to_string(settings_.targets.size())}});
  for (const auto& target : settings_.targets)
    log::info("relay", "target",
              {{"name", target.name},
               {"url", maskUrl(target.url)},
               {"mode", target.mode == config::DeliveryMode::Batch ? "batch" : "event"},
               {"events", target.acceptsAllEvents() ? "*" : text::joinList(target.events)}});
  warnAboutUnknownTargets(settings_.targets);
}

void Relay::reload(const config::Settings& next) {
  // Restart-only keys keep their running value: each changed one is named.
  std::vector<std::string> waiting;
  for (const auto& entry : next.effective) {
    if (!entry.restart_only) continue;
    const auto running = std::find_if(settings_.effective.begin(), settings_.effective.end(),
                                      [&](const auto& e) { return e.section == entry.section && e.key == entry.key; });
    if (running != settings_.effective.end() && running->value != entry.value)
      waiting.push_back(fmt::format("[{}] {}", entry.section, entry.key));
  }
  ingest_->reconfigure(next);
  delivery_->reconfigure(next);
  if (cluster_) cluster_->setTargets(next);
  std::vector<std::string> names;
  for (const auto& target : next.targets) names.push_back(target.name);
  admin_->setTargets(names);
  log::info("relay", "configuration reloaded",
            {{"file", next.source_file},
             {"tokens", std::to_string(next.server.tokens.size())},
             {"targets", text::joinList(names)}});
  if (!waiting.empty())
    log::warn("relay", "changed settings that take effect only after a restart; their running values stay",
              {{"settings", fmt::format("{}", fmt::join(waiting, ", "))}});
  warnAboutUnknownTargets(next.targets);
}

void Relay::warnAboutUnknownTargets(const std::vector<config::TargetSettings>& targets) const {
  std::vector<std::string> names;
  for (const auto& target : targets) names.push_back(target.name);
  try {
    journal::Journal reader(settings_.journal.location(), journal::JournalOptions{0, true});
    for (const auto& work : journal::unknownTargets(reader, names))
      log::warn("relay", "work for a target that is not configured waits in the journal",
                {{"target", work.target},
                 {"waiting", std::to_string(work.waiting)},
                 {std::string(journal::stateName(journal::DeliveryState::InFlight)), std::to_string(work.in_flight)},
                 {std::string(journal::stateName(journal::DeliveryState::Dead)), std::to_string(work.dead)},
                 {"what_to_do", fmt::format("add [target.{0}] back, or: replay --from {0} --to TARGET, or: dlq purge "
                                            "--from {0}",
                                            work.target)}});
  } catch (const std::exception& e) {
    log::warn("relay", "cannot read the journal for work of unknown targets", {{"error", e.what()}});
  }
}

void Relay::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (const auto unready = settings_.admin.unready_before_stop; unready.count() > 0) {
    // Not ready first, still serving: a load balancer stops sending here
    // before the listeners close.
    admin_->sayStopping();
    log::info("relay", "not ready: stopping", {{"in_ms", std::to_string(unready.count())}});
    std::this_thread::sleep_for(unready);
  }
  ingest_->stop();
  admin_->stop();
  credential_.reset();
  console_->stop();
  delivery_->stop();
  if (cluster_) cluster_->stop();
  writer_->stop();
  const auto stats = writer_->stats();
  log::info("relay", "stopped",
            {{"commits", std::to_string(stats.commits)},
             {"jobs_committed", std::to_string(stats.jobs_committed)},
             {"jobs_failed", std::to_string(stats.jobs_failed)},
             {"apply_ms", std::to_string(stats.apply_micros / 1000)},
             {"commit_ms", std::to_string(stats.commit_micros / 1000)}});
}

}  // namespace mews::relay
