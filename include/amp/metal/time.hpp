// SPDX-License-Identifier: BSD-3-Clause
// Monotonic time. Linux: CLOCK_MONOTONIC. Bare metal: the board's now_ns hook.
// Thread-safety: all functions may be called from any thread (and, on bare metal, from interrupts if the
// board's hook allows it).
#pragma once

#include <cstdint>

namespace amp::metal {

/// Nanoseconds since an arbitrary fixed point; never goes backwards.
std::uint64_t monotonic_ns() noexcept;

/// Sleeps (Linux) or waits (bare metal) for at least `ns` nanoseconds.
void sleep_ns(std::uint64_t ns) noexcept;

/// monotonic_ns() + timeout, saturating: a huge timeout means "never".
inline std::uint64_t deadline_after(std::uint64_t timeout_ns) noexcept {
  const std::uint64_t now = monotonic_ns();
  return timeout_ns > ~std::uint64_t{0} - now ? ~std::uint64_t{0} : now + timeout_ns;
}

}  // namespace amp::metal
