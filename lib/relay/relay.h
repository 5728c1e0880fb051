// The serving process, assembled: the journal writer, the delivery engine and
// the public ingest listener and the admin listener. It holds the journal's
// lock (journal/lock.h) for its whole life: one writer per journal.
//
// Start order is journal first (a bad journal fails start-up before any port
// opens), then delivery (which releases work a previous process left in
// flight), listener last. The operator's credential (admin/credential.h) is
// written before the admin address is published in the lock file, so a CLI
// that finds the address finds the credential. Stop order is the reverse: stop accepting and let the
// requests in progress commit, let attempts in progress finish and be
// recorded, then drain and close the writer.
//
// Reload (SIGHUP, see app/cmd_serve.cpp): a configuration that loaded without
// error replaces the running one where it can change at runtime — tokens, path,
// max_body, targets (added, changed, removed) with their filters and timeouts,
// retention — with no connection or attempt dropped (each keeps the version it
// started with). Keys config::restartOnly() names keep their running value and
// are named in a warning. At start and at every reload, a warning names each
// target that is not configured but still has work in the journal.
#pragma once

#include <memory>

#include "admin/admin_server.h"
#include "auth/credential.h"
#include "common/clock.h"
#include "config/config.h"
#include "console/console.h"
#include "delivery/engine.h"
#include "ingest/server.h"
#include "journal/lock.h"
#include "journal/writer.h"
#include "relay/cluster.h"

namespace mews::relay {

class Relay {
 public:
  explicit Relay(config::Settings settings, const Clock& clock = SystemClock::instance());
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  void start();
  void stop();
  // `next` loaded and validated; see the header.
  void reload(const config::Settings& next);

  [[nodiscard]] std::uint16_t ingestPort() const { return ingest_->port(); }
  [[nodiscard]] const config::Settings& settings() const { return settings_; }
  [[nodiscard]] journal::JournalWriter& writer() { return *writer_; }
  [[nodiscard]] const ingest::IngestMetrics& ingestMetrics() const { return ingest_->metrics(); }
  [[nodiscard]] delivery::DeliveryEngine& delivery() { return *delivery_; }
  [[nodiscard]] std::string adminAddress() const { return admin_->address(); }
  // Several relays on one PostgreSQL journal; null on SQLite.
  [[nodiscard]] const Cluster* cluster() const { return cluster_.get(); }

 private:
  void warnAboutUnknownTargets(const std::vector<config::TargetSettings>& targets) const;

  config::Settings settings_;  // as started: what restart-only keys still hold
  std::unique_ptr<journal::JournalLock> lock_;
  std::unique_ptr<auth::CredentialFile> credential_;  // removed at stop, before the lock is released
  std::unique_ptr<journal::JournalWriter> writer_;
  std::unique_ptr<journal::HeldLeases> leases_;  // PostgreSQL: this relay's leases (cluster.h)
  std::unique_ptr<delivery::DeliveryEngine> delivery_;
  std::unique_ptr<ingest::IngestServer> ingest_;
  std::shared_ptr<console::Console> console_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::unique_ptr<Cluster> cluster_;  // PostgreSQL only; stopped after delivery_, destroyed first
  bool stopped_ = false;
};

}  // namespace mews::relay
