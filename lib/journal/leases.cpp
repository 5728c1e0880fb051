#include "journal/leases.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/clock.h"
#include "journal/queue.h"

namespace mews::journal {

// --- HeldLeases ----------------------------------------------------------------

bool HeldLeases::mayDispatch(const std::string& target) const {
  const std::lock_guard lock(mutex_);
  const auto it = held_.find(target);
  return it != held_.end() && !it->second.handing_over && std::chrono::steady_clock::now() < it->second.valid_until;
}

std::optional<std::int64_t> HeldLeases::epoch(const std::string& target) const {
  const std::lock_guard lock(mutex_);
  const auto it = held_.find(target);
  if (it == held_.end()) return std::nullopt;
  return it->second.epoch;
}

std::vector<std::string> HeldLeases::targets() const {
  const std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [target, held] : held_) out.push_back(target);
  return out;
}

std::optional<HeldLeases::SteadyTime> HeldLeases::earliestEnd() const {
  const std::lock_guard lock(mutex_);
  std::optional<SteadyTime> earliest;
  for (const auto& [target, held] : held_)
    if (!earliest || held.valid_until < *earliest) earliest = held.valid_until;
  return earliest;
}

void HeldLeases::hold(const std::string& target, std::int64_t epoch, SteadyTime valid_until) {
  const std::lock_guard lock(mutex_);
  auto& held = held_[target];
  held.epoch = epoch;
  held.valid_until = valid_until;
}

void HeldLeases::handOver(const std::string& target) {
  const std::lock_guard lock(mutex_);
  if (const auto it = held_.find(target); it != held_.end()) it->second.handing_over = true;
}

bool HeldLeases::handingOver(const std::string& target) const {
  const std::lock_guard lock(mutex_);
  const auto it = held_.find(target);
  return it != held_.end() && it->second.handing_over;
}

void HeldLeases::drop(const std::string& target) {
  std::function<void(const std::string&)> callback;
  {
    const std::lock_guard lock(mutex_);
    if (held_.erase(target) == 0) return;
    callback = on_lost_;
  }
  if (callback) callback(target);
}

std::vector<std::string> HeldLeases::dropExpired(SteadyTime now) {
  std::vector<std::string> expired;
  {
    const std::lock_guard lock(mutex_);
    for (const auto& [target, held] : held_)
      if (held.valid_until <= now) expired.push_back(target);
  }
  for (const auto& target : expired) drop(target);
  return expired;
}

void HeldLeases::onLost(std::function<void(const std::string&)> callback) {
  const std::lock_guard lock(mutex_);
  on_lost_ = std::move(callback);
}

// --- the statements --------------------------------------------------------------

namespace {

// The lease's and heartbeat's times: the database server's clock.
constexpr const char* kTtl = "? * interval '1 millisecond'";

}  // namespace

std::unique_ptr<Journal> openLeaseSession(const JournalLocation& location) {
  JournalOptions options;
  options.serving = true;
  auto journal = std::make_unique<Journal>(location, options);
  journal->db().exec("SET lock_timeout = '500ms'; SET idle_in_transaction_session_timeout = '5s'");
  return journal;
}

void heartbeat(Journal& journal, const RelayRecord& relay, bool starting) {
  Transaction transaction(journal.db());
  static const std::string upsert =
      "INSERT INTO relays (name, host, version, targets, fingerprint, admin, accepted_hour, instance, started_at,"
      " heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, clock_timestamp(), clock_timestamp())"
      " ON CONFLICT (name) DO UPDATE SET instance = excluded.instance, host = excluded.host, version = "
      "excluded.version,"
      " targets = excluded.targets, fingerprint = excluded.fingerprint, admin = excluded.admin,"
      " accepted_hour = excluded.accepted_hour, heartbeat_at = excluded.heartbeat_at,"
      " started_at = CASE WHEN ? = 1 THEN excluded.started_at ELSE relays.started_at END";
  journal.db()
      .cached(upsert)
      .bind(1, relay.name)
      .bind(2, relay.host)
      .bind(3, relay.version)
      .bind(4, relay.targets)
      .bind(5, relay.fingerprint)
      .bind(6, relay.admin)
      .bind(7, relay.accepted_hour)
      .bind(8, relay.instance)
      .bind(9, static_cast<std::int64_t>(starting ? 1 : 0))
      .run();
  transaction.commit();
}

void markStopped(Journal& journal, const std::string& name, const std::string& instance) {
  Transaction transaction(journal.db());
  journal.db()
      .prepare("UPDATE relays SET instance = '' WHERE name = ? AND instance = ?")
      .bind(1, name)
      .bind(2, instance)
      .run();
  transaction.commit();
}

std::optional<std::chrono::milliseconds> otherInstanceAge(Journal& journal, const std::string& name,
                                                          const std::string& instance) {
  Statement select(journal.db(),
                   "SELECT CAST(EXTRACT(EPOCH FROM (clock_timestamp() - heartbeat_at)) * 1000 AS BIGINT)"
                   " FROM relays WHERE name = ? AND instance <> ? AND instance <> ''");
  select.bind(1, name).bind(2, instance);
  if (!select.step()) return std::nullopt;
  return std::chrono::milliseconds(select.columnInt(0));
}

std::optional<std::int64_t> acquireLease(Journal& journal, const std::string& target, const std::string& owner,
                                         std::chrono::milliseconds expired_for, std::int64_t now_ms) {
  static const std::string acquire = fmt::format(
      "INSERT INTO target_leases (target, owner, epoch, expires_at) VALUES (?1, ?2, 1, clock_timestamp() + {0})"
      " ON CONFLICT (target) DO UPDATE SET owner = excluded.owner, epoch = target_leases.epoch + 1,"
      " expires_at = excluded.expires_at"
      " WHERE target_leases.owner = excluded.owner"
      " OR target_leases.expires_at < clock_timestamp() - ?4 * interval '1 millisecond'"
      " RETURNING epoch",
      "?3 * interval '1 millisecond'");
  Transaction transaction(journal.db());
  Statement& statement = journal.db().cached(acquire);
  statement.bind(1, target).bind(2, owner).bind(3, static_cast<std::int64_t>(kLeaseTtl.count()));
  statement.bind(4, static_cast<std::int64_t>(expired_for.count()));
  std::optional<std::int64_t> epoch;
  if (statement.step()) epoch = statement.columnInt(0);
  statement.reset();
  if (!epoch) return std::nullopt;
  // Rows in flight are a previous holder's claims (another relay, or this one
  // before it restarted): nobody is attempting them under this epoch.
  static const std::string release = fmt::format(
      "UPDATE deliveries SET state = {}, due_at = CASE WHEN age_from < due_at THEN age_from ELSE due_at END,"
      " updated_at = ? WHERE target = ? AND state = {}",
      sqlStates({DeliveryState::Pending}), sqlStates({DeliveryState::InFlight}));
  journal.db().cached(release).bind(1, formatIsoMillis(now_ms)).bind(2, target).run();
  transaction.commit();
  return epoch;
}

bool renewLease(Journal& journal, const std::string& target, const std::string& owner, std::int64_t epoch) {
  static const std::string renew = fmt::format(
      "UPDATE target_leases SET expires_at = clock_timestamp() + {} WHERE target = ? AND owner = ? AND epoch = ?",
      kTtl);
  Transaction transaction(journal.db());
  journal.db()
      .cached(renew)
      .bind(1, static_cast<std::int64_t>(kLeaseTtl.count()))
      .bind(2, target)
      .bind(3, owner)
      .bind(4, epoch)
      .run();
  const bool renewed = journal.db().changes() == 1;
  transaction.commit();
  return renewed;
}

void releaseLease(Journal& journal, const std::string& target, const std::string& owner, std::int64_t epoch) {
  Transaction transaction(journal.db());
  journal.db()
      .prepare(
          "UPDATE target_leases SET expires_at = clock_timestamp()"
          " WHERE target = ? AND owner = ? AND epoch = ?")
      .bind(1, target)
      .bind(2, owner)
      .bind(3, epoch)
      .run();
  transaction.commit();
}

std::vector<RelayRow> relays(Journal& reader) {
  Statement select(reader.db(),
                   "SELECT name, host, version, targets, fingerprint, admin, accepted_hour, instance,"
                   " CAST(EXTRACT(EPOCH FROM (clock_timestamp() - heartbeat_at)) * 1000 AS BIGINT),"
                   " CAST(EXTRACT(EPOCH FROM (clock_timestamp() - started_at)) * 1000 AS BIGINT),"
                   " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                   " FROM relays ORDER BY name");
  std::vector<RelayRow> out;
  while (select.step()) {
    RelayRow row;
    row.relay.name = select.columnText(0);
    row.relay.host = select.columnText(1);
    row.relay.version = select.columnText(2);
    row.relay.targets = select.columnText(3);
    row.relay.fingerprint = select.columnText(4);
    row.relay.admin = select.columnText(5);
    row.relay.accepted_hour = select.columnInt(6);
    row.relay.instance = select.columnText(7);
    row.heartbeat_age_s = static_cast<double>(select.columnInt(8)) / 1000.0;
    row.up_s = static_cast<double>(select.columnInt(9)) / 1000.0;
    row.started_at = select.columnText(10);
    out.push_back(std::move(row));
  }
  return out;
}

RelayState relayState(const RelayRow& row) {
  if (row.relay.instance.empty()) return RelayState::Stopped;
  return row.heartbeat_age_s * 1000 > static_cast<double>(kLiveWithin.count()) ? RelayState::Silent : RelayState::Live;
}

std::string_view relayStateName(RelayState state) {
  switch (state) {
    case RelayState::Live:
      return "live";
    case RelayState::Silent:
      return "silent";
    case RelayState::Stopped:
      return "stopped";
  }
  return "stopped";
}

std::vector<LeaseRow> leases(Journal& reader) {
  Statement select(reader.db(),
                   "SELECT target, owner, epoch,"
                   " CAST(EXTRACT(EPOCH FROM (expires_at - clock_timestamp())) * 1000 AS BIGINT)"
                   " FROM target_leases ORDER BY target");
  std::vector<LeaseRow> out;
  while (select.step())
    out.push_back({select.columnText(0), select.columnText(1), select.columnInt(2),
                   static_cast<double>(select.columnInt(3)) / 1000.0});
  return out;
}

std::string leaseOwner(const std::string& name, const std::string& instance) {
  return name + "/" + instance;
}

std::string ownerName(const std::string& owner) {
  return owner.substr(0, owner.find('/'));
}

std::string preferredOwner(const std::string& target, const std::vector<std::string>& live) {
  // FNV-1a 64 over target, a separator and the relay's name: the same on
  // every relay and every build.
  const auto weight = [&](const std::string& relay) {
    std::uint64_t hash = 14695981039346656037ULL;
    const auto mix = [&](std::string_view text) {
      for (const unsigned char c : text) {
        hash ^= c;
        hash *= 1099511628211ULL;
      }
    };
    mix(target);
    mix(std::string_view("\0", 1));
    mix(relay);
    // A final avalanche: FNV's low bits alone spread short, similar names poorly.
    hash ^= hash >> 33;
    hash *= 0xff51afd7ed558ccdULL;
    hash ^= hash >> 33;
    return hash;
  };
  std::string best;
  std::uint64_t best_weight = 0;
  for (const auto& relay : live) {
    const std::uint64_t w = weight(relay);
    if (best.empty() || w > best_weight || (w == best_weight && relay < best)) {
      best = relay;
      best_weight = w;
    }
  }
  return best;
}

}  // namespace mews::journal
