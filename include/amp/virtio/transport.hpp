// SPDX-License-Identifier: BSD-3-Clause
// How a virtio device's control state reaches the other side: status, features, config space and queue
// placement. The resource-table transport (rsc_vdev.hpp) keeps them in a remoteproc resource table's vdev
// entry in shared memory; virtio-mmio and others can implement the same interface.
//
// Values a transport returns may come from the peer: callers check them before use (RingLayout::compute for
// num/align, an IoRegion for addresses).
// Thread-safety: implementations are not internally locked; one thread at a time (the device's owner).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "amp/metal/io_region.hpp"
#include "amp/metal/result.hpp"

namespace amp::virtio {

/// Device status bits (virtio spec 2.1).
inline constexpr std::uint8_t kStatusAcknowledge = 1;
inline constexpr std::uint8_t kStatusDriver = 2;
inline constexpr std::uint8_t kStatusDriverOk = 4;
inline constexpr std::uint8_t kStatusFeaturesOk = 8;
inline constexpr std::uint8_t kStatusNeedsReset = 0x40;
inline constexpr std::uint8_t kStatusFailed = 0x80;

/// Where queue `index` lives and how it is notified, as the transport says.
struct QueueInfo {
  metal::DeviceAddress da = 0;
  std::uint32_t align = 0;
  std::uint32_t num = 0;
  std::uint32_t notify_id = 0;
};

class Transport {
 public:
  virtual std::uint32_t device_id() const noexcept = 0;
  virtual std::uint8_t status() const noexcept = 0;
  virtual void set_status(std::uint8_t status) noexcept = 0;
  virtual std::uint64_t device_features() const noexcept = 0;
  virtual std::uint64_t driver_features() const noexcept = 0;
  virtual void set_driver_features(std::uint64_t features) noexcept = 0;
  virtual std::uint32_t queue_count() const noexcept = 0;
  [[nodiscard]] virtual Result<QueueInfo> queue(std::uint32_t index) const noexcept = 0;
  /// Records where the driver placed queue `index` (when the transport left it to the driver).
  [[nodiscard]] virtual Status set_queue_address(std::uint32_t index, metal::DeviceAddress da) noexcept = 0;
  [[nodiscard]] virtual Status read_config(std::size_t offset, std::span<std::byte> out) const noexcept = 0;
  [[nodiscard]] virtual Status write_config(std::size_t offset, std::span<const std::byte> in) noexcept = 0;

 protected:
  ~Transport() = default;
};

/// Whether feature bit `bit` is set in `features`.
constexpr bool has_feature(std::uint64_t features, unsigned bit) noexcept {
  return bit < 64 && ((features >> bit) & 1U) != 0;
}

}  // namespace amp::virtio
