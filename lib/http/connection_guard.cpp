#include "http/connection_guard.h"

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

namespace mews::http {

namespace {

constexpr std::string_view kTimeoutResponse =
    "HTTP/1.1 408 Request Timeout\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 40\r\n"
    "Connection: close\r\n"
    "\r\n"
    R"({"error":"request not received in time"})";

constexpr std::string_view kOverCapacityResponse =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 45\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n"
    "\r\n"
    R"({"error":"too many connections; retry later"})";

// How long a new connection may stay silent before it counts as idle.
constexpr auto kSilentGrace = std::chrono::seconds(1);

// How long a refused connection is kept for its client to read the 503.
constexpr auto kLingerTime = std::chrono::seconds(2);

}  // namespace

ConnectionGuard::ConnectionGuard(Limits limits, Events events) : limits_(limits), events_(std::move(events)) {
  static_assert(kTimeoutResponse.size() - kTimeoutResponse.find("\r\n\r\n") - 4 == 40);
  static_assert(kOverCapacityResponse.size() - kOverCapacityResponse.find("\r\n\r\n") - 4 == 45);
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

bool ConnectionGuard::admit(const Poco::Net::StreamSocket& socket) {
  std::unique_lock lock(mutex_);
  if (admitted_ >= limits_.max_running + limits_.max_waiting) {
    refuse(socket);
    return false;
  }
  ++admitted_;
  const bool must_wait = entries_.size() >= limits_.max_running;
  lock.unlock();
  // The watchdog frees a thread held by an idle connection now, not at its next tick.
  if (must_wait) wake_.notify_all();
  return true;
}

// Called with mutex_ held. Runs on the accept thread: never blocks.
void ConnectionGuard::refuse(const Poco::Net::StreamSocket& socket) {
  ++refused_unreported_;
  if (limits_.tls) return;  // closed without an answer when Poco drops the socket
  const int fd = socket.impl()->sockfd();
  if (fd < 0) return;
  (void)::send(fd, kOverCapacityResponse.data(), kOverCapacityResponse.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_WR);
  // Bounded: past it a refused socket is closed at once, and may reset its answer away.
  if (lingering_.size() < limits_.max_running + limits_.max_waiting)
    lingering_.push_back({socket, std::chrono::steady_clock::now() + kLingerTime});
}

std::shared_ptr<ConnectionGuard::Entry> ConnectionGuard::track(const Poco::Net::StreamSocket& socket) {
  auto entry = std::make_shared<Entry>();
  entry->socket = socket;
  entry->armed_at = std::chrono::steady_clock::now();
  entry->idle_since = entry->armed_at;
  const std::lock_guard lock(mutex_);
  entries_.insert(entry);
  return entry;
}

void ConnectionGuard::untrack(const std::shared_ptr<Entry>& entry) {
  const std::lock_guard lock(mutex_);
  entries_.erase(entry);
  if (admitted_ > 0) --admitted_;
}

void ConnectionGuard::forget() {
  const std::lock_guard lock(mutex_);
  if (admitted_ > 0) --admitted_;
}

bool ConnectionGuard::beginHead(Entry& entry) {
  const std::lock_guard lock(mutex_);
  if (entry.expired || stopping_accepting_) return false;
  entry.phase = Phase::Head;
  return true;
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
  std::unique_lock lock(mutex_);
  entry.phase = Phase::Idle;
  entry.armed_at = std::chrono::steady_clock::now();
  entry.idle_since = entry.armed_at;
  ++entry.responses;
  const bool others_wait = admitted_ > entries_.size();
  lock.unlock();
  // This thread may go to a waiting connection now, not at the watchdog's next tick.
  if (others_wait) wake_.notify_all();
}

bool ConnectionGuard::tooSlow(const Entry& entry) const {
  const std::lock_guard lock(mutex_);
  return entry.expired || overdue(entry, std::chrono::steady_clock::now());
}

bool ConnectionGuard::overdue(const Entry& entry, std::chrono::steady_clock::time_point now) const {
  if (entry.phase == Phase::Working) return false;
  if (now >= entry.armed_at + limits_.request_timeout) return true;
  if (entry.phase != Phase::Body || limits_.min_body_rate == 0) return false;
  const double elapsed = std::chrono::duration<double>(now - entry.body_started).count();
  const auto received = static_cast<double>(entry.body_bytes.load(std::memory_order_relaxed));
  return elapsed > 1.0 && received < static_cast<double>(limits_.min_body_rate) * elapsed;
}

void ConnectionGuard::stopAll() {
  const std::lock_guard lock(mutex_);
  stopping_accepting_ = true;
  for (const auto& entry : entries_) {
    if (entry->phase != Phase::Idle || entry->expired) continue;
    entry->expired = true;
    const int fd = entry->socket.impl()->sockfd();
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }
}

bool ConnectionGuard::stopping() const {
  const std::lock_guard lock(mutex_);
  return stopping_accepting_;
}

// Called with mutex_ held.
void ConnectionGuard::expire(Entry& entry) {
  entry.expired = true;
  const int fd = entry.socket.impl()->sockfd();
  if (fd < 0) return;
  if (entry.phase == Phase::Idle || entry.phase == Phase::Head) {
    if (!limits_.tls) (void)::send(fd, kTimeoutResponse.data(), kTimeoutResponse.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
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
      // Only head expiries are reported here; the handler reports the body's.
      if ((phase == Phase::Idle || phase == Phase::Head) && events_.head_expired) events_.head_expired(remote);
    }
    reclaimIdle(now);
    drainLingering(now);
    reportRefused(now);
  }
}

// Called with mutex_ held.
void ConnectionGuard::reclaimIdle(std::chrono::steady_clock::time_point now) {
  if (entries_.size() < limits_.max_running || admitted_ <= entries_.size()) return;
  std::size_t waiting = admitted_ - entries_.size();
  // Connections already being closed free their thread soon: one per waiting client.
  std::vector<Entry*> idle;
  for (const auto& entry : entries_) {
    if (entry->expired) {
      if (waiting > 0) --waiting;
      continue;
    }
    // A new connection gets kSilentGrace to send its first byte.
    if (entry->phase != Phase::Idle || (entry->responses == 0 && now < entry->idle_since + kSilentGrace)) continue;
    // Bytes already in the kernel: the next request is here, Poco is about to read it.
    const int fd = entry->socket.impl()->sockfd();
    int unread = 0;
    if (fd < 0 || ::ioctl(fd, FIONREAD, &unread) != 0 || unread > 0) continue;
    idle.push_back(entry.get());
  }
  std::sort(idle.begin(), idle.end(), [](const Entry* a, const Entry* b) { return a->idle_since < b->idle_since; });
  for (std::size_t i = 0; i < idle.size() && i < waiting; ++i) {
    idle[i]->expired = true;
    // Poco's wait for the next request returns, reads end of input, and the thread is free.
    ::shutdown(idle[i]->socket.impl()->sockfd(), SHUT_RDWR);
  }
}

// Called with mutex_ held.
void ConnectionGuard::drainLingering(std::chrono::steady_clock::time_point now) {
  char discard[16384];
  std::erase_if(lingering_, [&](Lingering& lingering) {
    const int fd = lingering.socket.impl()->sockfd();
    if (fd < 0 || now >= lingering.until) return true;
    for (int reads = 0; reads < 16; ++reads) {
      const ssize_t got = ::recv(fd, discard, sizeof discard, MSG_DONTWAIT);
      if (got > 0) continue;
      // End of input or an error: the client is done. Nothing waiting: keep it.
      return got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
    return false;
  });
}

// Called with mutex_ held.
void ConnectionGuard::reportRefused(std::chrono::steady_clock::time_point now) {
  if (refused_unreported_ == 0 || now < refused_reported_at_ + std::chrono::seconds(1)) return;
  if (events_.refused) events_.refused(refused_unreported_);
  refused_unreported_ = 0;
  refused_reported_at_ = now;
}

}  // namespace mews::http
