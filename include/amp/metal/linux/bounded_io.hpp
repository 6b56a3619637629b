// SPDX-License-Identifier: BSD-3-Clause
// read(2) and write(2) that cannot block past a time limit, whatever another process does to the file.
//
// A descriptor passed to another process over a UNIX socket (an eventfd doorbell) shares its *open file*
// with it, and with that the O_NONBLOCK flag: the peer can clear the flag and then fill (or drain) the
// eventfd's counter, and a plain write (or read) blocks for as long as the peer likes. These calls arm a
// per-thread CLOCK_MONOTONIC timer around the system call; if the call is still blocked when the limit
// passes, the timer's signal interrupts it and the call fails with errno ETIMEDOUT. On a descriptor that is
// really non-blocking the timer never fires: the cost is two timer_settime(2) calls.
//
// The signal is bounded_io_signal() (SIGRTMAX - 2). amp installs a handler that does nothing for it the first
// time a bounded call runs, unless the program has its own handler there already; then, and in a thread that
// blocks the signal and cannot unblock it, the calls fall back to checking O_NONBLOCK first (which a peer
// racing with us can still defeat) and bounded_io_guarded() says false.
//
// Thread-safety: any thread may call these at any time; each thread has its own timer (deleted when the
// thread ends).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>

namespace amp::metal {

/// The limit amp uses for notification descriptors shared with a peer: such a read or write never blocks
/// unless the peer interfered, so any block at all means interference.
inline constexpr std::chrono::milliseconds kSharedFdLimit{100};

/// ::write(fd, buf, n), retried on EINTR, never blocked for longer than `limit`: -1 with errno ETIMEDOUT
/// then.
ssize_t bounded_write(int fd, const void* buf, std::size_t n, std::chrono::nanoseconds limit) noexcept;
/// ::read(fd, buf, n), likewise.
ssize_t bounded_read(int fd, void* buf, std::size_t n, std::chrono::nanoseconds limit) noexcept;

/// The realtime signal that interrupts a bounded call.
int bounded_io_signal() noexcept;
/// Whether this thread's bounded calls are really bounded (the signal's handler is amp's and the thread
/// receives it). Sets up this thread's timer if it has none yet.
bool bounded_io_guarded() noexcept;

}  // namespace amp::metal
