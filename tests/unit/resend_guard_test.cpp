// ingest/resend_guard.h on either backend (test::journalAt): mayRepeat answers
// "store it" without hashing while nothing is noted; lateCommitJob records a
// late commit (a late_commits row and a note of the body's digest) only when
// the batch's insert committed, from its outcome or, in the same group, from
// the id the insert job got; a note lasts the window after the batch was
// received; the notes are rebuilt from the journal at construction; and
// resend_window = 0s turns all of it off.
#include <doctest/doctest.h>

#include <openssl/sha.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "ingest/resend_guard.h"
#include "journal/journal.h"
#include "support/test_support.h"

using namespace mews;
using namespace mews::journal;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kReceivedMs = 1'795'860'000'000;  // 2026-11-28T10:00:00Z
constexpr Millis kWindow = 10min;
constexpr std::int64_t kAnsweredMs = kReceivedMs + 4'000;

std::string referenceSha256(const std::string& bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (const unsigned char byte : digest) {
    hex += kHex[byte >> 4];
    hex += kHex[byte & 0xF];
  }
  return hex;
}

std::shared_future<WriteOutcome> outcome(WriteOutcome::Status status, std::int64_t value) {
  std::promise<WriteOutcome> promise;
  WriteOutcome written;
  written.status = status;
  written.value = value;
  promise.set_value(written);
  return promise.get_future().share();
}

// The insert job has not been answered yet (both jobs in one group).
std::shared_future<WriteOutcome> pending(std::promise<WriteOutcome>& promise) {
  return promise.get_future().share();
}

std::shared_ptr<const std::atomic<std::int64_t>> insertedId(std::int64_t id) {
  return std::make_shared<const std::atomic<std::int64_t>>(id);
}

struct Fixture {
  test::TempDir dir;
  JournalLocation location = test::journalAt(dir.file("relay.db"));
  Journal journal{location, {}};
  std::string body = test::generalBatch(2);

  std::int64_t insert(const std::string& bytes) {
    IncomingBatch batch;
    batch.received_at_ms = kReceivedMs;
    batch.content_type = "application/json";
    batch.body = bytes;
    batch.summary.kind = BatchKind::General;
    batch.summary.events.push_back({"ReservationUpdated", std::nullopt});
    batch.deliveries.push_back({"pms", std::nullopt});
    Transaction transaction(journal.db());
    const std::int64_t id = journal.insertBatch(batch);
    transaction.commit();
    return id;
  }

  // Runs the job as the writer would: in a transaction, committed.
  std::int64_t run(const JournalWriter::Job& job) {
    Transaction transaction(journal.db());
    const std::int64_t result = job(journal);
    transaction.commit();
    return result;
  }

  std::int64_t lateCommits() { return journal.db().queryInt("SELECT count(*) FROM late_commits"); }
};

}  // namespace

TEST_CASE("nothing noted: every post is stored") {
  Fixture f;
  f.insert(f.body);
  const ingest::ResendGuard guard(f.location, kWindow, kReceivedMs);
  CHECK(guard.enabled());
  CHECK_FALSE(guard.mayRepeat(f.body, kReceivedMs + 1'000));
}

TEST_CASE("a late commit whose insert committed: a row, and the same bytes may repeat within the window") {
  Fixture f;
  const std::int64_t batch = f.insert(f.body);
  const ingest::ResendGuard guard(f.location, kWindow, kReceivedMs);
  const auto job = guard.lateCommitJob(outcome(WriteOutcome::Status::Committed, batch), insertedId(0), f.body,
                                       kReceivedMs, kAnsweredMs);
  CHECK(f.run(job) == batch);
  CHECK(f.lateCommits() == 1);

  const auto repeat = guard.mayRepeat(f.body, kAnsweredMs + 60'000);
  REQUIRE(repeat);
  CHECK(repeat->body_sha256 == referenceSha256(f.body));
  CHECK(repeat->since_ms == kAnsweredMs + 60'000 - kWindow.count());
  // Other bytes (one more space) are another post.
  CHECK_FALSE(guard.mayRepeat(f.body + " ", kAnsweredMs + 60'000));
}

TEST_CASE("the window: a note lasts until the batch's receipt plus resend_window, not a millisecond more") {
  Fixture f;
  const std::int64_t batch = f.insert(f.body);
  const ingest::ResendGuard guard(f.location, kWindow, kReceivedMs);
  f.run(guard.lateCommitJob(outcome(WriteOutcome::Status::Committed, batch), insertedId(0), f.body, kReceivedMs,
                            kAnsweredMs));
  CHECK(guard.mayRepeat(f.body, kReceivedMs + kWindow.count()));
  CHECK_FALSE(guard.mayRepeat(f.body, kReceivedMs + kWindow.count() + 1));
}

TEST_CASE("a late commit whose insert failed records nothing and notes nothing") {
  Fixture f;
  const ingest::ResendGuard guard(f.location, kWindow, kReceivedMs);
  for (const auto status : {WriteOutcome::Status::StorageFailure, WriteOutcome::Status::Rejected}) {
    const auto job = guard.lateCommitJob(outcome(status, 0), insertedId(0), f.body, kReceivedMs, kAnsweredMs);
    CHECK(f.run(job) == 0);
  }
  CHECK(f.lateCommits() == 0);
  CHECK_FALSE(guard.mayRepeat(f.body, kAnsweredMs));
}

TEST_CASE("in the insert's own group: the id the insert job got, or nothing when it got none") {
  Fixture f;
  const ingest::ResendGuard guard(f.location, kWindow, kReceivedMs);
  std::promise<WriteOutcome> unanswered;

  SUBCASE("the insert job failed in the group: no id") {
    CHECK(f.run(guard.lateCommitJob(pending(unanswered), insertedId(0), f.body, kReceivedMs, kAnsweredMs)) == 0);
    CHECK(f.lateCommits() == 0);
    CHECK_FALSE(guard.mayRepeat(f.body, kAnsweredMs));
  }
  SUBCASE("the insert job got an id") {
    const std::int64_t batch = f.insert(f.body);
    CHECK(f.run(guard.lateCommitJob(pending(unanswered), insertedId(batch), f.body, kReceivedMs, kAnsweredMs)) ==
          batch);
    CHECK(f.lateCommits() == 1);
    CHECK(guard.mayRepeat(f.body, kAnsweredMs));
  }
}

TEST_CASE("rebuilt at construction: a late commit inside the window is recognised after a restart") {
  Fixture f;
  const std::int64_t batch = f.insert(f.body);
  {
    const ingest::ResendGuard before(f.location, kWindow, kReceivedMs);
    f.run(before.lateCommitJob(outcome(WriteOutcome::Status::Committed, batch), insertedId(0), f.body, kReceivedMs,
                               kAnsweredMs));
  }
  const std::int64_t restart_ms = kReceivedMs + 60'000;
  const ingest::ResendGuard after(f.location, kWindow, restart_ms);
  const auto repeat = after.mayRepeat(f.body, restart_ms + 1'000);
  REQUIRE(repeat);
  CHECK(repeat->body_sha256 == referenceSha256(f.body));
  CHECK_FALSE(after.mayRepeat(f.body, kReceivedMs + kWindow.count() + 1));  // the window from the batch's receipt

  // A restart after the window: nothing to recognise.
  const ingest::ResendGuard late(f.location, kWindow, kReceivedMs + kWindow.count() + 1);
  CHECK_FALSE(late.mayRepeat(f.body, kReceivedMs + kWindow.count() + 2));
}

TEST_CASE("resend_window = 0s: off; nothing recognised even after a late commit") {
  Fixture f;
  const std::int64_t batch = f.insert(f.body);
  const ingest::ResendGuard guard(f.location, Millis(0), kReceivedMs);
  CHECK_FALSE(guard.enabled());
  f.run(guard.lateCommitJob(outcome(WriteOutcome::Status::Committed, batch), insertedId(0), f.body, kReceivedMs,
                            kAnsweredMs));
  CHECK_FALSE(guard.mayRepeat(f.body, kAnsweredMs));
}

TEST_CASE("with nothing noted, a post is not hashed: a large body costs nothing; with a note, it is") {
  Fixture f;
  const std::int64_t batch = f.insert(f.body);
  const std::string large(8 * 1024 * 1024, 'x');
  const auto timed = [&large](const ingest::ResendGuard& guard) {
    const auto started = std::chrono::steady_clock::now();
    CHECK_FALSE(guard.mayRepeat(large, kAnsweredMs));
    return std::chrono::steady_clock::now() - started;
  };
  const ingest::ResendGuard empty(f.location, kWindow, kReceivedMs);
  const auto unhashed = timed(empty);

  const ingest::ResendGuard noted(f.location, kWindow, kReceivedMs);
  f.run(noted.lateCommitJob(outcome(WriteOutcome::Status::Committed, batch), insertedId(0), f.body, kReceivedMs,
                            kAnsweredMs));
  const auto hashed = timed(noted);  // another body's digest noted: this one is hashed to tell
  INFO("unhashed " << std::chrono::duration_cast<std::chrono::microseconds>(unhashed).count() << " us, hashed "
                   << std::chrono::duration_cast<std::chrono::microseconds>(hashed).count() << " us");
  CHECK(unhashed * 20 < hashed);
}

TEST_SUITE("sqlite") {
  TEST_CASE("a journal that cannot be read: the guard throws StorageError") {
    test::TempDir dir;
    CHECK_THROWS_AS(ingest::ResendGuard(test::journalAt(dir.file("missing.db")), kWindow, kReceivedMs), StorageError);
  }
}
