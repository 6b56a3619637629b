// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/sync.hpp"

#include <sched.h>

namespace amp::metal {

void Mutex::lock_contended() noexcept {
  for (unsigned spins = 0;; ++spins) {
    if (!flag_.test(std::memory_order_relaxed) && !flag_.test_and_set(std::memory_order_acquire)) return;
    // The holder is inside a short section; if it was preempted, spinning would only delay it.
    if (spins < 128) {
      cpu_relax();
    } else {
      sched_yield();
    }
  }
}

}  // namespace amp::metal
