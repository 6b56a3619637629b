// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/time.hpp"

#include "amp/metal/baremetal/board.hpp"

namespace amp::metal {

std::uint64_t monotonic_ns() noexcept {
  const auto now = baremetal::board_hooks().now_ns;
  return now != nullptr ? now() : 0;
}

void sleep_ns(std::uint64_t ns) noexcept {
  // Without a clock the deadline could never be observed: waiting would hang, so return at once.
  if (baremetal::board_hooks().now_ns == nullptr) return;
  const std::uint64_t deadline = deadline_after(ns);
  while (monotonic_ns() < deadline) baremetal::wait_for_event();
}

}  // namespace amp::metal
