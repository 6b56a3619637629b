// SPDX-License-Identifier: BSD-3-Clause
// The bare-metal interrupt table: one handler object per vector, an enabled flag per vector, and a dispatch
// function for the board's interrupt service routine.
//
// The board's ISR reads the active vector from its interrupt controller and calls irq_dispatch(vector).
// Dispatch runs the registered handler when the vector is both registered and enabled; anything else (a
// vector out of range, no handler, disabled) is counted as spurious and otherwise ignored.
//
// Thread-safety:
// - irq_dispatch, irq_is_enabled and irq_spurious_count are lock-free and may be called from any context,
//   including interrupt handlers and other cores.
// - irq_register/irq_unregister/irq_enable/irq_disable update the table inside a CriticalSection and under a
//   spinlock, so an interrupt on this core never sees a half-done change and several cores may call them.
//   They may be called from a handler too (for example a handler disabling its own vector): dispatch holds
//   no lock while a handler runs. Do not call them from an interrupt that can preempt another call to them
//   on the same core when the board has no irq_save hook.
// - After irq_unregister returns, no new dispatch on this core calls the old handler. A dispatch already
//   running on another core (or in an interrupt that this call preempted) may still finish with it, so a
//   handler object must outlive its registration by that much; static handlers are the usual choice.
#pragma once

#include <atomic>
#include <cstdint>

#include "amp/metal/result.hpp"

#ifndef AMP_METAL_MAX_IRQS
/// Size of the interrupt table. Define it for the whole build (every translation unit must agree).
#define AMP_METAL_MAX_IRQS 64
#endif

namespace amp::metal::baremetal {

/// Vectors 0 .. kMaxIrqVectors - 1 can be registered.
inline constexpr unsigned kMaxIrqVectors = AMP_METAL_MAX_IRQS;
static_assert(kMaxIrqVectors > 0, "AMP_METAL_MAX_IRQS must be at least 1");

/// Something that handles an interrupt. Runs in interrupt context: keep it short and non-blocking.
class IrqHandler {
 public:
  virtual void handle_irq(unsigned vector) noexcept = 0;

 protected:
  ~IrqHandler() = default;
};

/// A handler that forwards to any callable taking (unsigned vector), for example a lambda:
///   static IrqFunction uart_irq([](unsigned) { uart.on_interrupt(); });
template <class F>
class IrqFunction final : public IrqHandler {
 public:
  explicit IrqFunction(F f) : f_(static_cast<F&&>(f)) {}
  void handle_irq(unsigned vector) noexcept override { f_(vector); }

 private:
  F f_;
};

/// Installs `handler` for `vector`, which stays disabled until irq_enable. The table keeps a reference.
/// kOutOfRange: vector >= kMaxIrqVectors. kAlreadyExists: the vector has a handler (unregister it first).
[[nodiscard]] Status irq_register(unsigned vector, IrqHandler& handler) noexcept;
/// Removes the vector's handler and disables the vector (so an unhandled line cannot keep firing).
/// kOutOfRange: vector >= kMaxIrqVectors. kNotFound: no handler was registered.
[[nodiscard]] Status irq_unregister(unsigned vector) noexcept;

/// Sets the vector's enabled flag, then unmasks it through the board's irq_enable hook (if any). A vector
/// may be enabled before a handler is registered; its interrupts count as spurious meanwhile.
/// kOutOfRange: vector >= kMaxIrqVectors.
[[nodiscard]] Status irq_enable(unsigned vector) noexcept;
/// Masks the vector through the board's irq_disable hook (if any), then clears its enabled flag.
/// kOutOfRange: vector >= kMaxIrqVectors.
[[nodiscard]] Status irq_disable(unsigned vector) noexcept;
/// Whether the vector is enabled; false for a vector out of range.
bool irq_is_enabled(unsigned vector) noexcept;

/// Called by the board's ISR: runs the handler when `vector` is registered and enabled, otherwise counts a
/// spurious interrupt. Never fails, whatever the vector.
void irq_dispatch(unsigned vector) noexcept;
/// Interrupts dispatched to no handler (out of range, unregistered or disabled) since start-up. Wraps.
std::uint32_t irq_spurious_count() noexcept;

}  // namespace amp::metal::baremetal
