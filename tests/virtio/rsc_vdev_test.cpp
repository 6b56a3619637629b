// SPDX-License-Identifier: BSD-3-Clause
#include "amp/virtio/rsc_vdev.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>

namespace amp::virtio {
namespace {

using metal::IoRegion;

// OpenAMP's PC layout: vdev id 7 (rpmsg), dfeatures 1 (NS), two rings of 256 aligned to 0x1000.
constexpr std::array<QueueInfo, 2> kOpenAmpRings{QueueInfo{0x4000, 0x1000, 256, 1},
                                                 QueueInfo{0x8000, 0x1000, 256, 2}};

TEST(RscVdev, GoldenBytes) {
  alignas(8) std::array<std::byte, 128> mem{};
  const IoRegion body(mem, 0);
  ASSERT_EQ(RscVdevTransport::write(body, {7, 0, 1, 0, kOpenAmpRings}), Status::kOk);
  // clang-format off
  const std::array<std::uint8_t, 64> expected{
      7, 0, 0, 0,   0, 0, 0, 0,   1, 0, 0, 0,   0, 0, 0, 0,   0, 0, 0, 0,   // id notifyid dfeat gfeat cfglen
      0, 2, 0, 0,                                                         // status, num_of_vrings, reserved
      0x00, 0x40, 0, 0,  0x00, 0x10, 0, 0,  0x00, 0x01, 0, 0,  1, 0, 0, 0,  0, 0, 0, 0,   // vring 0
      0x00, 0x80, 0, 0,  0x00, 0x10, 0, 0,  0x00, 0x01, 0, 0,  2, 0, 0, 0,  0, 0, 0, 0};  // vring 1
  // clang-format on
  EXPECT_EQ(std::memcmp(mem.data(), expected.data(), expected.size()), 0);
  EXPECT_EQ(RscVdevTransport::body_size(2, 0), expected.size());
}

TEST(RscVdev, ReadsAndWritesTheEntry) {
  alignas(8) std::array<std::byte, 128> mem{};
  const IoRegion body(mem, 0);
  ASSERT_EQ(RscVdevTransport::write(body, {7, 0, 1, 8, kOpenAmpRings}), Status::kOk);
  auto t = RscVdevTransport::open(body);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->device_id(), 7U);
  EXPECT_EQ(t->device_features(), 1U);
  EXPECT_EQ(t->queue_count(), 2U);
  auto q1 = t->queue(1);
  ASSERT_TRUE(q1);
  EXPECT_EQ(q1->da, 0x8000U);
  EXPECT_EQ(q1->num, 256U);
  EXPECT_EQ(q1->notify_id, 2U);
  EXPECT_EQ(t->queue(2).error(), Status::kNotFound);
  t->set_status(static_cast<std::uint8_t>(kStatusAcknowledge | kStatusDriver | kStatusDriverOk));
  EXPECT_EQ(static_cast<std::uint8_t>(mem[20]), 7);
  t->set_driver_features(1);
  EXPECT_EQ(static_cast<std::uint8_t>(mem[12]), 1);
  EXPECT_EQ(t->driver_features(), 1U);
  ASSERT_EQ(t->set_queue_address(0, 0x12340), Status::kOk);
  EXPECT_EQ(t->queue(0)->da, 0x12340U);
  EXPECT_EQ(t->set_queue_address(0, 0xFFFFFFFF), Status::kOutOfRange);
  const std::array<std::byte, 4> cfg{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  ASSERT_EQ(t->write_config(4, cfg), Status::kOk);
  EXPECT_EQ(mem[24 + 40 + 4], std::byte{1});
  std::array<std::byte, 4> back{};
  ASSERT_EQ(t->read_config(4, back), Status::kOk);
  EXPECT_EQ(back, cfg);
  EXPECT_EQ(t->write_config(5, cfg), Status::kOutOfRange);
  EXPECT_EQ(t->read_config(9, std::span(back).first(0)), Status::kOutOfRange);
}

TEST(RscVdev, AnyAddressMeansTheHostAllocates) {
  alignas(8) std::array<std::byte, 64> mem{};
  const std::array<QueueInfo, 1> ring{QueueInfo{kRscAddrAny, 16, 64, 0}};
  ASSERT_EQ(RscVdevTransport::write(IoRegion(mem, 0), {7, 0, 1, 0, ring}), Status::kOk);
  auto t = RscVdevTransport::open(IoRegion(mem, 0));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->queue(0)->da, metal::kAnyAddress);
}

TEST(RscVdev, DeclaredSizesMustFit) {
  alignas(8) std::array<std::byte, 64> mem{};
  ASSERT_EQ(RscVdevTransport::write(IoRegion(mem, 0), {7, 0, 1, 0, kOpenAmpRings}), Status::kOk);
  mem[21] = std::byte{3};  // a third vring that is not there
  EXPECT_EQ(RscVdevTransport::open(IoRegion(mem, 0)).error(), Status::kMalformed);
  mem[21] = std::byte{2};
  mem[16] = std::byte{1};  // one byte of config past the end
  EXPECT_EQ(RscVdevTransport::open(IoRegion(mem, 0)).error(), Status::kMalformed);
  mem[16] = std::byte{0};
  mem[19] = std::byte{0xff};  // config_len near 4 GiB: no overflow, still malformed
  EXPECT_EQ(RscVdevTransport::open(IoRegion(mem, 0)).error(), Status::kMalformed);
  EXPECT_EQ(RscVdevTransport::open(IoRegion(std::span(mem).first(20), 0)).error(), Status::kMalformed);
}

}  // namespace
}  // namespace amp::virtio
