#include "relay/cluster.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "auth/secrets.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/text.h"
#include "journal/sql.h"

namespace mews::relay {
namespace {

using journal::kLeaseMargin;
using journal::kLeaseTtl;
using journal::kLiveWithin;
using journal::kRenewEvery;
using journal::kStandbyGrace;
using Steady = std::chrono::steady_clock;

// A preferred owner that joined takes its targets over only once it has been
// up this long: a relay restarting in a loop does not pull targets around.
constexpr double kHandOverToRelayUpS = 5.0;

std::vector<std::string> targetNames(const config::Settings& settings) {
  std::vector<std::string> names;
  for (const auto& target : settings.targets) names.push_back(target.name);
  return names;
}

// The target definitions, hashed: every key as check-config shows it, and
// the values it masks (a signing secret, header values) by their own SHA-256,
// so that a secret rotated on one host only is reported too. Only 64 bits of
// the hash of all of it leave the process (the relays table).
std::string fingerprintOf(const config::Settings& settings) {
  std::string text;
  for (const auto& entry : settings.effective)
    if (entry.section.rfind("target.", 0) == 0) text += entry.section + "." + entry.key + "=" + entry.value + "\n";
  for (const auto& target : settings.targets) {
    text += target.name + ".secret#" + auth::sha256Hex(target.secret) + "\n";
    for (const auto& [name, value] : target.headers)
      text += target.name + ".header." + name + "#" + auth::sha256Hex(value) + "\n";
  }
  return auth::sha256Hex(text).substr(0, 16);
}

std::string hostName() {
  char host[256] = {};
  return gethostname(host, sizeof host - 1) == 0 ? std::string(host) : std::string("?");
}

}  // namespace

void awaitNameFree(journal::Journal& journal, const std::string& name, const std::string& instance) {
  // A process named like this one that beat recently: the same relay killed
  // and restarted (its beat goes stale within kLiveWithin), or a second relay
  // given the same name by mistake, which is refused.
  const auto give_up = Steady::now() + kLiveWithin + kRenewEvery;
  for (bool first = true;; first = false) {
    const auto age = journal::otherInstanceAge(journal, name, instance);
    if (!age || *age > kLiveWithin) return;
    if (Steady::now() >= give_up)
      throw std::runtime_error(
          fmt::format("another relay named '{}' is live on journal {} (its heartbeat is {} ms old): give each relay "
                      "its own [relay] name",
                      name, journal.path(), age->count()));
    if (first)
      log::warn("cluster", "a process named like this relay beat recently; waiting for its beat to go stale",
                {{"relay", name}, {"heartbeat_age_ms", std::to_string(age->count())}});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

Cluster::Cluster(Sources sources)
    : sources_(std::move(sources)),
      name_(sources_.settings.relay.name),
      instance_(sources_.instance),
      owner_(journal::leaseOwner(name_, instance_)),
      location_(sources_.settings.journal.location()),
      targets_(targetNames(sources_.settings)),
      fingerprint_(fingerprintOf(sources_.settings)) {}

Cluster::~Cluster() {
  stop();
}

void Cluster::start() {
  {
    const auto journal = journal::openLeaseSession(location_);
    awaitNameFree(*journal, name_, instance_);
    round(*journal, true);
  }
  keeper_ = std::thread([this] { keepLoop(); });
  guard_ = std::thread([this] { guardLoop(); });
}

void Cluster::stop() {
  {
    const std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (keeper_.joinable()) keeper_.join();
  if (guard_.joinable()) guard_.join();
  // The engine has stopped: nothing of ours is in flight. Released now, the
  // targets' next owners take them at their next round instead of waiting
  // for the leases to expire.
  const auto held = sources_.held.targets();
  try {
    journal::Journal journal(location_, {});
    for (const auto& target : held)
      if (const auto epoch = sources_.held.epoch(target)) journal::releaseLease(journal, target, owner_, *epoch);
    journal::markStopped(journal, name_, instance_);
    if (!held.empty())
      log::info("cluster", "leases released at stop", {{"relay", name_}, {"targets", text::joinList(held)}});
  } catch (const std::exception& e) {
    log::warn("cluster", "cannot release the leases at stop; they expire by themselves",
              {{"relay", name_}, {"error", e.what()}, {"within_s", std::to_string(kLeaseTtl.count() / 1000)}});
  }
  for (const auto& target : held) sources_.held.drop(target);
}

void Cluster::setTargets(const config::Settings& settings) {
  const std::lock_guard lock(mutex_);
  targets_ = targetNames(settings);
  fingerprint_ = fingerprintOf(settings);
}

ClusterView Cluster::view() const {
  const std::lock_guard lock(mutex_);
  return view_;
}

std::uint64_t Cluster::acceptedLastHour() {
  const auto now = Steady::now();
  const std::uint64_t total = sources_.accepted_total ? sources_.accepted_total() : 0;
  if (samples_.empty() || now - samples_.back().first >= std::chrono::minutes(1)) samples_.emplace_back(now, total);
  while (samples_.size() > 1 && now - samples_[1].first >= std::chrono::hours(1)) samples_.erase(samples_.begin());
  return total - samples_.front().second;
}

void Cluster::keepLoop() {
  pthread_setname_np(pthread_self(), "leases");
  std::unique_ptr<journal::Journal> journal;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      if (stopping_) return;
    }
    const auto started = Steady::now();
    try {
      if (!journal) journal = journal::openLeaseSession(location_);
      round(*journal, false);  // start() made the first round
      if (!logged_failure_.empty()) {
        log::info("cluster", "the journal database answers the lease keeper again", {{"relay", name_}});
        logged_failure_.clear();
      }
    } catch (const std::exception& e) {
      journal.reset();
      if (logged_failure_ != e.what()) {
        log::warn("cluster", "cannot renew leases; dispatch stops where they run out",
                  {{"relay", name_}, {"error", e.what()}});
        logged_failure_ = e.what();
      }
    }
    std::unique_lock lock(mutex_);
    wake_.wait_until(lock, started + kRenewEvery, [this] { return stopping_; });
  }
}

void Cluster::guardLoop() {
  pthread_setname_np(pthread_self(), "lease-guard");
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto end = sources_.held.earliestEnd();
    const auto until = end ? std::min(*end, Steady::now() + kRenewEvery) : Steady::now() + kRenewEvery;
    wake_.wait_until(lock, until, [this] { return stopping_; });
    if (stopping_) return;
    lock.unlock();
    for (const auto& target : sources_.held.dropExpired(Steady::now()))
      log::warn("cluster", "lease not renewed in time: dispatch stopped, attempts in progress cut",
                {{"relay", name_}, {"target", target}});
    lock.lock();
  }
}

void Cluster::round(journal::Journal& journal, bool starting) {
  std::vector<std::string> targets;
  std::string fingerprint;
  {
    const std::lock_guard lock(mutex_);
    targets = targets_;
    fingerprint = fingerprint_;
  }
  // A twin: another process beating under this name (a cloned host, or one
  // started by mistake). The fence keeps them apart (each holds only its own
  // leases), but the operator must hear of it.
  if (const auto twin = journal::otherInstanceAge(journal, name_, instance_); twin && *twin <= kLiveWithin) {
    if (!logged_twin_)
      log::error("cluster",
                 "another process beats on this journal under this relay's name: give each relay its own [relay] "
                 "name",
                 {{"relay", name_}});
    logged_twin_ = true;
  } else {
    logged_twin_ = false;
  }
  journal::RelayRecord me{name_,
                          instance_,
                          hostName(),
                          MEWS_RELAY_VERSION,
                          text::joinList(targets),
                          fingerprint,
                          sources_.admin_address,
                          static_cast<std::int64_t>(acceptedLastHour())};
  journal::heartbeat(journal, me, starting);

  // Who is live, and for which targets.
  const auto relays = journal::relays(journal);
  ClusterView view;
  std::vector<std::string> differing;
  std::map<std::string, const journal::RelayRow*> by_name;
  for (const auto& row : relays) {
    if (journal::relayState(row) != journal::RelayState::Live && row.relay.name != name_) continue;
    by_name[row.relay.name] = &row;
    ++view.live_relays;
    if (row.relay.fingerprint != fingerprint) differing.push_back(row.relay.name);
  }
  view.definitions_differ = !differing.empty();
  view.differing = text::joinList(differing);
  if (view.differing != logged_differing_) {
    if (view.definitions_differ)
      log::warn("cluster",
                "relays on this journal define their targets differently; each target is dispatched with the "
                "definition of the relay that holds its lease",
                {{"relay", name_}, {"differing", view.differing}});
    logged_differing_ = view.differing;
  }
  {
    const std::lock_guard lock(mutex_);
    view_ = view;
  }
  const auto liveFor = [&](const std::string& target) {
    std::vector<std::string> live;
    for (const auto& [name, row] : by_name)
      if (const auto names = text::splitList(row->relay.targets);
          std::find(names.begin(), names.end(), target) != names.end())
        live.push_back(name);
    return live;
  };

  std::map<std::string, journal::LeaseRow> leases;
  for (auto& lease : journal::leases(journal)) leases[lease.target] = lease;
  const std::int64_t now_ms = SystemClock::instance().wallMillis();
  // Held but no longer configured (a reload): handed over, released once idle.
  std::vector<std::string> round_targets = targets;
  for (const auto& target : sources_.held.targets())
    if (std::find(targets.begin(), targets.end(), target) == targets.end()) {
      sources_.held.handOver(target);
      round_targets.push_back(target);
    }
  // One target's failure (a lease row locked past lock_timeout) does not hold
  // back the others' renewals; the first error ends the round afterwards.
  std::optional<std::string> failed;
  for (const auto& target : round_targets) {
    try {
      const auto sent = Steady::now();
      const std::string preferred = journal::preferredOwner(target, liveFor(target));
      if (const auto epoch = sources_.held.epoch(target)) {
        if (sources_.held.handingOver(target) && !sources_.target_busy(target)) {
          journal::releaseLease(journal, target, owner_, *epoch);
          sources_.held.drop(target);
          log::info("cluster", "target handed over", {{"relay", name_}, {"target", target}, {"to", preferred}});
          continue;
        }
        if (!journal::renewLease(journal, target, owner_, *epoch)) {
          sources_.held.drop(target);
          log::warn("cluster", "lease lost: another relay holds the target now",
                    {{"relay", name_}, {"target", target}});
          continue;
        }
        sources_.held.hold(target, *epoch, sent + kLeaseTtl - kLeaseMargin);
        const auto other = by_name.find(preferred);
        if (preferred != name_ && other != by_name.end() && other->second->up_s >= kHandOverToRelayUpS &&
            !sources_.held.handingOver(target)) {
          sources_.held.handOver(target);
          log::info("cluster", "handing the target over to its preferred relay",
                    {{"relay", name_}, {"target", target}, {"to", preferred}});
        }
        continue;
      }
      if (std::find(targets.begin(), targets.end(), target) == targets.end()) continue;
      // Held by another relay and not expired: nothing to try.
      const auto lease = leases.find(target);
      if (lease != leases.end() && lease->second.owner != owner_ && lease->second.expires_in_s > 0) continue;
      const auto wait = preferred == name_ ? std::chrono::milliseconds(0) : kStandbyGrace;
      if (const auto epoch = journal::acquireLease(journal, target, owner_, wait, now_ms)) {
        sources_.held.hold(target, *epoch, sent + kLeaseTtl - kLeaseMargin);
        log::info("cluster", "lease acquired: this relay dispatches the target",
                  {{"relay", name_},
                   {"target", target},
                   {"epoch", std::to_string(*epoch)},
                   {"previous", lease != leases.end() ? journal::ownerName(lease->second.owner) : std::string("-")}});
        if (sources_.on_acquired) sources_.on_acquired(target);
      }
    } catch (const std::exception& e) {
      if (!failed) failed = fmt::format("target {}: {}", target, e.what());
    }
  }
  if (failed) throw std::runtime_error(*failed);
}

}  // namespace mews::relay
