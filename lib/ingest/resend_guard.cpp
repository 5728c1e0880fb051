#include "ingest/resend_guard.h"

#include <mutex>
#include <unordered_map>

#include "auth/secrets.h"
#include "common/clock.h"
#include "journal/resends.h"

namespace mews::ingest {

// Digests of late-committed bodies and until when a resend of each is
// recognised. Shared with the writer jobs, which may run after a handler left.
struct ResendGuard::Notes {
  mutable std::mutex mutex;
  std::unordered_map<std::string, std::int64_t> until_ms;

  void note(const std::string& digest, std::int64_t until, std::int64_t now_ms) {
    const std::lock_guard lock(mutex);
    // Few entries (one per 503 that committed anyway): sweep on every note.
    for (auto it = until_ms.begin(); it != until_ms.end();) it = it->second < now_ms ? until_ms.erase(it) : ++it;
    auto& entry = until_ms[digest];
    entry = std::max(entry, until);
  }

  // From another relay's late commit (shared journal): no sweep.
  void add(const std::string& digest, std::int64_t until) {
    const std::lock_guard lock(mutex);
    auto& entry = until_ms[digest];
    entry = std::max(entry, until);
  }

  bool noted(const std::string& digest, std::int64_t now_ms) const {
    const std::lock_guard lock(mutex);
    const auto it = until_ms.find(digest);
    return it != until_ms.end() && it->second >= now_ms;
  }
};

ResendGuard::ResendGuard(journal::JournalLocation journal, Millis window, std::int64_t now_ms)
    : journal_(std::move(journal)), window_(window), notes_(std::make_shared<Notes>()) {
  if (!enabled()) return;
  journal::Journal reader(journal_, {0, true});
  for (const auto& late : journal::lateCommitsSince(reader, now_ms - window_.count()))
    notes_->note(late.body_sha256, late.received_ms + window_.count(), now_ms);
  // Several relays on one PostgreSQL journal: Mews's resend may reach another
  // relay than the one that answered 503. The late commits of every relay are
  // read every kShareEvery; a resend comes minutes after its 503.
  if (journal_.backend() == journal::Backend::Postgres) sharer_ = std::thread([this] { shareLoop(); });
}

ResendGuard::~ResendGuard() {
  {
    const std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_wake_.notify_all();
  if (sharer_.joinable()) sharer_.join();
}

void ResendGuard::shareLoop() {
  pthread_setname_np(pthread_self(), "late-commits");
  std::unique_ptr<journal::Journal> reader;
  while (true) {
    {
      std::unique_lock lock(stop_mutex_);
      if (stop_wake_.wait_for(lock, kShareEvery, [this] { return stopping_; })) return;
    }
    try {
      if (!reader) reader = std::make_unique<journal::Journal>(journal_, journal::JournalOptions{0, true});
      const std::int64_t now = SystemClock::instance().wallMillis();
      for (const auto& late : journal::lateCommitsSince(*reader, now - window_.count()))
        notes_->add(late.body_sha256, late.received_ms + window_.count());
    } catch (const std::exception&) {
      reader.reset();  // the database away: the writer says so; tried again at the next turn
    }
  }
}

bool ResendGuard::enabled() const {
  return window_.count() > 0;
}

std::optional<ResendGuard::Repeat> ResendGuard::mayRepeat(std::string_view body, std::int64_t now_ms) const {
  if (!enabled()) return std::nullopt;
  {
    const std::lock_guard lock(notes_->mutex);
    if (notes_->until_ms.empty()) return std::nullopt;  // the usual case: no hashing at all
  }
  std::string digest = auth::sha256Hex(body);
  if (!notes_->noted(digest, now_ms)) return std::nullopt;
  return Repeat{std::move(digest), now_ms - window_.count()};
}

journal::JournalWriter::Job ResendGuard::lateCommitJob(std::shared_future<journal::WriteOutcome> insert,
                                                       std::shared_ptr<const std::atomic<std::int64_t>> inserted_id,
                                                       std::string_view body, std::int64_t received_ms,
                                                       std::int64_t answered_ms) const {
  return [insert = std::move(insert), inserted_id = std::move(inserted_id), digest = auth::sha256Hex(body),
          until = received_ms + window_.count(), answered_ms, notes = notes_](journal::Journal& journal) {
    std::int64_t batch_id = 0;
    if (insert.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      const journal::WriteOutcome& outcome = insert.get();
      if (!outcome.committed()) return std::int64_t{0};
      batch_id = outcome.value;
    } else {
      batch_id = inserted_id->load();
      if (batch_id == 0) return std::int64_t{0};
    }
    journal::recordLateCommit(journal, batch_id, digest, answered_ms);
    notes->note(digest, until, answered_ms);
    return batch_id;
  };
}

}  // namespace mews::ingest
