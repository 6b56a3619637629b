// SPDX-License-Identifier: BSD-3-Clause
// Data-cache maintenance for memory shared with a non-coherent peer (another core, a DMA engine).
//
// flush writes dirty lines back so the peer sees our writes; invalidate drops lines so we see the peer's
// writes. On cache-coherent machines (x86, and Linux on most ARM SoCs for normal shared memory) these only
// order memory. Linux/aarch64 cleans and invalidates by virtual address (DC CIVAC); bare metal calls the
// board's hooks. Thread-safety: safe from any thread.
#pragma once

#include <cstddef>
#include <span>

namespace amp::metal {

void cache_flush(std::span<const std::byte> memory) noexcept;
void cache_invalidate(std::span<const std::byte> memory) noexcept;

}  // namespace amp::metal
