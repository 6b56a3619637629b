// SPDX-License-Identifier: BSD-3-Clause
// SIGINT and SIGTERM in ampctl. They are taken on a thread of their own (watch_signals), so that a waiting
// main thread sleeps instead of polling a flag. What a signal does depends on what the main thread is doing:
// while it is interruptible (it waits on g_wake, on interrupt_fd() or on a condition an InterruptHook
// notifies, and checks interrupted()), the signal wakes it and the command ends cleanly: a summary marked
// interrupted, sockets and remotes cleaned up. Otherwise (a bounded step of setting up: a handshake) the
// process ends at once with 128 + N. A second signal always ends it at once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace ampctl {

/// A flag to sleep on until something (a callback, a signal) sets it.
class Wake {
 public:
  void set();
  void wait();
  /// false when `timeout` passed first.
  bool wait_for(std::chrono::milliseconds timeout);

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool set_ = false;
};

/// Set when a signal arrives while the main thread is interruptible.
extern Wake& g_wake;  // never destroyed (see signals.cpp)

/// Blocks SIGINT/SIGTERM in every thread and takes them on a thread of its own. Call first in main.
void watch_signals();

/// Whether the main thread may be woken (else a signal ends the process at once).
void set_interruptible(bool on);
/// Whether SIGINT or SIGTERM arrived.
bool interrupted();
/// 128 + the signal's number (130 for SIGINT, 143 for SIGTERM); 130 when none arrived yet.
int interrupted_exit_code();
/// A descriptor that becomes readable when a signal arrives (for poll(2) next to other descriptors).
int interrupt_fd();

/// While it lives, `fn` runs (on the signal thread) when a signal arrives: to notify a condition whose
/// waiters check interrupted(). `fn` must not block for long.
class InterruptHook {
 public:
  explicit InterruptHook(std::function<void()> fn);
  ~InterruptHook();
  InterruptHook(const InterruptHook&) = delete;
  InterruptHook& operator=(const InterruptHook&) = delete;

 private:
  std::function<void()> fn_;
};

}  // namespace ampctl
