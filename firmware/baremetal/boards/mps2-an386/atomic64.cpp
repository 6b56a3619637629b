// SPDX-License-Identifier: BSD-3-Clause
// 64-bit atomic loads and stores for the Cortex-M4, which has no 64-bit exclusive access (no LDREXD):
// GCC calls these libatomic functions for std::atomic<std::uint64_t> (rpmsg::Device's message count, in an
// app built on Device: the firmware's LiteDevice needs none), and the firmware links no libatomic. The M4 is this board's only core, so masking interrupts around the two
// word accesses makes them atomic against every other context there is.
#include <cstdint>

namespace {

std::uint32_t mask_interrupts() noexcept {
  std::uint32_t primask;
  __asm__ __volatile__("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
  return primask;
}

void restore_interrupts(std::uint32_t primask) noexcept {
  __asm__ __volatile__("msr primask, %0" ::"r"(primask) : "memory");
}

}  // namespace

extern "C" {

std::uint64_t __atomic_load_8(const volatile void* at, int) {
  const std::uint32_t state = mask_interrupts();
  const std::uint64_t v = *static_cast<const volatile std::uint64_t*>(at);
  restore_interrupts(state);
  return v;
}

void __atomic_store_8(volatile void* at, std::uint64_t v, int) {
  const std::uint32_t state = mask_interrupts();
  *static_cast<volatile std::uint64_t*>(at) = v;
  restore_interrupts(state);
}

}  // extern "C"
