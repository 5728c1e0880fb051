#include "ingest/connection_guard.h"

#include <sys/socket.h>

#include <string_view>

namespace mews::ingest {

namespace {

thread_local ConnectionGuard::Entry* current_entry = nullptr;

constexpr std::string_view kTimeoutResponse =
    "HTTP/1.1 408 Request Timeout\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 40\r\n"
    "Connection: close\r\n"
    "\r\n"
    R"({"error":"request not received in time"})";

}  // namespace

ConnectionGuard::ConnectionGuard(std::chrono::milliseconds request_timeout, std::uint64_t min_body_rate, bool tls,
                                 std::function<void(const std::string&)> on_expired)
    : request_timeout_(request_timeout), min_body_rate_(min_body_rate), tls_(tls), on_expired_(std::move(on_expired)) {
  static_assert(kTimeoutResponse.size() - kTimeoutResponse.find("\r\n\r\n") - 4 == 40);
  thread_ = std::thread([this] { watch(); });
}

ConnectionGuard::~ConnectionGuard() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

std::shared_ptr<ConnectionGuard::Entry> ConnectionGuard::track(const Poco::Net::StreamSocket& socket) {
  auto entry = std::make_shared<Entry>();
  entry->socket = socket;
  entry->armed_at = std::chrono::steady_clock::now();
  const std::lock_guard lock(mutex_);
  entries_.insert(entry);
  return entry;
}

void ConnectionGuard::untrack(const std::shared_ptr<Entry>& entry) {
  const std::lock_guard lock(mutex_);
  entries_.erase(entry);
}

bool ConnectionGuard::beginBody(Entry& entry) {
  const std::lock_guard lock(mutex_);
  if (entry.expired) return false;
  entry.phase = Phase::Body;
  entry.body_started = std::chrono::steady_clock::now();
  entry.body_bytes.store(0, std::memory_order_relaxed);
  return true;
}

void ConnectionGuard::endBody(Entry& entry) {
  const std::lock_guard lock(mutex_);
  entry.phase = Phase::Working;
}

void ConnectionGuard::endRequest(Entry& entry) {
  const std::lock_guard lock(mutex_);
  entry.phase = Phase::Waiting;
  entry.armed_at = std::chrono::steady_clock::now();
}

bool ConnectionGuard::tooSlow(const Entry& entry) const {
  const std::lock_guard lock(mutex_);
  return entry.expired || overdue(entry, std::chrono::steady_clock::now());
}

bool ConnectionGuard::overdue(const Entry& entry, std::chrono::steady_clock::time_point now) const {
  if (entry.phase == Phase::Working) return false;
  if (now >= entry.armed_at + request_timeout_) return true;
  if (entry.phase != Phase::Body || min_body_rate_ == 0) return false;
  const double elapsed = std::chrono::duration<double>(now - entry.body_started).count();
  const auto received = static_cast<double>(entry.body_bytes.load(std::memory_order_relaxed));
  return elapsed > 1.0 && received < static_cast<double>(min_body_rate_) * elapsed;
}

ConnectionGuard::Entry* ConnectionGuard::current() {
  return current_entry;
}

void ConnectionGuard::setCurrent(Entry* entry) {
  current_entry = entry;
}

// Called with mutex_ held.
void ConnectionGuard::expire(Entry& entry) {
  entry.expired = true;
  const int fd = entry.socket.impl()->sockfd();
  if (fd < 0) return;
  if (entry.phase == Phase::Waiting) {
    if (!tls_) (void)::send(fd, kTimeoutResponse.data(), kTimeoutResponse.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(fd, SHUT_RDWR);
  } else {
    // The handler answers 408 itself once its read returns.
    ::shutdown(fd, SHUT_RD);
  }
}

void ConnectionGuard::watch() {
  // A quarter of a second of slack on deadlines of seconds.
  constexpr auto kTick = std::chrono::milliseconds(250);
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, kTick);
    const auto now = std::chrono::steady_clock::now();
    for (const auto& entry : entries_) {
      if (entry->expired || !overdue(*entry, now)) continue;
      std::string remote;
      try {
        remote = entry->socket.peerAddress().toString();
      } catch (const std::exception&) {
        remote = "unknown";
      }
      const Phase phase = entry->phase;
      expire(*entry);
      // Only Waiting expiries are reported here; the handler reports the body's.
      if (phase == Phase::Waiting && on_expired_) on_expired_(remote);
    }
  }
}

}  // namespace mews::ingest
