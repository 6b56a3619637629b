// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/cache.hpp"

#include <atomic>
#include <cstdint>

namespace amp::metal {

namespace {

#if defined(__aarch64__)
// Linux lets EL0 maintain the data cache by address (SCTLR_EL1.UCI); CTR_EL0 gives the smallest line.
std::uintptr_t dcache_line() noexcept {
  std::uint64_t ctr = 0;
  __asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
  return std::uintptr_t{4} << ((ctr >> 16) & 0xF);
}

void clean_invalidate(std::span<const std::byte> m) noexcept {
  if (m.empty()) return;
  const std::uintptr_t line = dcache_line();
  auto p = reinterpret_cast<std::uintptr_t>(m.data()) & ~(line - 1);
  const auto end = reinterpret_cast<std::uintptr_t>(m.data()) + m.size();
  for (; p < end; p += line) __asm__ volatile("dc civac, %0" ::"r"(p) : "memory");
  __asm__ volatile("dsb sy" ::: "memory");
}
#endif

}  // namespace

void cache_flush(std::span<const std::byte> memory) noexcept {
#if defined(__aarch64__)
  clean_invalidate(memory);
#else
  (void)memory;  // x86 and other coherent hosts: only ordering is needed.
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

void cache_invalidate(std::span<const std::byte> memory) noexcept {
#if defined(__aarch64__)
  // Userspace may not invalidate without cleaning; clean+invalidate is the safe equivalent.
  clean_invalidate(memory);
#else
  (void)memory;
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace amp::metal
