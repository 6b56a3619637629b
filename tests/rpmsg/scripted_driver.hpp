// SPDX-License-Identifier: BSD-3-Clause
// A driver the test scripts ring operation by ring operation, facing a device-role rpmsg (rpmsg::Device or
// LiteDevice): its own queues over the Loopback fixture's memory, so that a test can write any message, offer
// any buffer and read the rings' raw bytes.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "amp/virtio/virtqueue.hpp"
#include "loopback_fixture.hpp"

namespace amp::rpmsg::testing {

constexpr std::uint32_t kRingNum = 16;
constexpr std::uint32_t kBuf = 512;
constexpr std::uint32_t kServiceAddr = 0x400;

/// The driver's half, by hand: its own queues over the fixture's memory, its rx buffers in the first half
/// of the pool and tx buffers in the second.
class ScriptedDriverBase : public Loopback {
 protected:
  // The name service only, no event indexes: every kick decision is visible.
  void SetUp() override { set_up(1U); }
  /// The device offers `dfeatures`; the driver takes them all.
  void set_up(std::uint32_t dfeatures) {
    layout(kRingNum, dfeatures);
    ring0_ = *virtio::RingLayout::compute(kRingNum, 0x1000);
    ring1_ = ring0_;
    ASSERT_EQ(rx_.init(queue(kRing0), std::span(rx_slots_)), Status::kOk);
    ASSERT_EQ(tx_.init(queue(kRing1), std::span(tx_slots_)), Status::kOk);
    for (std::uint32_t i = 0; i < kRingNum; ++i) {
      const virtio::Buffer b{kPool + i * kBuf, kBuf, true};
      ASSERT_TRUE(rx_.add(std::span(&b, 1)));
    }
    driver_transport_.set_driver_features(dfeatures);
    driver_transport_.set_status(virtio::kStatusAcknowledge | virtio::kStatusDriver |
                                 virtio::kStatusFeaturesOk | virtio::kStatusDriverOk);
  }
  virtio::QueueConfig queue(std::size_t offset) {
    virtio::QueueConfig c;
    c.ring = *shm_.subregion(offset, ring0_.size);
    c.buffers = shm_;
    c.num = kRingNum;
    c.align = 0x1000;
    return c;
  }
  /// The device address of the driver's i-th tx buffer.
  static metal::DeviceAddress tx_buffer(std::uint32_t i) { return kPool + (kRingNum + i) * kBuf; }
  /// Writes a message into the buffer at `da`: a header claiming `claimed` bytes, then `payload`.
  void write_message(metal::DeviceAddress da, std::uint32_t dst, std::string_view payload,
                     std::uint16_t claimed) {
    std::byte raw[kHeaderSize];
    encode(Header{0x401, dst, 0, claimed, 0}, raw);
    std::memcpy(at(da), raw, kHeaderSize);
    std::memcpy(at(da + kHeaderSize), payload.data(), payload.size());
  }
  /// Offers the buffer at `da` (`len` bytes) on the device's receive queue.
  std::uint16_t offer(metal::DeviceAddress da, std::uint32_t len) {
    const virtio::Buffer b{da, len, false};
    auto head = tx_.add(std::span(&b, 1));
    EXPECT_TRUE(head);
    return head ? *head : 0;
  }
  template <class T>
  T peek(std::size_t off) {
    T v;
    std::memcpy(&v, at(off), sizeof v);
    return v;
  }

  virtio::RingLayout ring0_, ring1_;
  std::array<virtio::DriverQueue::Slot, kRingNum> rx_slots_{};
  std::array<virtio::DriverQueue::Slot, kRingNum> tx_slots_{};
  virtio::DriverQueue rx_;             // vring0: the device's messages come back in these
  virtio::DriverQueue tx_;             // vring1: the driver's messages to the device
  std::vector<std::string> received_;  // what the device's service received
};

}  // namespace amp::rpmsg::testing
