// SPDX-License-Identifier: BSD-3-Clause
// read(2) and write(2) that cannot block past a time limit, whatever another process does to the file.
//
// A descriptor passed to another process over a UNIX socket (an eventfd doorbell) shares its *open file*
// with it, and with that the O_NONBLOCK flag: the peer can clear the flag and then fill (or drain) the
// eventfd's counter, and a plain write (or read) blocks for as long as the peer likes. A bounded call
// publishes itself (a sequence number and a deadline, in atomics: no system call) to a watchdog thread,
// one per process, which interrupts a call still blocked past its deadline with a signal (again every
// 50 ms until the call returns), and the call fails with errno ETIMEDOUT. The watchdog looks every 50 ms
// while calls are being made and sleeps (0% CPU) after 200 ms without any; the first call after that
// wakes it (one futex system call). So the bound is the limit rounded up to the next 50 ms tick. Reads
// that must never wait at all have another way: read_nowait(), one preadv2(RWF_NOWAIT), which ignores
// the file's O_NONBLOCK.
//
// What it takes from the process: the watchdog thread (started on the first bounded call); a handler that
// does nothing for the realtime signal bounded_io_signal() (SIGRTMAX - 2), installed the first time,
// unless the program has a handler of its own there (then the calls fall back to checking O_NONBLOCK first,
// which a peer racing with us can still defeat, and bounded_io_guarded() says false); and, in each thread
// that makes a bounded call, the signal unblocked. A program that later blocks the signal in such a thread,
// or installs its own handler for it (SA_RESTART would restart the blocked call; SIG_DFL would end the
// process), loses the bound: leave SIGRTMAX - 2 to amp. After fork() the child starts a watchdog of its
// own on its first call.
//
// Thread-safety: any thread may call these at any time.
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
/// A read that never waits, whatever O_NONBLOCK says: -1 with EAGAIN when nothing is there. One
/// preadv2(RWF_NOWAIT) where the file supports it (eventfds on current kernels), else bounded_read().
ssize_t read_nowait(int fd, void* buf, std::size_t n, std::chrono::nanoseconds limit) noexcept;

/// The realtime signal that interrupts a bounded call.
int bounded_io_signal() noexcept;
/// Whether this thread's bounded calls are really bounded (the signal's handler is amp's, the thread
/// receives it and the watchdog runs). Registers this thread with the watchdog if it is not yet.
bool bounded_io_guarded() noexcept;

}  // namespace amp::metal
