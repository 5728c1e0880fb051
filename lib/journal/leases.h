// Several relays on one PostgreSQL journal: who dispatches which target.
//
// Every relay ingests: each answers 202 after its own COMMIT, as on one box.
// Delivery to a target is done by one relay at a time, the holder of the
// target's lease, so that the target's order, `concurrency`, circuit and
// probe behave as on one box. A lease is a row of target_leases (owner,
// epoch, expires_at; migrations/postgresql/0002_cluster.sql):
//
//   - acquired when free or expired (INSERT ... ON CONFLICT DO UPDATE ...
//     WHERE expires_at < clock_timestamp()), which adds 1 to its epoch: the
//     fencing number. In the same transaction the target's in_flight rows go
//     back to pending: they were the previous owner's claims (the previous
//     owner's process, or this relay's before a restart);
//   - renewed by its owner every kRenewEvery (expires_at = clock_timestamp()
//     + kLeaseTtl), only while owner and epoch still match;
//   - released by its owner when another live relay should have the target
//     (handed over once the target's attempts in progress have ended), and at
//     a clean stop.
//
// Fencing, in the database: a relay's claims, attempt records and releases
// (journal/queue.h) run with its name as the journal's fence owner
// (JournalOptions::fence_owner). A claim succeeds only while the relay holds
// an unexpired lease of the row's target, and stamps the row with the lease's
// epoch (deliveries.claim); a record or a release changes a row only while
// that epoch is still the relay's lease's. So a relay that lost a lease can
// neither claim that target's work nor overwrite what the new owner did.
//
// Fencing, in time: lease times are the database server's clock; a relay's
// own view is its monotonic clock. It counts a lease as held until the time it
// SENT its last successful renewal (or acquisition) + kLeaseTtl -
// kLeaseMargin. The database cannot expire the lease before that renewal's
// COMMIT + kLeaseTtl, which is later, so a relay cut off from the database
// stops dispatching the target, and cuts its attempts in progress (delivery/
// deadline.h cutGroupBy: abandoned, released), at least kLeaseMargin before
// another relay can take the lease over. Clocks need not agree; only their
// rates must (a few ppm).
//
// Takeover: the lease expires at most kLeaseTtl after the owner's last
// renewal; relays look every kRenewEvery, and one that is not the target's
// preferred owner waits kStandbyGrace more (so that the preferred one wins
// without a race): within kLeaseTtl + kRenewEvery + kStandbyGrace = 9 s.
//
// Spread: a target's preferred owner is the live relay with the highest
// rendezvous hash of (target, relay name): every relay computes the same
// answer from the relays table without talking to the others, and a relay
// that joins or leaves moves only the targets it wins or held.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "journal/journal.h"

namespace mews::journal {

inline constexpr std::chrono::milliseconds kLeaseTtl{6'000};
inline constexpr std::chrono::milliseconds kLeaseMargin{2'000};
inline constexpr std::chrono::milliseconds kRenewEvery{1'000};
inline constexpr std::chrono::milliseconds kStandbyGrace{2'000};
// A relay whose heartbeat is older than this is not live (not preferred).
inline constexpr std::chrono::milliseconds kLiveWithin{6'000};

// The leases this relay holds, as its own clock sees them. Written by the
// lease keeper (relay/cluster.h), read by the delivery engine on every pass
// and before every attempt. Thread-safe.
class HeldLeases {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;
  // Whether the relay may dispatch `target` now: held, not being handed over,
  // and its local validity not passed.
  [[nodiscard]] bool mayDispatch(const std::string& target) const;
  [[nodiscard]] std::optional<std::int64_t> epoch(const std::string& target) const;
  [[nodiscard]] std::vector<std::string> targets() const;
  // The earliest local validity end, if any lease is held.
  [[nodiscard]] std::optional<SteadyTime> earliestEnd() const;

  void hold(const std::string& target, std::int64_t epoch, SteadyTime valid_until);
  // Dispatch stops; the lease is kept (renewed) until the keeper releases it.
  void handOver(const std::string& target);
  [[nodiscard]] bool handingOver(const std::string& target) const;
  // Gone (lost, expired locally, or released): `on_lost` is called with the
  // target (outside the lock) so that the engine cuts its attempts.
  void drop(const std::string& target);
  // Drops every lease whose validity ended by `now`; returns them.
  std::vector<std::string> dropExpired(SteadyTime now);
  void onLost(std::function<void(const std::string&)> callback);

 private:
  struct Held {
    std::int64_t epoch = 0;
    SteadyTime valid_until;
    bool handing_over = false;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Held> held_;
  std::function<void(const std::string&)> on_lost_;
};

// One relay as it registers itself (relays table).
struct RelayRecord {
  std::string name;
  std::string instance;  // random per process; empty once it stopped cleanly
  std::string host;
  std::string version;
  std::string targets;             // the configured target names, comma-separated
  std::string fingerprint;         // of its target definitions (config.h targetsFingerprint)
  std::string admin;               // its admin listener, host:port
  std::int64_t accepted_hour = 0;  // batches it acknowledged in the last hour
};

struct RelayRow {
  RelayRecord relay;
  double heartbeat_age_s = 0;
  double up_s = 0;  // since it (re)started
  std::string started_at;
};

// live: a heartbeat within kLiveWithin; silent: none since (killed, cut off);
// stopped: stopped cleanly (markStopped). The one rule for status, the
// console and the keeper.
enum class RelayState { Live, Silent, Stopped };
RelayState relayState(const RelayRow& row);
std::string_view relayStateName(RelayState state);  // live, silent, stopped

struct LeaseRow {
  std::string target;
  std::string owner;  // leaseOwner(): name/instance
  std::int64_t epoch = 0;
  double expires_in_s = 0;  // negative: expired
};

// The lease keeper's own session (PostgreSQL): the server's short keepalives
// (postgres.h), and bounded waits: a lease row locked by a vanished relay's
// open transaction fails a statement after 500 ms (tried again at the next
// round) instead of holding the round back, and the server ends a
// transaction of ours left idle for 5 s.
std::unique_ptr<Journal> openLeaseSession(const JournalLocation& location);

// The statements below are PostgreSQL's (target_leases and relays exist
// there only); each runs in its own transaction on the given connection.
void heartbeat(Journal& journal, const RelayRecord& relay, bool starting);
// A clean stop: the row stays (status shows when it last beat), marked
// stopped (instance ''), so that the same relay starting again need not wait.
void markStopped(Journal& journal, const std::string& name, const std::string& instance);
// How long ago another running process (another instance) of a relay named `name`
// last beat; nullopt when none did, or this instance owns the row.
std::optional<std::chrono::milliseconds> otherInstanceAge(Journal& journal, const std::string& name,
                                                          const std::string& instance);
// The lease's new epoch when acquired; nullopt when another relay holds it
// (unexpired, or expired less than `expired_for` ago).
std::optional<std::int64_t> acquireLease(Journal& journal, const std::string& target, const std::string& owner,
                                         std::chrono::milliseconds expired_for, std::int64_t now_ms);
// False when the lease is no longer this owner's at this epoch.
bool renewLease(Journal& journal, const std::string& target, const std::string& owner, std::int64_t epoch);
void releaseLease(Journal& journal, const std::string& target, const std::string& owner, std::int64_t epoch);

std::vector<RelayRow> relays(Journal& reader);
std::vector<LeaseRow> leases(Journal& reader);

// A lease's owner is one process: "name/instance" (leaseOwner), so that two
// processes given one name (a cloned host, a frozen one that wakes up) never
// pass each other's fence. ownerName() is the name shown to operators.
std::string leaseOwner(const std::string& name, const std::string& instance);
std::string ownerName(const std::string& owner);

// The preferred owner of `target` among `live` relay names (rendezvous hash);
// empty when none is live.
std::string preferredOwner(const std::string& target, const std::vector<std::string>& live);

}  // namespace mews::journal
