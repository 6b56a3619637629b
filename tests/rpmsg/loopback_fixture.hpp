// SPDX-License-Identifier: BSD-3-Clause
// Two rpmsg Devices, a driver and a device, on one block of memory in this process, laid out like
// OpenAMP's PC setup (vdev entry, vring0 at 0x4000, vring1 at 0x8000, buffer pool at 0x10000). Notifications
// are counted, and pump() runs each side's process() until both are quiet, so tests are deterministic.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "amp/rpmsg/device.hpp"
#include "amp/virtio/rsc_vdev.hpp"

namespace amp::rpmsg::testing {

inline constexpr std::size_t kShmSize = 0x80000;
inline constexpr std::size_t kVdevOffset = 0x100;
inline constexpr std::size_t kRing0 = 0x4000;
inline constexpr std::size_t kRing1 = 0x8000;
inline constexpr std::size_t kPool = 0x10000;
inline constexpr std::size_t kPoolSize = 0x40000;

class CountingNotifier final : public Notifier {
 public:
  Status notify(std::uint32_t) noexcept override {
    pending.fetch_add(1, std::memory_order_acq_rel);
    total.fetch_add(1, std::memory_order_relaxed);
    return Status::kOk;
  }
  std::atomic<int> pending{0};
  std::atomic<int> total{0};
};

inline std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string string_of(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

class Loopback : public ::testing::Test {
 protected:
  /// Lays out the shared memory. `ring_num` entries per ring; the device offers `dfeatures`.
  void layout(std::uint32_t ring_num = 256, std::uint32_t dfeatures = 1U | (1U << virtio::kFeatureEventIdx)) {
    mem_ = std::make_unique<Block>();
    shm_ = metal::IoRegion(std::span<std::byte>(mem_->bytes, kShmSize), 0);
    const std::array<virtio::QueueInfo, 2> rings{virtio::QueueInfo{kRing0, 0x1000, ring_num, 1},
                                                 virtio::QueueInfo{kRing1, 0x1000, ring_num, 2}};
    vdev_ = *shm_.subregion(kVdevOffset, virtio::RscVdevTransport::body_size(2, 0));
    ASSERT_EQ(virtio::RscVdevTransport::write(vdev_, {kVirtioIdRpmsg, 0, dfeatures, 0, rings}), Status::kOk);
    driver_transport_ = *virtio::RscVdevTransport::open(vdev_);
    device_transport_ = *virtio::RscVdevTransport::open(vdev_);
  }

  DeviceConfig config(Role role) {
    DeviceConfig c;
    c.role = role;
    c.shm = shm_;
    c.transport = role == Role::kDriver ? &driver_transport_ : &device_transport_;
    c.notifier = role == Role::kDriver ? &to_device_ : &to_driver_;
    c.buffer_pool = kPool;
    c.buffer_pool_size = kPoolSize;
    c.start_timeout_ns = 2'000'000'000;
    return c;
  }

  /// Starts both sides (driver first: the device waits for DRIVER_OK).
  void start(DeviceConfig driver_cfg, DeviceConfig device_cfg) {
    ASSERT_EQ(driver_.start(driver_cfg, driver_storage_), Status::kOk);
    ASSERT_EQ(device_.start(device_cfg, device_storage_), Status::kOk);
  }
  void start() {
    layout();
    start(config(Role::kDriver), config(Role::kDevice));
  }
  /// As start(), with `device` (one the test made, e.g. with an address index) in the device role.
  void start_with(Device& device) {
    layout();
    ASSERT_EQ(driver_.start(config(Role::kDriver), driver_storage_), Status::kOk);
    ASSERT_EQ(device.start(config(Role::kDevice), device_storage_), Status::kOk);
  }

  /// Runs process() on whichever side was notified until neither is (`device` in the device role: device_
  /// unless the test started one of its own, an rpmsg::Device or a LiteDevice).
  void pump() { pump(device_); }
  template <class DeviceRole>
  void pump(DeviceRole& device) {
    for (int round = 0; round < 10000; ++round) {
      const int to_dev = to_device_.pending.exchange(0);
      const int to_drv = to_driver_.pending.exchange(0);
      if (to_dev == 0 && to_drv == 0) return;
      if (to_dev != 0) {
        ASSERT_EQ(device.process(), Status::kOk);
      }
      if (to_drv != 0) {
        ASSERT_EQ(driver_.process(), Status::kOk);
      }
    }
    FAIL() << "the two sides kept notifying each other";
  }

  /// Host pointer to shared-memory offset `off`.
  std::byte* at(std::size_t off) { return mem_->bytes + off; }

  struct Block {
    alignas(4096) std::byte bytes[kShmSize]{};
  };
  std::unique_ptr<Block> mem_;
  metal::IoRegion shm_;
  metal::IoRegion vdev_;
  virtio::RscVdevTransport driver_transport_;
  virtio::RscVdevTransport device_transport_;
  CountingNotifier to_device_;
  CountingNotifier to_driver_;
  DeviceStorage<256> driver_storage_{};
  DeviceStorage<256> device_storage_{};
  Device driver_;
  Device device_;
};

}  // namespace amp::rpmsg::testing
