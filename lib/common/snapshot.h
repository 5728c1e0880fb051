// A value that is replaced whole at runtime (a configuration reload) while
// other threads read it: readers take a shared_ptr to the current version and
// keep using that version for as long as they hold it (a request, an
// attempt), so a reload never changes settings under a request in progress.
// A mutex rather than std::atomic<std::shared_ptr>: a copy costs one
// uncontended lock, and the sanitizers understand it.
#pragma once

#include <memory>
#include <mutex>

namespace mews {

template <typename T>
class Snapshot {
 public:
  explicit Snapshot(std::shared_ptr<const T> initial) : value_(std::move(initial)) {}

  [[nodiscard]] std::shared_ptr<const T> get() const {
    const std::lock_guard lock(mutex_);
    return value_;
  }

  void set(std::shared_ptr<const T> next) {
    {
      const std::lock_guard lock(mutex_);
      value_.swap(next);
    }
    // `next` now holds the old version: released here, outside the lock.
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const T> value_;
};

}  // namespace mews
