#include "delivery/deadline.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <Poco/Net/StreamSocket.h>

namespace mews::delivery {

AttemptDeadline::~AttemptDeadline() {
  closeWatched();
}

void AttemptDeadline::closeWatched() {
  if (watched_fd_ >= 0) ::close(watched_fd_);
  watched_fd_ = -1;
}

void AttemptDeadline::watch(const Poco::Net::StreamSocket& socket) {
  const int fd = socket.impl()->sockfd();
  const std::lock_guard lock(mutex_);
  closeWatched();
  if (fd < 0) return;
  // A failed dup (no descriptors left) leaves the attempt to Poco's
  // per-operation timeouts, which are set to the time it has left.
  watched_fd_ = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (watched_fd_ >= 0 && expired_) ::shutdown(watched_fd_, SHUT_RDWR);
}

std::chrono::milliseconds AttemptDeadline::remaining() const {
  const auto now = std::chrono::steady_clock::now();
  const std::lock_guard lock(mutex_);
  const SteadyTime due = dueAt();
  if (expired_ || now >= due) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(due - now);
}

bool AttemptDeadline::expired() const {
  const auto now = std::chrono::steady_clock::now();
  const std::lock_guard lock(mutex_);
  return expired_ || now >= dueAt();
}

bool AttemptDeadline::abandoned() const {
  const auto now = std::chrono::steady_clock::now();
  const std::lock_guard lock(mutex_);
  return cut_at_ < at_ && now >= cut_at_;
}

void AttemptDeadline::expire() {
  const std::lock_guard lock(mutex_);
  if (expired_) return;
  expired_ = true;
  // Both directions: a blocked recv returns end-of-stream, a blocked send EPIPE.
  if (watched_fd_ >= 0) ::shutdown(watched_fd_, SHUT_RDWR);
}

void AttemptDeadline::cut(SteadyTime at) {
  const std::lock_guard lock(mutex_);
  cut_at_ = std::min(cut_at_, at);
}

AttemptWatchdog::AttemptWatchdog() {
  thread_ = std::thread([this] { run(); });
}

AttemptWatchdog::~AttemptWatchdog() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

AttemptWatchdog::Armed::~Armed() {
  watchdog_.disarm(deadline_);
}

AttemptWatchdog::Armed AttemptWatchdog::arm(std::chrono::milliseconds timeout, std::string group) {
  std::shared_ptr<AttemptDeadline> deadline;
  {
    const std::lock_guard lock(mutex_);
    const auto group_cut = group_cut_.find(group);
    const SteadyTime cut = group_cut == group_cut_.end() ? cut_at_ : std::min(cut_at_, group_cut->second);
    deadline = std::make_shared<AttemptDeadline>(std::chrono::steady_clock::now() + timeout, cut, std::move(group));
    armed_.insert(deadline);
  }
  wake_.notify_one();  // it may be due before the one the watchdog waits for
  return Armed(*this, std::move(deadline));
}

void AttemptWatchdog::disarm(const std::shared_ptr<AttemptDeadline>& deadline) {
  const std::lock_guard lock(mutex_);
  armed_.erase(deadline);
}

void AttemptWatchdog::cutAllBy(SteadyTime at) {
  {
    const std::lock_guard lock(mutex_);
    cut_at_ = std::min(cut_at_, at);
    for (const auto& deadline : armed_) deadline->cut(at);
  }
  wake_.notify_one();
}

void AttemptWatchdog::cutGroupBy(const std::string& group, SteadyTime at) {
  {
    const std::lock_guard lock(mutex_);
    const auto [it, inserted] = group_cut_.emplace(group, at);
    if (!inserted) it->second = std::min(it->second, at);
    for (const auto& deadline : armed_)
      if (deadline->group_ == group) deadline->cut(at);
  }
  wake_.notify_one();
}

void AttemptWatchdog::clearGroupCut(const std::string& group) {
  const std::lock_guard lock(mutex_);
  group_cut_.erase(group);
}

void AttemptWatchdog::run() {
  pthread_setname_np(pthread_self(), "deadlines");
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto now = std::chrono::steady_clock::now();
    SteadyTime next = SteadyTime::max();
    for (const auto& deadline : armed_) {
      SteadyTime due;
      {
        const std::lock_guard deadline_lock(deadline->mutex_);
        if (deadline->expired_) continue;  // acted on; stays until its attempt disarms it
        due = deadline->dueAt();
      }
      if (due <= now)
        deadline->expire();
      else
        next = std::min(next, due);
    }
    if (next == SteadyTime::max())
      wake_.wait(lock);
    else
      wake_.wait_until(lock, next);
  }
}

}  // namespace mews::delivery
