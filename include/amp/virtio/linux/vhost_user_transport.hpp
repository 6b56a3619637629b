// SPDX-License-Identifier: BSD-3-Clause
// A virtio Transport over a vhost-user connection (VhostUserBackend), for a device role that runs over it
// (rpmsg::Device): the device's id and features, the features the front end acked, and the queues as the
// front end placed them (checked by the backend).
//
// vhost-user carries no status byte (UML's virtio_uml sends no SET_STATUS): the owner of the connection
// decides when the driver is ready (for rpmsg, the first kick on queue 0 once both queues are enabled, right
// after the kernel's virtio_device_ready()) and calls set_driver_ok(); status() then reports ACKNOWLEDGE |
// DRIVER | FEATURES_OK | DRIVER_OK until reset(). There is no config space (kNotSupported), and the front
// end, not the device, places the queues (set_queue_address: kNotSupported).
//
// Thread-safety: one thread at a time (the connection's owner), like the backend it reads.
#pragma once

#include <cstdint>

#include "amp/virtio/linux/vhost_user_backend.hpp"
#include "amp/virtio/transport.hpp"

namespace amp::virtio {

class VhostUserTransport final : public Transport {
 public:
  VhostUserTransport(const VhostUserBackend& backend, std::uint32_t device_id) noexcept
      : backend_(backend), device_id_(device_id) {}

  void set_driver_ok() noexcept { status_ = kReady; }
  void reset() noexcept { status_ = 0; }

  std::uint32_t device_id() const noexcept override { return device_id_; }
  std::uint8_t status() const noexcept override { return status_; }
  /// The device's own status changes (FAILED, NEEDS_RESET) are kept; nothing reaches the front end.
  void set_status(std::uint8_t status) noexcept override { status_ = status; }
  std::uint64_t device_features() const noexcept override { return backend_.device_features(); }
  /// What the front end acked, without vhost-user's own bit (VHOST_USER_F_PROTOCOL_FEATURES).
  std::uint64_t driver_features() const noexcept override;
  void set_driver_features(std::uint64_t) noexcept override {}
  std::uint32_t queue_count() const noexcept override { return backend_.queue_count(); }
  [[nodiscard]] Result<QueueInfo> queue(std::uint32_t index) const noexcept override;
  [[nodiscard]] Status set_queue_address(std::uint32_t, metal::DeviceAddress) noexcept override {
    return Status::kNotSupported;
  }
  [[nodiscard]] Status read_config(std::size_t, std::span<std::byte>) const noexcept override {
    return Status::kNotSupported;
  }
  [[nodiscard]] Status write_config(std::size_t, std::span<const std::byte>) noexcept override {
    return Status::kNotSupported;
  }

 private:
  static constexpr std::uint8_t kReady =
      kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk;
  const VhostUserBackend& backend_;
  std::uint32_t device_id_;
  std::uint8_t status_ = 0;
};

}  // namespace amp::virtio
