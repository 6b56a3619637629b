// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/baremetal/irq.hpp"

#include "amp/metal/baremetal/board.hpp"
#include "amp/metal/sync.hpp"

namespace amp::metal::baremetal {

namespace {

// Each field is an atomic of its own so that dispatch reads it without a lock; changes are serialised by
// TableLock.
struct IrqEntry {
  std::atomic<IrqHandler*> handler{nullptr};
  std::atomic<bool> enabled{false};
};

constinit IrqEntry g_table[kMaxIrqVectors];
constinit std::atomic<std::uint32_t> g_spurious{0};
constinit Spinlock g_table_lock;

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
  IrqEntry& e = g_table[vector];
  if (e.handler.load(std::memory_order_relaxed) != nullptr) return Status::kAlreadyExists;
  // Release: a dispatch that sees the pointer also sees the handler object's construction.
  e.handler.store(&handler, std::memory_order_release);
  return Status::kOk;
}

Status irq_unregister(unsigned vector) noexcept {
  if (vector >= kMaxIrqVectors) return Status::kOutOfRange;
  TableLock lock;
  IrqEntry& e = g_table[vector];
  if (e.handler.load(std::memory_order_relaxed) == nullptr) return Status::kNotFound;
  if (e.enabled.load(std::memory_order_relaxed)) {
    if (board_hooks().irq_disable != nullptr) board_hooks().irq_disable(vector);
    e.enabled.store(false, std::memory_order_release);
  }
  e.handler.store(nullptr, std::memory_order_release);
  return Status::kOk;
}

Status irq_enable(unsigned vector) noexcept {
  if (vector >= kMaxIrqVectors) return Status::kOutOfRange;
  TableLock lock;
  // Flag first: an interrupt arriving as soon as the line is unmasked must find the vector enabled.
  g_table[vector].enabled.store(true, std::memory_order_release);
  if (board_hooks().irq_enable != nullptr) board_hooks().irq_enable(vector);
  return Status::kOk;
}

Status irq_disable(unsigned vector) noexcept {
  if (vector >= kMaxIrqVectors) return Status::kOutOfRange;
  TableLock lock;
  // Mask first, so the controller stops raising the line before the table stops accepting it.
  if (board_hooks().irq_disable != nullptr) board_hooks().irq_disable(vector);
  g_table[vector].enabled.store(false, std::memory_order_release);
  return Status::kOk;
}

bool irq_is_enabled(unsigned vector) noexcept {
  return vector < kMaxIrqVectors && g_table[vector].enabled.load(std::memory_order_acquire);
}

void irq_dispatch(unsigned vector) noexcept {
  if (vector < kMaxIrqVectors) {
    const IrqEntry& e = g_table[vector];
    if (e.enabled.load(std::memory_order_acquire)) {
      if (IrqHandler* h = e.handler.load(std::memory_order_acquire); h != nullptr) {
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
