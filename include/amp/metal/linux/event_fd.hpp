// SPDX-License-Identifier: BSD-3-Clause
// EventFd: an eventfd(2) counter, the Linux userspace "doorbell". signal() adds to the counter (a kick, one
// write(2)); consume() reads and resets it. The descriptor is non-blocking and close-on-exec, and it can be
// registered with an EventLoop or passed to another process over a UNIX socket. A process it was passed to
// shares its O_NONBLOCK flag and could clear it: signal() is therefore bounded in time and consume() never
// waits (bounded_io.hpp); they fail with kBroken when the peer made them block. An eventfd made with
// create_private() is never passed on: its signal() is a plain write.
//
// Thread-safety: signal(), consume() and fd() may be called from any number of threads at once (the kernel
// serialises the counter). Moving or destroying an EventFd must not race with any other use of it.
#pragma once

#include <cstdint>

#include "amp/metal/linux/sys_error.hpp"
#include "amp/metal/linux/unique_fd.hpp"

namespace amp::metal {

class EventFd {
 public:
  /// A new eventfd (EFD_CLOEXEC | EFD_NONBLOCK) whose counter starts at `initial`, to share with a peer.
  static SysResult<EventFd> create(std::uint64_t initial = 0);
  /// The same, for this process alone (an event loop's wake-up): never pass its descriptor on.
  static SysResult<EventFd> create_private(std::uint64_t initial = 0);

  /// Takes ownership of an existing eventfd, e.g. one received over a UNIX socket. Fails with
  /// kInvalidArgument (closing `fd`) if it is not an open eventfd. Sets O_NONBLOCK and FD_CLOEXEC on it; note
  /// that O_NONBLOCK belongs to the open file, so it also applies to other descriptors sharing it. A
  /// semaphore eventfd (EFD_SEMAPHORE) is refused too.
  static SysResult<EventFd> adopt(UniqueFd fd);

  EventFd(EventFd&&) noexcept = default;
  EventFd& operator=(EventFd&&) noexcept = default;
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;
  ~EventFd() = default;

  /// Adds `n` to the counter, waking whoever waits for the descriptor to become readable. kWouldBlock if the
  /// counter would overflow (it holds 2^64-2 already: only someone writing huge values gets it there);
  /// kInvalidArgument for n == 2^64-1; kBroken when the write blocked (someone cleared O_NONBLOCK).
  Status signal(std::uint64_t n = 1);

  /// Returns the counter and resets it to 0; returns 0 at once when nothing was pending; kBroken when the
  /// read blocked (someone sharing the descriptor cleared O_NONBLOCK and took the count first).
  SysResult<std::uint64_t> consume();

  int fd() const noexcept { return fd_.get(); }

 private:
  EventFd(UniqueFd fd, bool shared) noexcept : fd_(std::move(fd)), shared_(shared) {}
  static SysResult<EventFd> make(std::uint64_t initial, bool shared);

  UniqueFd fd_;
  bool shared_ = true;  // someone else may hold the open file: bound the writes
};

}  // namespace amp::metal
