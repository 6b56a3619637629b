// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/baremetal/irq.hpp"

#include "amp/metal/baremetal/board.hpp"
#include "amp/metal/sync.hpp"

namespace amp::metal::baremetal {

namespace {

// Atomics, so that dispatch reads them without a lock; changes are serialised by TableLock. The enabled flags
// are a bitmap (a vector's entry is its handler pointer and one bit: 4 B + 1 bit on 32-bit cores, not 8 B).
constinit std::atomic<IrqHandler*> g_handlers[kMaxIrqVectors] = {};
constinit std::atomic<std::uint32_t> g_enabled[(kMaxIrqVectors + 31) / 32] = {};
constinit std::atomic<std::uint32_t> g_spurious{0};
constinit Spinlock g_table_lock;

std::atomic<std::uint32_t>& enabled_word(unsigned vector) noexcept {
  return g_enabled[vector / 32];
}
constexpr std::uint32_t enabled_bit(unsigned vector) noexcept {
  return std::uint32_t{1} << (vector % 32);
}
bool enabled(unsigned vector) noexcept {
  return (enabled_word(vector).load(std::memory_order_acquire) & enabled_bit(vector)) != 0;
}
void set_enabled(unsigned vector, bool on) noexcept {
  if (on) {
    enabled_word(vector).fetch_or(enabled_bit(vector), std::memory_order_release);
  } else {
    enabled_word(vector).fetch_and(~enabled_bit(vector), std::memory_order_release);
  }
}
/// Interrupts off on this core (so our own ISR cannot see a change half-done or deadlock on the spinlock),
/// then the spinlock (so other cores cannot interleave).
class TableLock {
 public:
  TableLock() noexcept { g_table_lock.lock(); }
  ~TableLock() { g_table_lock.unlock(); }
  TableLock(const TableLock&) = delete;
  TableLock& operator=(const TableLock&) = delete;

 private:
  CriticalSection section_;  // constructed before the body takes the lock, destroyed after it drops it
};

}  // namespace

Status irq_register(unsigned vector, IrqHandler& handler) noexcept {
  if (vector >= kMaxIrqVectors) return Status::kOutOfRange;
  TableLock lock;
  std::atomic<IrqHandler*>& slot = g_handlers[vector];
  if (slot.load(std::memory_order_relaxed) != nullptr) return Status::kAlreadyExists;
  // Release: a dispatch that sees the pointer also sees the handler object's construction.
  slot.store(&handler, std::memory_order_release);
  return Status::kOk;
}

Status irq_unregister(unsigned vector) noexcept {
  if (vector >= kMaxIrqVectors) return Status::kOutOfRange;
  TableLock lock;
  std::atomic<IrqHandler*>& slot = g_handlers[vector];
  if (slot.load(std::memory_order_relaxed) == nullptr) return Status::kNotFound;
  if (enabled(vector)) {
    if (board_hooks().irq_disable != nullptr) board_hooks().irq_disable(vector);
    set_enabled(vector, false);
  }
  slot.store(nullptr, std::memory_order_release);
  return Status::kOk;
}

Status irq_enable(unsigned vector) noexcept {
  if (vector >= kMaxIrqVectors) return Status::kOutOfRange;
  TableLock lock;
  // Flag first: an interrupt arriving as soon as the line is unmasked must find the vector enabled.
  set_enabled(vector, true);
  if (board_hooks().irq_enable != nullptr) board_hooks().irq_enable(vector);
  return Status::kOk;
}

Status irq_disable(unsigned vector) noexcept {
  if (vector >= kMaxIrqVectors) return Status::kOutOfRange;
  TableLock lock;
  // Mask first, so the controller stops raising the line before the table stops accepting it.
  if (board_hooks().irq_disable != nullptr) board_hooks().irq_disable(vector);
  set_enabled(vector, false);
  return Status::kOk;
}

bool irq_is_enabled(unsigned vector) noexcept {
  return vector < kMaxIrqVectors && enabled(vector);
}

void irq_dispatch(unsigned vector) noexcept {
  if (vector < kMaxIrqVectors) {
    if (enabled(vector)) {
      if (IrqHandler* h = g_handlers[vector].load(std::memory_order_acquire); h != nullptr) {
        h->handle_irq(vector);
        return;
      }
    }
  }
  g_spurious.fetch_add(1, std::memory_order_relaxed);
}

std::uint32_t irq_spurious_count() noexcept {
  return g_spurious.load(std::memory_order_relaxed);
}

}  // namespace amp::metal::baremetal
