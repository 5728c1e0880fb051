// Several relays on one PostgreSQL journal: this relay's part (the rules are
// journal/leases.h's). Two threads:
//   - the keeper, every kRenewEvery on its own connection: the heartbeat (its
//     relays row: name, host, version, targets, their fingerprint, admin
//     address, batches acknowledged in the last hour), then for each
//     configured target: renew the lease it holds, hand over one another live
//     relay should have (once the target's attempts in progress have ended),
//     or acquire one that is free (at once when this relay is the target's
//     preferred owner, kStandbyGrace after expiry otherwise);
//   - the guard, which never waits on the database: when a lease's local
//     validity ends without a renewal (the database cut off, or slow), it
//     drops the lease, and the engine stops dispatching the target and cuts
//     its attempts in progress (HeldLeases::onLost).
// Relays whose target definitions differ are named in a warning (once per
// change), and counted for /metrics and /readyz's detail; each target is
// dispatched with the definition of the relay that holds its lease.
// Not used for a SQLite journal: its lock file makes one relay the only one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "journal/leases.h"

namespace mews::relay {

struct ClusterView {
  std::size_t live_relays = 0;
  bool definitions_differ = false;  // among the live relays' target fingerprints
  std::string differing;            // "relay-a, relay-b": those whose fingerprint is not this relay's
};

// Returns once no other process named `name` (another `instance`; "" matches
// any) has beaten within kLiveWithin, waiting for a killed one's beat to go
// stale. Throws std::runtime_error, naming the relay and the journal, when one
// keeps beating (two relays given one name). Before the listeners open, so a
// load balancer sees no port that does not answer.
void awaitNameFree(journal::Journal& journal, const std::string& name, const std::string& instance);

class Cluster {
 public:
  struct Sources {
    const config::Settings& settings;
    std::string instance;  // random per process: the writer fences with leaseOwner(name, instance)
    journal::HeldLeases& held;
    std::string admin_address;
    // Whether the target has attempts in progress or claimed work (engine).
    std::function<bool(const std::string&)> target_busy;
    // Batches this relay acknowledged since it started (ingest metrics).
    std::function<std::uint64_t()> accepted_total;
    // A lease was acquired: the engine may arm attempts for the target again, and looks at it now.
    std::function<void(const std::string&)> on_acquired;
  };
  explicit Cluster(Sources sources);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Registers this relay (refusing, after waiting up to kLiveWithin for it to
  // go stale, when another live process has its name) and takes its first
  // leases, then starts both threads. Throws std::runtime_error.
  void start();
  // Stops both threads, then (the engine having stopped first) releases the
  // leases still held, so that the targets' next owners need not wait for
  // them to expire.
  void stop();
  // A reload: the targets to hold leases for from the next round on.
  void setTargets(const config::Settings& settings);
  [[nodiscard]] ClusterView view() const;
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  void keepLoop();
  void guardLoop();
  void round(journal::Journal& journal, bool starting);
  std::uint64_t acceptedLastHour();

  Sources sources_;
  const std::string name_;
  const std::string instance_;  // random: this process among relays of one name
  const std::string owner_;     // journal::leaseOwner(name_, instance_): on its leases and its writer's fence
  journal::JournalLocation location_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<std::string> targets_;  // configured: under mutex_
  std::string fingerprint_;           // of the configured targets: under mutex_
  ClusterView view_;                  // under mutex_
  std::string logged_differing_;
  std::string logged_failure_;
  bool logged_twin_ = false;
  // The acknowledged count sampled every minute, for the last hour's figure.
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>> samples_;
  std::thread keeper_;
  std::thread guard_;
};

}  // namespace mews::relay
