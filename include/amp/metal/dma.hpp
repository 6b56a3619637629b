// SPDX-License-Identifier: BSD-3-Clause
// DMA mapping: hand a buffer inside an IoRegion to a device (or the peer core) by device address, with the
// cache maintenance the direction needs. Thread-safety: stateless; safe from any thread.
#pragma once

#include <cstddef>
#include <span>

#include "amp/metal/io_region.hpp"
#include "amp/metal/result.hpp"

namespace amp::metal {

enum class DmaDirection : std::uint8_t {
  kToDevice,       ///< The device reads the buffer: flush before.
  kFromDevice,     ///< The device writes the buffer: invalidate before and after.
  kBidirectional,  ///< Both: flush before, invalidate after.
};

/// Returns the device address of `buffer`, which must lie inside `region` (and be contiguous in device
/// addresses), after the cache maintenance for `direction`.
[[nodiscard]] Result<DeviceAddress> dma_map(const IoRegion& region, std::span<std::byte> buffer,
                                            DmaDirection direction) noexcept;

/// Ends a mapping: for kFromDevice and kBidirectional, invalidates so the CPU sees what the device wrote.
void dma_unmap(std::span<std::byte> buffer, DmaDirection direction) noexcept;

}  // namespace amp::metal
