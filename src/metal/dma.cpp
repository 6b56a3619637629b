// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/dma.hpp"

#include "amp/metal/cache.hpp"

namespace amp::metal {

Result<DeviceAddress> dma_map(const IoRegion& region, std::span<std::byte> buffer,
                              DmaDirection direction) noexcept {
  auto da = region.device_address_of_pointer(buffer.data(), buffer.size());
  if (!da) return da;
  if (direction == DmaDirection::kFromDevice) {
    cache_invalidate(buffer);
  } else {
    cache_flush(buffer);
  }
  return da;
}

void dma_unmap(std::span<std::byte> buffer, DmaDirection direction) noexcept {
  if (direction != DmaDirection::kToDevice) cache_invalidate(buffer);
}

}  // namespace amp::metal
