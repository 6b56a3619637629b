// SPDX-License-Identifier: BSD-3-Clause
// Locks and conditions with one interface on every platform.
//
// - Spinlock: a test-and-test-and-set lock on an atomic flag. For short sections; never sleeps.
// - Mutex: std::mutex on Linux; on bare metal a spinlock that idles the core (wait_for_event) while
// contended.
// - Condition: std::condition_variable on Linux; on bare metal a generation counter, with waiters idling in
//   the board's wait_for_event hook and notify calling send_event. Waits use monotonic_ns() deadlines.
// - LockGuard: scoped locking for any of them.
//
// Thread-safety: these are the synchronisation primitives; each is safe to use from many threads at once.
// On bare metal, Mutex and Condition::wait are for thread (non-interrupt) context; notify may be called
// from an interrupt handler.
#pragma once

#include <atomic>
#include <cstdint>

#include "amp/metal/platform.hpp"

#if AMP_METAL_LINUX
#include <chrono>
#include <condition_variable>
#include <mutex>
#endif

namespace amp::metal {

class Spinlock {
 public:
  void lock() noexcept {
    while (flag_.test_and_set(std::memory_order_acquire)) {
      while (flag_.test(std::memory_order_relaxed)) cpu_relax();
    }
  }
  bool try_lock() noexcept { return !flag_.test_and_set(std::memory_order_acquire); }
  void unlock() noexcept { flag_.clear(std::memory_order_release); }

 private:
  std::atomic_flag flag_ = ATOMIC_FLAG_INIT;
};

template <class Lock>
class LockGuard {
 public:
  explicit LockGuard(Lock& lock) noexcept : lock_(lock) { lock_.lock(); }
  ~LockGuard() { lock_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Lock& lock_;
};

#if AMP_METAL_LINUX

/// A lock for short critical sections: acquiring takes one atomic exchange, releasing a plain store (no
/// locked instruction, so the holder's pending stores to shared memory are not drained twice per section).
/// Contended, it spins briefly, then yields the CPU.
class Mutex {
 public:
  void lock() noexcept {
    if (!flag_.test_and_set(std::memory_order_acquire)) return;
    lock_contended();
  }
  bool try_lock() noexcept { return !flag_.test_and_set(std::memory_order_acquire); }
  void unlock() noexcept { flag_.clear(std::memory_order_release); }

 private:
  void lock_contended() noexcept;
  std::atomic_flag flag_ = ATOMIC_FLAG_INIT;
};

class Condition {
 public:
  /// Waits for a notification (or a spurious wake-up). `m` is locked on entry and on return.
  void wait(Mutex& m) { cv_.wait(m); }
  /// As wait(); returns false when monotonic_ns() reached `deadline_ns` first.
  bool wait_until(Mutex& m, std::uint64_t deadline_ns) {
    // steady_clock is CLOCK_MONOTONIC on Linux, the clock monotonic_ns() reads.
    const auto deadline = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(
        deadline_ns > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<std::int64_t>(deadline_ns)));
    return cv_.wait_until(m, deadline) == std::cv_status::no_timeout;
  }
  void notify_one() noexcept { cv_.notify_one(); }
  void notify_all() noexcept { cv_.notify_all(); }

 private:
  std::condition_variable_any cv_;
};

#else

class Mutex {
 public:
  void lock() noexcept;
  bool try_lock() noexcept { return !flag_.test_and_set(std::memory_order_acquire); }
  void unlock() noexcept;

 private:
  std::atomic_flag flag_ = ATOMIC_FLAG_INIT;
};

class Condition {
 public:
  void wait(Mutex& m) noexcept { (void)wait_until(m, ~std::uint64_t{0}); }
  bool wait_until(Mutex& m, std::uint64_t deadline_ns) noexcept;
  void notify_one() noexcept { notify_all(); }
  void notify_all() noexcept;

 private:
  std::atomic<std::uint32_t> generation_{0};
};

#endif

}  // namespace amp::metal
