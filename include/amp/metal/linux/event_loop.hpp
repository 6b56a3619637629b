// SPDX-License-Identifier: BSD-3-Clause
// EventLoop: interrupts in Linux userspace. An epoll(7) loop that dispatches ready sources to handlers:
// plain descriptors (sockets...), eventfds (doorbells/kicks), UIO devices (/dev/uioN interrupts), timers and
// posted functions.
//
// Driving it: call run() on a thread of your own, or start_thread(); or, to embed it in another loop
// (asio, Qt, your own epoll), wait for fd() to become readable and then call poll(0ms).
//
// Handlers run on the thread that calls poll()/run() (the "loop thread"), one at a time, with no lock of the
// loop held, so a handler may add, remove, enable and disable sources (itself included) and post(). Idle, the
// loop sleeps in epoll_wait and uses no CPU.
//
// Thread-safety:
// - add_*(), post(), remove(), enable(), disable() and stop() may be called from any thread, including from
//   handlers.
// - remove(id) and disable(id) return only once the source's handler is not running and will not start again,
//   so the caller may then free what the handler uses. Exception: called from inside that very handler (on
//   the loop thread) they return at once and the handler just won't run again. A handler must therefore not
//   wait for another thread that is itself blocked in remove()/disable() of that handler's source.
// - poll() and run() must be called by one thread at a time; a concurrent or nested call (a handler calling
//   poll()) fails with kBusy. start_thread(), join() and the destructor belong to the owner of the loop, not
//   to handlers; do not destroy the loop from one of its handlers.
// - Descriptors are borrowed (except timers, which the loop owns): keep them open until their source is
//   removed. A source whose descriptor keeps reporting EPOLLHUP/EPOLLERR (a closed socket) keeps calling its
//   handler until the handler removes or disables it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "amp/metal/linux/event_fd.hpp"
#include "amp/metal/linux/sys_error.hpp"
#include "amp/metal/linux/unique_fd.hpp"

namespace amp::metal {

/// Names a source of an EventLoop. Ids are never reused within a loop.
enum class SourceId : std::uint64_t {};

class EventLoop {
 public:
  static SysResult<std::unique_ptr<EventLoop>> create();

  /// Stops the loop thread started by start_thread() and joins it.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Calls `handler(revents)` whenever `fd` reports any of `epoll_events` (level-triggered; EPOLLHUP and
  /// EPOLLERR are always reported). EPOLLET and EPOLLONESHOT are refused.
  SysResult<SourceId> add_fd(int fd, std::uint32_t epoll_events,
                             std::function<void(std::uint32_t revents)> handler);

  /// Consumes the counter of `event_fd` when it is signalled and calls `handler(count)`; count is never 0.
  SysResult<SourceId> add_event_fd(const EventFd& event_fd, std::function<void(std::uint64_t count)> handler);

  /// The Linux UIO interrupt protocol on `uio_fd` (an open /dev/uioN): when readable, reads the 4-byte total
  /// interrupt count, calls `handler(irq_count)`, then writes a 4-byte 1 to unmask the interrupt again. For
  /// this source, disable() also masks the interrupt (writes 0) and enable() unmasks it (writes 1); remove()
  /// leaves the device as it is. A short or failed read, or end of file, is logged and disables the source.
  SysResult<SourceId> add_uio(int uio_fd, std::function<void(std::uint32_t irq_count)> handler);

  /// A CLOCK_MONOTONIC timer owned by the loop: first expiry after `first` (0 = at once), then every `period`
  /// (0 = one-shot). `handler(expirations)` gets the number of expiries since the last call (more than 1 if
  /// the loop was late or the source disabled meanwhile). A one-shot timer's source stays registered until
  /// removed.
  SysResult<SourceId> add_timer(std::chrono::nanoseconds first, std::chrono::nanoseconds period,
                                std::function<void(std::uint64_t expirations)> handler);

  /// Runs `fn` once on the loop thread at its next dispatch, in posting order. The returned id can cancel
  /// it with remove() until it has run (afterwards remove() gives kNotFound); a disabled post waits until it
  /// is enabled again.
  SysResult<SourceId> post(std::function<void()> fn);

  /// kNotFound for ids that are unknown or already removed. See the thread-safety notes above.
  Status remove(SourceId id);
  Status enable(SourceId id);
  Status disable(SourceId id);

  /// Waits up to `timeout` (-1ms: forever; 0ms: not at all) for ready sources and dispatches them once.
  /// Returns the number of handlers that ran (0 on timeout, on EINTR, or when only woken by stop()).
  SysResult<int> poll(std::chrono::milliseconds timeout);

  /// Dispatches until stop() is called. A stop() that comes before run() makes run() return at once; each
  /// stop() ends one run().
  Status run();
  void stop();

  /// run() on a thread of the loop's own. kBusy if that thread is running already.
  Status start_thread();
  /// Waits for the thread of start_thread() to finish (after a stop()). No-op without one.
  void join();

  /// The epoll descriptor: readable when poll(0ms) has work to do.
  int fd() const noexcept { return epoll_.get(); }

 private:
  struct Source;
  enum class Kind : std::uint8_t;

  EventLoop(UniqueFd epoll, EventFd wake);

  SysResult<SourceId> add_source(std::shared_ptr<Source> src);
  Status arm_locked(Source& src);
  void disarm_locked(Source& src);
  void wait_idle_locked(std::unique_lock<std::mutex>& lock, const Source& src);
  bool dispatch(std::uint64_t id, std::uint32_t revents);
  int run_posts();
  void fail_source(std::uint64_t id, const char* what);

  UniqueFd epoll_;
  EventFd wake_;

  std::mutex mutex_;
  std::condition_variable idle_;  // notified whenever a handler finishes
  std::unordered_map<std::uint64_t, std::shared_ptr<Source>> sources_;
  std::deque<std::uint64_t> posts_;  // pending post ids, in order
  std::uint64_t next_id_ = 1;        // 0 is the wake eventfd
  std::thread::id dispatching_;      // the thread inside poll(), if any

  std::atomic<bool> stop_requested_{false};
  std::thread thread_;
};

}  // namespace amp::metal
