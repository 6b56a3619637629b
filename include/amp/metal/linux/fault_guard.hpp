// SPDX-License-Identifier: BSD-3-Clause
// FaultGuard: survives SIGBUS from shared memory that another process can shrink.
//
// A MAP_SHARED mapping of a file (a POSIX shm object, a regular file, a memfd not sealed against shrinking)
// faults with SIGBUS where the file no longer reaches: a peer that ftruncate()s the object under us would
// crash us in the middle of a ring access. Sealing prevents that for memfds; for the others amp does what
// Wayland compositors do for wl_shm pools: a process-wide SIGBUS handler looks the faulting address up among
// the watched mappings, maps zero-filled private memory over the whole mapping in place (so the faulting
// access and every later one succeed, reading zeros) and marks the guard tripped; its owner then ends what
// used the memory with a clear error. A fault outside every watched mapping goes to the handler that was
// there before (or the default action: the process dies as it would have).
//
// The handler is installed the first time a mapping is watched. Up to kMaxFaultGuards mappings are watched
// at once. A SIGBUS handler the program installs after that replaces amp's and turns every guard off (the
// program's handler is then on its own); one installed before is kept and called for faults not ours.
//
// Thread-safety: watch(), destruction and notify_on_trip() may be called from any thread; tripped() too (an
// atomic load). The fault itself may happen on any thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "amp/metal/linux/sys_error.hpp"

namespace amp::metal {

inline constexpr std::size_t kMaxFaultGuards = 1024;

class FaultGuard {
 public:
  FaultGuard() noexcept = default;
  /// Watches the mapping [base, base + length) (page-aligned). kNoMemory when kMaxFaultGuards are in use.
  static SysResult<FaultGuard> watch(void* base, std::size_t length);

  FaultGuard(FaultGuard&& o) noexcept : slot_(o.slot_) { o.slot_ = -1; }
  FaultGuard& operator=(FaultGuard&& o) noexcept;
  FaultGuard(const FaultGuard&) = delete;
  FaultGuard& operator=(const FaultGuard&) = delete;
  /// Stops watching (call before unmapping).
  ~FaultGuard() { reset(); }
  void reset() noexcept;

  bool active() const noexcept { return slot_ >= 0; }
  /// Whether a fault hit the mapping: it now holds zero-filled private memory, the peer's data is gone.
  bool tripped() const noexcept;
  /// When it trips, the handler writes an 8-byte 1 to `event_fd` (an eventfd that stays open while set;
  /// -1: none), so an event loop learns of it at once.
  void notify_on_trip(int event_fd) noexcept;

 private:
  explicit FaultGuard(int slot) noexcept : slot_(slot) {}
  int slot_ = -1;
};

}  // namespace amp::metal
