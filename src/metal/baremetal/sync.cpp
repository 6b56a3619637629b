// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/sync.hpp"

#include "amp/metal/baremetal/board.hpp"
#include "amp/metal/time.hpp"

namespace amp::metal {

void Mutex::lock() noexcept {
  while (flag_.test_and_set(std::memory_order_acquire)) {
    // Test before retrying the read-modify-write, idling between tests: unlock() sends an event.
    while (flag_.test(std::memory_order_relaxed)) baremetal::wait_for_event();
  }
}

void Mutex::unlock() noexcept {
  flag_.clear(std::memory_order_release);
  // A contended locker may be idling in wait_for_event; on ARMv7 clearing the flag alone does not wake it.
  baremetal::send_event();
}

bool Condition::wait_until(Mutex& m, std::uint64_t deadline_ns) noexcept {
  // Read the generation while still holding m, so a notify issued after our caller's predicate check and
  // under m is never missed.
  const std::uint32_t seen = generation_.load(std::memory_order_acquire);
  m.unlock();
  bool notified = false;
  for (;;) {
    if (generation_.load(std::memory_order_acquire) != seen) {
      notified = true;
      break;
    }
    if (monotonic_ns() >= deadline_ns) break;
    baremetal::wait_for_event();
  }
  m.lock();
  return notified;
}

void Condition::notify_all() noexcept {
  generation_.fetch_add(1, std::memory_order_acq_rel);
  baremetal::send_event();
}

}  // namespace amp::metal
