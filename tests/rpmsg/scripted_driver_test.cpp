// SPDX-License-Identifier: BSD-3-Clause
// amp's rpmsg Device in the device role facing a driver the test scripts ring operation by ring operation:
// what OpenAMP's driver does with returned buffers, a driver that floods the ring, one that offers a buffer
// again while the device still holds it.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "amp/metal/log.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/rpmsg/linux/channel.hpp"
#include "loopback_fixture.hpp"
#include "scripted_driver.hpp"

namespace amp::rpmsg {
namespace {

using testing::bytes_of;
using testing::kBuf;
using testing::kPool;
using testing::kRing0;
using testing::kRing1;
using testing::kRingNum;
using testing::kServiceAddr;
using testing::Loopback;
using testing::string_of;

class ScriptedDriver : public testing::ScriptedDriverBase {
 protected:
  void start_device(Notifier* reschedule = nullptr) {
    DeviceConfig c = config(Role::kDevice);
    c.reschedule = reschedule;
    ASSERT_EQ(device_.start(c, device_storage_), Status::kOk);
    ASSERT_EQ(device_.create_endpoint(service_, "svc", kServiceAddr, kAddrAny, inbox()), Status::kOk);
  }
  Endpoint::ReceiveFn inbox() {
    return [this](Endpoint&, const Message& m) { received_.push_back(string_of(m.payload)); };
  }
  Endpoint service_;
};

TEST_F(ScriptedDriver, AConsumedMessageGoesBackWithItsBuffersFullLength) {
  start_device();
  write_message(tx_buffer(0), kServiceAddr, "hello", 5);
  const std::uint16_t head = offer(tx_buffer(0), kBuf);
  ASSERT_EQ(device_.process(), Status::kOk);
  ASSERT_EQ(received_, std::vector<std::string>{"hello"});
  // Golden bytes of vring1's used ring: idx 1, then element 0 = {le32 id = head, le32 len = 512}.
  const std::size_t used = kRing1 + ring1_.used;
  EXPECT_EQ(peek<std::uint16_t>(used + 2), 1);
  const std::array<std::uint8_t, 8> expected{static_cast<std::uint8_t>(head), 0, 0, 0, 0x00, 0x02, 0, 0};
  std::array<std::uint8_t, 8> actual{};
  std::memcpy(actual.data(), at(used + 4), 8);
  EXPECT_EQ(actual, expected);
}

TEST_F(ScriptedDriver, ADriverThatTakesItsCapacityFromTheUsedLengthKeepsSending) {
  // OpenAMP's driver role reuses a returned transmit buffer with the used length as its capacity, takes
  // the 16-byte header off without checking, and sends the largest message it thinks fits. Had the device
  // returned the buffer with length 0, that would be a header claiming 0xFFF0 bytes, which amp drops.
  start_device();
  const std::string full(kBuf - kHeaderSize, 'x');
  metal::DeviceAddress da = tx_buffer(0);
  std::uint32_t capacity = kBuf - kHeaderSize;  // a fresh buffer: the driver knows its size
  for (int round = 0; round < 3 * static_cast<int>(kRingNum); ++round) {
    const auto claimed = static_cast<std::uint16_t>(capacity);
    write_message(da, kServiceAddr,
                  std::string_view(full).substr(0, std::min<std::size_t>(claimed, full.size())), claimed);
    offer(da, kHeaderSize + std::min<std::uint32_t>(claimed, kBuf - kHeaderSize));
    ASSERT_EQ(device_.process(), Status::kOk);
    virtio::DriverQueue::Used u;
    ASSERT_TRUE(*tx_.pop_used(u)) << round;
    da = tx_.head_buffer(u.head).addr;
    // The DriverQueue reports 0 for a chain the device could not write; OpenAMP reads the raw value.
    const std::size_t used_elem = kRing1 + ring1_.used_entry(static_cast<std::uint32_t>(round) % kRingNum);
    capacity = static_cast<std::uint16_t>(peek<std::uint32_t>(used_elem + 4) - kHeaderSize);
  }
  EXPECT_EQ(device_.stats().rx_malformed, 0U);
  ASSERT_EQ(received_.size(), 3U * kRingNum);
  for (const std::string& m : received_) EXPECT_EQ(m, full);
}

TEST_F(ScriptedDriver, ABufferOfferedAgainWhileHeldBreaksTheDeviceInsteadOfDuplicating) {
  // A Channel holds each message in its buffer until read; a driver that offers the same head again and
  // again would otherwise make it queue the same buffer without end.
  DeviceConfig c = config(Role::kDevice);
  ASSERT_EQ(device_.start(c, device_storage_), Status::kOk);
  auto ch = Channel::open(device_, "chan", kServiceAddr, kAddrAny);
  ASSERT_TRUE(ch) << ch.error().message;
  write_message(tx_buffer(0), kServiceAddr, "once", 4);
  const std::uint16_t head = offer(tx_buffer(0), kBuf);
  ASSERT_EQ(device_.process(), Status::kOk);
  // Re-offer the held head 1000 times, by hand (the driver's own queue would refuse).
  const std::size_t avail = kRing1 + ring1_.avail;
  Status last = Status::kOk;
  for (std::uint16_t idx = 1; idx <= 1000; ++idx) {
    std::memcpy(at(avail + 4 + 2 * (idx % kRingNum)), &head, 2);
    std::memcpy(at(avail + 2), &idx, 2);
    last = device_.process();
  }
  EXPECT_EQ(last, Status::kBroken);
  EXPECT_EQ(device_.fault(), virtio::Fault::kHeadInFlight);
  std::array<std::byte, 64> out{};
  auto r = (*ch)->read(out);
  ASSERT_TRUE(r);
  EXPECT_EQ(string_of(std::span(out).first(*r)), "once");
  auto again = (*ch)->read(out);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), Status::kWouldBlock);  // one message, held once
}

/// Counts reschedule requests.
class CountingReschedule final : public Notifier {
 public:
  Status notify(std::uint32_t) noexcept override {
    ++calls;
    return Status::kOk;
  }
  int calls = 0;
};

TEST_F(ScriptedDriver, OneProcessCallTakesAtMostItsBudget) {
  // A budget of 4 and 16 messages waiting (for an address nobody has: dropped, counted).
  CountingReschedule again;
  DeviceConfig c = config(Role::kDevice);
  c.process_budget = 4;
  c.reschedule = &again;
  ASSERT_EQ(device_.start(c, device_storage_), Status::kOk);
  for (std::uint32_t i = 0; i < kRingNum; ++i) {
    write_message(tx_buffer(i), 0x999, "x", 1);
    offer(tx_buffer(i), kHeaderSize + 1);
  }
  for (int call = 1; call <= 3; ++call) {
    ASSERT_EQ(device_.process(), Status::kOk);
    EXPECT_EQ(device_.stats().rx_unroutable, 4U * static_cast<unsigned>(call));
    EXPECT_EQ(again.calls, call) << "it stopped at its budget and asked to be called again";
  }
  // The last four: the ring is empty after them, so there is nothing to come back for.
  ASSERT_EQ(device_.process(), Status::kOk);
  EXPECT_EQ(device_.stats().rx_unroutable, kRingNum);
  EXPECT_EQ(again.calls, 3);
  // A peer that keeps the ring full: each ring's worth it offers again costs one bounded call more.
  for (std::uint32_t i = 0; i < kRingNum; ++i) {
    virtio::DriverQueue::Used u;
    ASSERT_TRUE(*tx_.pop_used(u));
    offer(tx_.head_buffer(u.head).addr, kHeaderSize + 1);
  }
  ASSERT_EQ(device_.process(), Status::kOk);
  EXPECT_EQ(device_.stats().rx_unroutable, kRingNum + 4);
  EXPECT_EQ(again.calls, 4);
}

TEST_F(ScriptedDriver, WithoutARescheduleOneCallGoesOnUntilTheRingIsDrained) {
  // Batches of 4, no one to ask to be called again: process() itself takes batch after batch.
  DeviceConfig c = config(Role::kDevice);
  c.process_budget = 4;
  ASSERT_EQ(device_.start(c, device_storage_), Status::kOk);
  for (std::uint32_t i = 0; i < kRingNum; ++i) {
    write_message(tx_buffer(i), 0x999, "x", 1);
    offer(tx_buffer(i), kHeaderSize + 1);
  }
  ASSERT_EQ(device_.process(), Status::kOk);
  EXPECT_EQ(device_.stats().rx_unroutable, kRingNum);
}

TEST_F(ScriptedDriver, AStopWaitingForTheLockEndsTheDrainAtTheNextMessage) {
  // process() holds the device's lock while it drops malformed and unroutable messages. A stop() from
  // another thread must not wait for the whole ring (or, with a flooding peer, for ever): the drain looks
  // for it at every message. The first message is malformed; its warning goes to a log sink that calls
  // stop() from another thread, inside the drain, and returns once that stop() is under way (waiting for
  // the lock). The 15 unroutable messages behind it must stay untaken.
  DeviceConfig c = config(Role::kDevice);
  c.process_budget = 64;  // more than the ring: only the stop can end the drain early
  ASSERT_EQ(device_.start(c, device_storage_), Status::kOk);
  write_message(tx_buffer(0), 0x999, "x", 200);  // claims more than its buffer holds
  offer(tx_buffer(0), kHeaderSize + 1);
  for (std::uint32_t i = 1; i < kRingNum; ++i) {
    write_message(tx_buffer(i), 0x999, "x", 1);
    offer(tx_buffer(i), kHeaderSize + 1);
  }
  std::thread stopper;
  auto sink = metal::FunctionLogSink([&](metal::LogLevel, std::string_view) {
    if (stopper.joinable()) return;
    stopper = std::thread([this] { device_.stop(); });
    while (!device_.stopping()) std::this_thread::yield();
  });
  const metal::LogLevel level = metal::log_level();
  metal::set_log_level(metal::LogLevel::kWarning);
  metal::set_log_sink(&sink);
  const Status result = device_.process();
  metal::set_log_sink(nullptr);
  metal::set_log_level(level);
  ASSERT_TRUE(stopper.joinable()) << "no warning for the malformed message";
  stopper.join();
  EXPECT_EQ(result, Status::kClosed);
  EXPECT_EQ(device_.stats().rx_malformed, 1U);
  EXPECT_EQ(device_.stats().rx_unroutable, 0U) << "the drain went on after stop() was called";
}

TEST_F(ScriptedDriver, AStopEndsTheWaitForDriverOk) {
  driver_transport_.set_status(0);  // the driver never gets as far as DRIVER_OK
  DeviceConfig c = config(Role::kDevice);
  c.start_timeout_ns = 30'000'000'000;
  Status started = Status::kOk;
  std::thread starter([&] { started = device_.start(c, device_storage_); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  device_.stop();  // the peer left
  starter.join();  // long before the 30 s
  EXPECT_EQ(started, Status::kClosed);
  EXPECT_FALSE(device_.running());
}

TEST_F(ScriptedDriver, AStopBeforeTheFirstStartMakesItFail) {
  device_.stop();  // the peer left while we were still setting up
  EXPECT_EQ(device_.start(config(Role::kDevice), device_storage_), Status::kClosed);
}

}  // namespace
}  // namespace amp::rpmsg
