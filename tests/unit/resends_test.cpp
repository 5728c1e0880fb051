// The late-commit lookup (journal/resends.h) on either backend: a resend of a
// batch committed after a 503 is found by its body and IntegrationId, once. It
// ran only on SQLite before: on PostgreSQL `integration_id IS ?2` is a syntax
// error, which the guard logged and treated as "not a resend", so every resend
// was stored (and delivered) twice without a failing test.
#include <doctest/doctest.h>

#include "batch/payload.h"
#include "journal/journal.h"
#include "journal/resends.h"
#include "support/test_support.h"

using namespace mews;
using namespace mews::journal;

namespace {

constexpr std::int64_t kReceivedMs = 1'795'860'000'123;

std::int64_t insertLate(Journal& journal, const std::string& body, const std::string& digest) {
  IncomingBatch batch;
  batch.received_at_ms = kReceivedMs;
  batch.content_type = "application/json";
  batch.body = body;
  batch.summary = batch::parseBatch(body).value();
  batch.deliveries = {{"pms", std::nullopt}};
  Transaction transaction(journal.db());
  const std::int64_t id = journal.insertBatch(batch);
  recordLateCommit(journal, id, digest, kReceivedMs + 4'000);
  transaction.commit();
  return id;
}

}  // namespace

TEST_CASE("a late commit is found by its body, with and without an IntegrationId") {
  test::TempDir dir;
  const auto location = test::journalAt(dir.file("late.db"));
  Journal journal(location, {});
  const std::string general = test::sample("general.json");
  // A general batch without an IntegrationId: the NULL case.
  const std::string integration =
      R"({"EnterpriseId":"e1","Events":[{"Discriminator":"ResourceUpdated","Value":{"Id":"r1"}}]})";
  // The sample names its IntegrationId; the other has none.
  const auto general_integration = batch::parseBatch(general).value().integration_id;
  REQUIRE(general_integration.has_value());
  REQUIRE_FALSE(batch::parseBatch(integration).value().integration_id.has_value());
  const std::int64_t general_id = insertLate(journal, general, "digest-general");
  const std::int64_t integration_id = insertLate(journal, integration, "digest-integration");

  // Each check in its own transaction, rolled back: the lookup consumes.
  const auto consume = [&](const std::string& digest, const std::optional<std::string>& for_integration,
                           const std::string& body, std::int64_t since_ms) {
    Transaction transaction(journal.db());
    return consumeLateCommit(journal, digest, for_integration, body, since_ms);
  };
  CHECK(consume("digest-general", general_integration, general, kReceivedMs - 1) == general_id);
  CHECK(consume("digest-integration", std::nullopt, integration, kReceivedMs - 1) == integration_id);
  // Another IntegrationId (or none), other bytes, or outside the window: not the same post.
  CHECK_FALSE(consume("digest-general", std::string("other"), general, kReceivedMs - 1));
  CHECK_FALSE(consume("digest-general", std::nullopt, general, kReceivedMs - 1));
  CHECK_FALSE(consume("digest-integration", std::string("other"), integration, kReceivedMs - 1));
  CHECK_FALSE(consume("digest-general", general_integration, general + " ", kReceivedMs - 1));
  CHECK_FALSE(consume("digest-general", general_integration, general, kReceivedMs + 1));
}

TEST_CASE("a late commit answers one post: the same bytes after it are a new notification") {
  test::TempDir dir;
  const auto location = test::journalAt(dir.file("once.db"));
  Journal journal(location, {});
  const std::string general = test::sample("general.json");
  const auto integration_id = batch::parseBatch(general).value().integration_id;
  const std::int64_t first = insertLate(journal, general, "digest");
  const std::int64_t second = insertLate(journal, general, "digest");
  {
    Transaction transaction(journal.db());
    CHECK(consumeLateCommit(journal, "digest", integration_id, general, kReceivedMs - 1) == first);
    transaction.commit();
  }
  {
    Transaction transaction(journal.db());
    CHECK(consumeLateCommit(journal, "digest", integration_id, general, kReceivedMs - 1) == second);
    transaction.commit();
  }
  Transaction transaction(journal.db());
  CHECK_FALSE(consumeLateCommit(journal, "digest", integration_id, general, kReceivedMs - 1));
  // The batches themselves stay: only the right to answer a post without storing it is used up.
  CHECK(journal.db().queryInt("SELECT count(*) FROM batches") == 2);
  CHECK(journal.db().queryInt("SELECT count(*) FROM late_commits") == 0);
}
