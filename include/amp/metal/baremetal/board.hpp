// SPDX-License-Identifier: BSD-3-Clause
// The bare-metal port's hooks: the few things only the board (or the RTOS) can do. The board fills a
// BoardHooks once at start-up, before using amp. Every hook is optional; what happens without it is noted.
//
// Thread-safety: set_board_hooks() must be called before any other amp call and not concurrently with one
// (the hooks are read without synchronisation afterwards). The hooks themselves may be called from thread
// and interrupt context (marked per hook) and, on a multi-core board, from several cores at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "amp/metal/log.hpp"

namespace amp::metal::baremetal {

struct BoardHooks {
  /// Disables interrupts and returns the previous state. Without it (or without irq_restore) critical
  /// sections only order memory (correct for a board that runs amp from one context only).
  std::uintptr_t (*irq_save)() = nullptr;
  /// Restores the state irq_save returned.
  void (*irq_restore)(std::uintptr_t state) = nullptr;
  /// Monotonic nanoseconds; callable from interrupts. Without it monotonic_ns() returns 0 and timeouts never
  /// expire by time.
  std::uint64_t (*now_ns)() = nullptr;
  /// Idles until an interrupt or event (WFI/WFE, or an RTOS wait). Without it waiting spins. The event must
  /// be latched (as WFE's event register is): a send_event that happens just before wait_for_event makes it
  /// return at once. For sleep_ns and timed waits something must also wake the core when time passes (a
  /// periodic tick or a timer interrupt), or the hook must return on its own.
  void (*wait_for_event)() = nullptr;
  /// Wakes a core idling in wait_for_event (SEV, or an RTOS signal). Optional; callable from interrupts.
  void (*send_event)() = nullptr;
  /// Cache maintenance by address range. Without them cache operations only order memory.
  void (*cache_flush)(const std::byte* start, std::size_t len) = nullptr;
  void (*cache_invalidate)(const std::byte* start, std::size_t len) = nullptr;
  /// Unmask or mask an interrupt line at the interrupt controller. Optional: the table keeps its own
  /// enabled flag either way. Called inside a critical section.
  void (*irq_enable)(unsigned vector) = nullptr;
  void (*irq_disable)(unsigned vector) = nullptr;
  /// Writes one log line (a UART, a trace buffer). Without it log lines are dropped. Must be safe to call
  /// from every context that logs.
  void (*log_write)(LogLevel level, std::string_view message) = nullptr;
};

/// Installs the hooks (copied). Passing BoardHooks{} removes them all.
void set_board_hooks(const BoardHooks& hooks) noexcept;
/// The installed hooks (all null until set_board_hooks is called).
const BoardHooks& board_hooks() noexcept;

/// Idles once: the wait_for_event hook, or cpu_relax() without it. Callers loop around it re-checking their
/// condition, so a spurious return is harmless.
void wait_for_event() noexcept;
/// Wakes cores idling in wait_for_event(): the send_event hook, or nothing without it.
void send_event() noexcept;

/// RAII critical section: interrupts off (through irq_save/irq_restore) for its lifetime. Nestable: each
/// section restores the state it found, so nested sections unwind in order. It does not exclude other cores;
/// state shared between cores needs a lock inside the section as well.
/// Thread-safety: an object belongs to the context that created it; create and destroy it on one core.
class CriticalSection {
 public:
  CriticalSection() noexcept;
  ~CriticalSection();
  CriticalSection(const CriticalSection&) = delete;
  CriticalSection& operator=(const CriticalSection&) = delete;

 private:
  std::uintptr_t state_ = 0;
  bool masked_ = false;  // irq_save was called, so irq_restore must be
};

}  // namespace amp::metal::baremetal
