#include "http/head_gate.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "common/json.h"
#include "common/log.h"

namespace mews::http {

namespace {

constexpr auto kTick = std::chrono::milliseconds(100);
constexpr auto kLinger = std::chrono::seconds(1);
constexpr std::uint64_t kLingerBudget = 1 << 20;  // bytes read and dropped after an answer

std::string answerText(std::string_view status_line, std::string_view reason) {
  const std::string body = fmt::format(R"({{"error":{}}})", json::quote(reason));
  return fmt::format(
      "HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}", status_line,
      body.size(), body);
}

void setBlocking(int fd, bool blocking) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) (void)::fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

}  // namespace

std::size_t headEnd(std::string_view bytes) {
  for (std::size_t lf = bytes.find('\n'); lf != std::string_view::npos; lf = bytes.find('\n', lf + 1)) {
    if (lf + 1 < bytes.size() && bytes[lf + 1] == '\n') return lf + 2;
    if (lf + 2 < bytes.size() && bytes[lf + 1] == '\r' && bytes[lf + 2] == '\n') return lf + 3;
  }
  return 0;
}

int HeadSocketImpl::receiveBytes(void* buffer, int length, int flags) {
  if (limit_ == kUnlimited) return StreamSocketImpl::receiveBytes(buffer, length, flags);
  if (limit_ == 0) return 0;
  const int capped = static_cast<int>(std::min<std::size_t>(limit_, static_cast<std::size_t>(length)));
  const int got = StreamSocketImpl::receiveBytes(buffer, capped, flags);
  if (got > 0 && (flags & MSG_PEEK) == 0) limit_ -= static_cast<std::size_t>(got);
  return got;
}

WorkerPool::WorkerPool(std::size_t max_threads, std::size_t max_queued)
    : max_threads_(max_threads), max_queued_(max_queued) {}

WorkerPool::~WorkerPool() {
  stop();
}

bool WorkerPool::post(std::function<void()> job) {
  std::unique_lock lock(mutex_);
  if (stopping_ || queue_.size() >= max_queued_) return false;
  queue_.push_back(std::move(job));
  // A thread of its own for each job while below the cap: a slow request never
  // delays the next one behind it.
  if (idle_ < queue_.size() && threads_.size() < max_threads_) threads_.emplace_back([this] { work(); });
  lock.unlock();
  wake_.notify_one();
  return true;
}

void WorkerPool::stop() {
  std::vector<std::thread> threads;
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
    threads.swap(threads_);
  }
  wake_.notify_all();
  for (auto& thread : threads) thread.join();
}

void WorkerPool::work() {
  std::unique_lock lock(mutex_);
  while (true) {
    ++idle_;
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // stopping, and nothing left to run
    auto job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    try {
      job();
    } catch (const std::exception& e) {
      log::error("http", "connection job failed", {{"error", e.what()}});
    }
    lock.lock();
  }
}

struct HeadGate::Waiting {
  std::shared_ptr<GateConnection> connection;
  std::chrono::steady_clock::time_point since;     // accepted or handed back
  std::chrono::steady_clock::time_point deadline;  // of the phase below
  bool resumed = false;                            // between keep-alive requests
  bool sent = false;                               // a byte of the head arrived
  bool closing = false;                            // answered; draining until closed
  std::uint64_t drain_left = kLingerBudget;
};

HeadGate::HeadGate(Poco::Net::ServerSocket listening, Limits limits, Events events)
    : listening_(std::move(listening)),
      limits_(limits),
      events_(std::move(events)),
      peek_(limits.max_head + limits.whole_body_up_to + 1) {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_ < 0 || wake_ < 0) throw std::runtime_error(fmt::format("cannot create epoll: {}", std::strerror(errno)));
  setBlocking(listening_.impl()->sockfd(), false);
  epoll_event listen_event{};
  listen_event.events = EPOLLIN;
  listen_event.data.fd = listening_.impl()->sockfd();
  epoll_event wake_event{};
  wake_event.events = EPOLLIN;
  wake_event.data.fd = wake_;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, listen_event.data.fd, &listen_event) != 0 ||
      ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &wake_event) != 0)
    throw std::runtime_error(fmt::format("cannot watch the listener: {}", std::strerror(errno)));
}

HeadGate::~HeadGate() {
  stop();
  ::close(wake_);
  ::close(epoll_);
}

void HeadGate::start() {
  thread_ = std::thread([this] { run(); });
}

void HeadGate::stop() {
  if (stopping_.exchange(true)) return;
  const std::uint64_t one = 1;
  (void)::write(wake_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  // Closed here, not in run(): stop() before start() closes them too.
  while (!waiting_.empty()) close(waiting_.begin()->first);
  const std::lock_guard lock(resumed_mutex_);
  resumed_.clear();
  listening_.close();
}

void HeadGate::resume(std::shared_ptr<GateConnection> connection) {
  handBack(std::move(connection), Phase::Resumed);
}

void HeadGate::linger(std::shared_ptr<GateConnection> connection) {
  handBack(std::move(connection), Phase::Lingering);
}

void HeadGate::handBack(std::shared_ptr<GateConnection> connection, Phase phase) {
  {
    const std::lock_guard lock(resumed_mutex_);
    if (stopping_.load()) return;  // closed as it is dropped
    resumed_.emplace_back(std::move(connection), phase);
  }
  const std::uint64_t one = 1;
  (void)::write(wake_, &one, sizeof one);
}

void HeadGate::run() {
  std::vector<epoll_event> events(256);
  auto next_tick = std::chrono::steady_clock::now() + kTick;
  while (!stopping_.load()) {
    const int ready =
        ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), static_cast<int>(kTick.count()));
    const auto now = std::chrono::steady_clock::now();
    for (int i = 0; i < ready; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == listening_.impl()->sockfd()) {
        acceptSome(now);
      } else if (fd == wake_) {
        std::uint64_t count = 0;
        (void)::read(wake_, &count, sizeof count);
        std::vector<std::pair<std::shared_ptr<GateConnection>, Phase>> resumed;
        {
          const std::lock_guard lock(resumed_mutex_);
          resumed.swap(resumed_);
        }
        for (auto& [connection, phase] : resumed) add(std::move(connection), phase, now);
      } else {
        onEvent(fd, events[static_cast<std::size_t>(i)].events, now);
      }
    }
    if (now >= next_tick) {
      next_tick = now + kTick;
      expire(now);
      if (accept_paused_) {
        accept_paused_ = false;
        epoll_event listen_event{};
        listen_event.events = EPOLLIN;
        listen_event.data.fd = listening_.impl()->sockfd();
        (void)::epoll_ctl(epoll_, EPOLL_CTL_MOD, listen_event.data.fd, &listen_event);
      }
    }
  }
}

void HeadGate::acceptSome(std::chrono::steady_clock::time_point now) {
  for (int accepted = 0; accepted < 256; ++accepted) {
    const int fd = ::accept4(listening_.impl()->sockfd(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return;
      // Out of descriptors (or memory): stop watching the listener until the
      // next tick rather than spin on it; the kernel's backlog holds the rest.
      if (now >= accept_error_logged_ + std::chrono::seconds(1)) {
        accept_error_logged_ = now;
        log::error("http", "cannot accept connections", {{"error", std::strerror(errno)}});
      }
      accept_paused_ = true;
      epoll_event none{};
      none.data.fd = listening_.impl()->sockfd();
      (void)::epoll_ctl(epoll_, EPOLL_CTL_MOD, none.data.fd, &none);
      return;
    }
    auto connection = std::make_shared<GateConnection>();
    connection->impl = new HeadSocketImpl(fd);
    connection->socket = Poco::Net::StreamSocket(connection->impl);
    try {
      connection->remote = connection->socket.peerAddress().toString();
    } catch (const Poco::Exception&) {
      connection->remote = "unknown";
    }
    if (waiting_.size() >= limits_.max_waiting) evictOldest();
    add(std::move(connection), Phase::Head, now);
  }
}

void HeadGate::add(std::shared_ptr<GateConnection> connection, Phase phase, std::chrono::steady_clock::time_point now) {
  const int fd = connection->impl->sockfd();
  if (fd < 0) return;  // closed by its worker
  setBlocking(fd, false);
  auto waiting = std::make_unique<Waiting>();
  waiting->connection = std::move(connection);
  waiting->since = now;
  waiting->resumed = phase == Phase::Resumed;
  waiting->deadline = now + (phase == Phase::Resumed ? limits_.idle_timeout : limits_.head_timeout);
  epoll_event event{};
  // Edge-triggered: the bytes stay in the kernel (peeked), so only new ones wake us.
  event.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
  event.data.fd = fd;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) return;  // dropped: closes the socket
  Waiting& added = *waiting;
  waiting_[fd] = std::move(waiting);
  if (phase == Phase::Lingering) return answer(added, {}, now);
  // Bytes may be there already (a pipelined request): look now, not at the next edge.
  onEvent(fd, EPOLLIN, now);
}

void HeadGate::onEvent(int fd, std::uint32_t events, std::chrono::steady_clock::time_point now) {
  const auto found = waiting_.find(fd);
  if (found == waiting_.end()) return;
  Waiting& waiting = *found->second;
  if (waiting.closing) {
    char discard[16384];
    while (true) {
      const ssize_t got = ::recv(fd, discard, sizeof discard, MSG_DONTWAIT);
      if (got > 0 && static_cast<std::uint64_t>(got) < waiting.drain_left) {
        waiting.drain_left -= static_cast<std::uint64_t>(got);
        continue;
      }
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      return close(fd);  // end of input, an error, or the budget spent
    }
  }
  const ssize_t got = ::recv(fd, peek_.data(), peek_.size(), MSG_PEEK | MSG_DONTWAIT);
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    return close(fd);  // reset: nobody to answer
  }
  if (got == 0) return close(fd);  // closed before sending anything (more)
  if (waiting.resumed && !waiting.sent) {
    // The next request has begun: it gets the whole deadline from the last response.
    waiting.deadline = waiting.since + limits_.head_timeout;
  }
  waiting.sent = true;
  const std::string_view bytes(peek_.data(), static_cast<std::size_t>(got));
  if (const std::size_t end = headEnd(bytes); end > 0 && end <= limits_.max_head) {
    // A small body still on its way: wait for it here (the head's deadline).
    if (const std::size_t body = smallBody(bytes.substr(0, end)); bytes.size() < end + body) return;
    std::shared_ptr<GateConnection> connection = std::move(waiting.connection);
    (void)::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    waiting_.erase(found);
    connection->head_size = end;
    setBlocking(fd, true);
    events_.ready(std::move(connection));
    return;
  }
  if (bytes.size() > limits_.max_head) {
    const std::string reason = fmt::format("request head over {} KiB", limits_.max_head / 1024);
    if (events_.head_refused) events_.head_refused(waiting.connection->remote, reason);
    return answer(waiting, answerText("400 Bad Request", reason), now);
  }
  if ((events & (EPOLLRDHUP | EPOLLHUP)) != 0) {
    const std::string reason = "request head ended early";
    if (events_.head_refused) events_.head_refused(waiting.connection->remote, reason);
    return answer(waiting, answerText("400 Bad Request", reason), now);
  }
}

std::size_t HeadGate::smallBody(std::string_view head) const {
  if (limits_.whole_body_up_to == 0) return 0;
  constexpr std::string_view kName = "content-length:";
  for (std::size_t at = head.find("\r\n"); at != std::string_view::npos; at = head.find("\r\n", at + 2)) {
    const std::string_view line = head.substr(at + 2, head.find("\r\n", at + 2) - (at + 2));
    if (line.size() <= kName.size()) continue;
    bool named = true;
    for (std::size_t i = 0; i < kName.size() && named; ++i)
      named = static_cast<char>(std::tolower(static_cast<unsigned char>(line[i]))) == kName[i];
    if (!named) continue;
    std::uint64_t length = 0;
    std::string_view digits = line.substr(kName.size());
    while (!digits.empty() && (digits.front() == ' ' || digits.front() == '\t')) digits.remove_prefix(1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
    // Anything odd is the framing check's to refuse, after the hand-off.
    if (ec != std::errc{} || length > limits_.whole_body_up_to) return 0;
    return static_cast<std::size_t>(length);
  }
  return 0;
}

void HeadGate::answer(Waiting& waiting, std::string_view response, std::chrono::steady_clock::time_point now) {
  const int fd = waiting.connection->impl->sockfd();
  if (!response.empty()) (void)::send(fd, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(fd, SHUT_WR);
  waiting.closing = true;
  waiting.deadline = now + kLinger;
  // What the client sent so far is read and dropped, or the close would reset the answer away.
  onEvent(fd, EPOLLIN, now);
}

void HeadGate::close(int fd) {
  (void)::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
  waiting_.erase(fd);  // the last reference to the socket: closes it
}

void HeadGate::evictOldest() {
  // Idle keep-alive connections first (closing them is the ordinary keep-alive
  // close), then the head that has waited longest.
  const auto rank = [](const Waiting& w) { return std::make_pair(w.resumed && !w.sent ? 0 : 1, w.since); };
  auto oldest = waiting_.end();
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
    if (oldest == waiting_.end() || rank(*it->second) < rank(*oldest->second)) oldest = it;
  if (oldest != waiting_.end()) close(oldest->first);
}

void HeadGate::expire(std::chrono::steady_clock::time_point now) {
  std::vector<int> due;
  for (const auto& [fd, waiting] : waiting_)
    if (now >= waiting->deadline) due.push_back(fd);
  for (const int fd : due) {
    Waiting& waiting = *waiting_.at(fd);
    if (waiting.closing || (waiting.resumed && !waiting.sent)) {
      close(fd);
      continue;
    }
    if (events_.head_expired) events_.head_expired(waiting.connection->remote);
    answer(waiting, answerText("408 Request Timeout", "request not received in time"), now);
  }
}

}  // namespace mews::http
