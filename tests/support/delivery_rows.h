// A journal (test::journalAt: either backend) with deliveries put in each
// state the way the product puts them there: the ingest's insert
// (Journal::insertBatch) and the delivery queue's moves (journal/queue.h:
// claim, record an attempt). For the tests of the operator's moves and read
// models (journal/moves.h, journal/reports.h).
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "journal/journal.h"
#include "journal/queue.h"
#include "journal/reports.h"
#include "support/test_support.h"

namespace mews::test {

inline constexpr std::int64_t kT0 = 1'795'860'000'000;  // 2026-11-28T10:00:00Z

// A console query (its fields set one by one: -Wmissing-field-initializers).
inline journal::DeadLetterQuery matching(std::optional<std::string> target,
                                         std::optional<std::string> reason = std::nullopt,
                                         std::optional<std::int64_t> since_ms = std::nullopt,
                                         std::optional<std::int64_t> until_ms = std::nullopt) {
  journal::DeadLetterQuery query;
  query.target = std::move(target);
  query.reason = std::move(reason);
  query.since_ms = since_ms;
  query.until_ms = until_ms;
  return query;
}

// `move` inside one transaction of `journal`; its result.
template <class Move>
auto inTransaction(journal::Journal& journal, Move move) {
  journal::Transaction transaction(journal.db());
  auto result = move();
  transaction.commit();
  return result;
}

// A relay's writer connection as the queue's fence sees it (journal/leases.h).
inline journal::Journal fencedAs(const journal::JournalLocation& location, const std::string& owner) {
  journal::JournalOptions options;
  options.fence_owner = owner;
  return journal::Journal(location, options);
}

struct DeliveryRows {
  TempDir dir;
  journal::Journal journal{journalAt(dir.file("relay.db")), {}};

  // One General batch of `events` events received at `received_ms`, one
  // delivery per target (for event `event_seq` when given). Returns its deliveries' ids.
  std::vector<std::int64_t> receive(std::int64_t received_ms, const std::vector<std::string>& targets,
                                    std::optional<std::int64_t> event_seq = std::nullopt, std::size_t events = 1) {
    journal::IncomingBatch batch;
    batch.received_at_ms = received_ms;
    batch.content_type = "application/json";
    batch.body = generalBatch(events);
    batch.summary.kind = journal::BatchKind::General;
    for (std::size_t i = 0; i < events; ++i) batch.summary.events.push_back({"ReservationUpdated", std::nullopt});
    for (const auto& target : targets) batch.deliveries.push_back({target, event_seq});
    journal::Transaction transaction(journal.db());
    const std::int64_t batch_id = journal.insertBatch(batch);
    transaction.commit();
    journal::Statement select(journal.db(), "SELECT id FROM deliveries WHERE batch_id = ? ORDER BY id");
    select.bind(1, batch_id);
    std::vector<std::int64_t> ids;
    while (select.step()) ids.push_back(select.columnInt(0));
    REQUIRE(ids.size() == targets.size());
    return ids;
  }

  // One delivery to `target` received at `received_ms`, moved to `state` at
  // `moved_ms` by the delivery queue's own moves: claimed (in_flight), then
  // one attempt recorded (delivered, retry_wait due an hour later, or dead
  // with `reason`: its dead letter dies at `moved_ms`).
  std::int64_t deliveryIn(journal::DeliveryState state, const std::string& target, std::int64_t received_ms,
                          std::int64_t moved_ms, journal::DeadReason reason = journal::DeadReason::Rejected,
                          std::optional<std::int64_t> event_seq = std::nullopt) {
    using enum journal::DeliveryState;
    const std::int64_t id = receive(received_ms, {target}, event_seq, event_seq ? *event_seq + 1 : 1).front();
    if (state == Pending) return id;
    REQUIRE(journal::claimDelivery(journal, id, moved_ms));
    if (state == InFlight) return id;
    journal::AttemptRecord record;
    record.delivery_id = id;
    record.target = target;
    record.started_ms = moved_ms;
    record.duration_ms = 5;
    record.now_ms = moved_ms;
    if (state == Delivered) {
      record.outcome = journal::AttemptOutcome::Delivered;
      record.status = 200;
    } else if (state == RetryWait) {
      record.outcome = journal::AttemptOutcome::Retry;
      record.status = 503;
      record.error = "HTTP 503";
      record.next_due_ms = moved_ms + 3'600'000;
    } else {
      record.outcome = journal::AttemptOutcome::Dead;
      record.status = reason == journal::DeadReason::Rejected ? std::optional<int>(400) : std::optional<int>(503);
      record.error = reason == journal::DeadReason::Rejected ? "HTTP 400" : "HTTP 503";
      record.response_excerpt = "no thanks";
      record.request_headers_json = R"({"webhook-id":"msg_x"})";
      record.dead_reason = reason;
      record.dead_letter_event_types = "ReservationUpdated";
    }
    REQUIRE(journal::recordAttempt(journal, record));
    return id;
  }

  journal::DeliveryDetail detail(std::int64_t delivery_id) {
    auto found = journal::deliveryDetail(journal, delivery_id);
    REQUIRE(found.has_value());
    return *found;
  }
  bool exists(std::int64_t delivery_id) { return journal::deliveryDetail(journal, delivery_id).has_value(); }
  journal::DeliveryState stateOf(std::int64_t delivery_id) { return detail(delivery_id).state; }
  // The dead letter of a delivery (it has one).
  std::int64_t letterOf(std::int64_t delivery_id) {
    const auto found = detail(delivery_id);
    REQUIRE(found.dead_letter.has_value());
    return found.dead_letter->id;
  }
  // The waiting work of `target` due at `now_ms`, as the delivery engine selects it.
  std::optional<journal::DueDelivery> due(const std::string& target, std::int64_t delivery_id, std::int64_t now_ms) {
    for (const auto& row : journal::selectDue(journal, target, now_ms, 1000))
      if (row.id == delivery_id) return row;
    return std::nullopt;
  }
};

}  // namespace mews::test
