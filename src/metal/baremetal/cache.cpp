// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/cache.hpp"

#include <atomic>

#include "amp/metal/baremetal/board.hpp"

namespace amp::metal {

void cache_flush(std::span<const std::byte> memory) noexcept {
  // Our writes must be issued before the lines are cleaned.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const auto flush = baremetal::board_hooks().cache_flush;
  if (flush != nullptr && !memory.empty()) flush(memory.data(), memory.size());
}

void cache_invalidate(std::span<const std::byte> memory) noexcept {
  const auto invalidate = baremetal::board_hooks().cache_invalidate;
  if (invalidate != nullptr && !memory.empty()) invalidate(memory.data(), memory.size());
  // Later reads must not be satisfied before the lines were dropped.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace amp::metal
