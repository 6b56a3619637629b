// SPDX-License-Identifier: BSD-3-Clause
// What the rpmsg fuzz targets share: a notifier that does nothing, an application's full read of a payload,
// and the vdev table of their block (the OpenAMP PC layout: vrings of 16 at 0x4000 and 0x8000, the driver's
// buffers from 0x10000).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "amp/metal/io_region.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/virtio/rsc_vdev.hpp"

namespace amp::fuzz {

class NullNotifier final : public rpmsg::Notifier {
 public:
  Status notify(std::uint32_t) noexcept override { return Status::kOk; }
};

/// Reads every byte of a received payload, as an application would: ASan checks the whole range that a
/// memcpy reads (a byte-by-byte loop costs several times more per message).
inline void read_all(std::span<const std::byte> payload) {
  std::byte copy[512];
  for (std::size_t at = 0; at < payload.size(); at += sizeof copy) {
    std::memcpy(copy, payload.data() + at, std::min(sizeof copy, payload.size() - at));
    asm volatile("" : : "r"(copy) : "memory");  // the copy counts: it may not be optimised away
  }
}

inline constexpr metal::DeviceAddress kBufferPool = 0x10000;
inline constexpr std::size_t kBufferPoolSize = 0x40000;

/// Writes the vdev table at the block's start (the name service and event indexes offered) and returns
/// the vdev's body, which each side opens its transport on.
inline std::optional<metal::IoRegion> write_vdev(const metal::IoRegion& shm) {
  const std::array<virtio::QueueInfo, 2> rings{virtio::QueueInfo{0x4000, 0x1000, 16, 1},
                                               virtio::QueueInfo{0x8000, 0x1000, 16, 2}};
  auto body = virtio::write_single_vdev_table(*shm.subregion(0, 0x4000), {7, 0, 1U | (1U << 29), 0, rings});
  if (!body) return std::nullopt;
  return *body;
}

}  // namespace amp::fuzz
