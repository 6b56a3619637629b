// The bare-metal port's hooks: the few things only the board (or the RTOS) can do. The board fills a
// BoardHooks once at start-up, before using amp. Every hook is optional; what happens without it is noted.
//
// Thread-safety: set_board_hooks() must be called before any other amp call and not concurrently with one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "amp/metal/log.hpp"

namespace amp::metal::baremetal {

struct BoardHooks {
  /// Disables interrupts and returns the previous state. Without it critical sections only order memory
  /// (correct for a board that runs amp from one context only).
  std::uintptr_t (*irq_save)() = nullptr;
  /// Restores the state irq_save returned.
  void (*irq_restore)(std::uintptr_t state) = nullptr;
  /// Monotonic nanoseconds. Without it monotonic_ns() returns 0 and timeouts never expire by time.
  std::uint64_t (*now_ns)() = nullptr;
  /// Idles until an interrupt or event (WFI/WFE, or an RTOS wait). Without it waiting spins.
  void (*wait_for_event)() = nullptr;
  /// Wakes a core idling in wait_for_event (SEV, or an RTOS signal). Optional.
  void (*send_event)() = nullptr;
  /// Cache maintenance by address range. Without them cache operations only order memory.
  void (*cache_flush)(const std::byte* start, std::size_t len) = nullptr;
  void (*cache_invalidate)(const std::byte* start, std::size_t len) = nullptr;
  /// Unmask or mask an interrupt line at the interrupt controller. Optional: the table keeps its own
  /// enabled flag either way.
  void (*irq_enable)(unsigned vector) = nullptr;
  void (*irq_disable)(unsigned vector) = nullptr;
  /// Writes one log line (a UART, a trace buffer). Without it log lines are dropped.
  void (*log_write)(LogLevel level, std::string_view message) = nullptr;
};

/// Installs the hooks (copied).
void set_board_hooks(const BoardHooks& hooks) noexcept;
/// The installed hooks (all null until set_board_hooks is called).
const BoardHooks& board_hooks() noexcept;

/// RAII critical section: interrupts off (through irq_save) for its lifetime. Nestable.
class CriticalSection {
 public:
  CriticalSection() noexcept;
  ~CriticalSection();
  CriticalSection(const CriticalSection&) = delete;
  CriticalSection& operator=(const CriticalSection&) = delete;

 private:
  std::uintptr_t state_;
};

}  // namespace amp::metal::baremetal
