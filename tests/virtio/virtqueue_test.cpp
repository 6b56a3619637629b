// SPDX-License-Identifier: BSD-3-Clause
#include "amp/virtio/virtqueue.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <vector>

namespace amp::virtio {
namespace {

using metal::DeviceAddress;
using metal::IoRegion;

// ---- Layout and wire facts ---------------------------------------------------------------------------

/// The Linux kernel's vring_size(), written out from its definition.
std::size_t kernel_vring_size(std::size_t num, std::size_t align) {
  return ((16 * num + 2 * (3 + num) + align - 1) & ~(align - 1)) + 2 * 3 + 8 * num;
}

TEST(RingLayout, MatchesTheKernelFormula) {
  for (std::uint32_t num : {1U, 2U, 4U, 16U, 64U, 256U, 1024U, 32768U}) {
    for (std::uint32_t align : {4U, 16U, 64U, 4096U}) {
      auto l = RingLayout::compute(num, align);
      ASSERT_TRUE(l) << num << "/" << align;
      EXPECT_EQ(l->size, kernel_vring_size(num, align)) << num << "/" << align;
      EXPECT_EQ(l->avail, 16U * num);
      EXPECT_EQ(l->used % align, 0U);
    }
  }
}

TEST(RingLayout, OpenAmpPcLayoutFitsItsSlots) {
  // 256 entries aligned to 0x1000, placed 0x4000 apart in OpenAMP's PC layout.
  auto l = RingLayout::compute(256, 0x1000);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->avail, 0x1000U);
  EXPECT_EQ(l->used, 0x2000U);
  EXPECT_EQ(l->size, 0x2000U + 6 + 8 * 256);
  EXPECT_LE(l->size, 0x4000U);
  EXPECT_EQ(l->used_event(), 0x1000U + 4 + 512);
  EXPECT_EQ(l->avail_event(), 0x2000U + 4 + 2048);
}

TEST(RingLayout, RejectsBadSizes) {
  EXPECT_FALSE(RingLayout::compute(0, 4096));
  EXPECT_FALSE(RingLayout::compute(3, 4096));
  EXPECT_FALSE(RingLayout::compute(65536, 4096));
  EXPECT_FALSE(RingLayout::compute(256, 0));
  EXPECT_FALSE(RingLayout::compute(256, 2));
  EXPECT_FALSE(RingLayout::compute(256, 100));
}

TEST(NeedEvent, FollowsTheSpecWithWrapAround) {
  EXPECT_TRUE(need_event(0, 1, 0));   // event 0 passed when idx went 0 -> 1
  EXPECT_FALSE(need_event(1, 1, 0));  // event 1 not passed yet
  EXPECT_TRUE(need_event(3, 5, 2));   // 3 lies in [2, 5)
  EXPECT_FALSE(need_event(5, 5, 2));
  EXPECT_FALSE(need_event(1, 5, 2));           // already passed before the old index
  EXPECT_TRUE(need_event(0xffff, 1, 0xfffe));  // across the 16-bit wrap
  EXPECT_FALSE(need_event(2, 1, 0xfffe));
}

// ---- A driver and a device on one ring in ordinary memory -----------------------------------------------

constexpr DeviceAddress kShmBase = 0x8000'0000;
constexpr std::uint32_t kNum = 8;
constexpr std::uint32_t kAlign = 16;

class QueuePair : public ::testing::Test {
 protected:
  void SetUp() override { setup(false); }

  void setup(bool event_idx) {
    mem_.assign(64 * 1024, std::byte{0});
    shm_ = IoRegion(std::span<std::byte>(mem_), kShmBase);
    const std::size_t ring_size = RingLayout::compute(kNum, kAlign)->size;
    QueueConfig c;
    c.ring = *shm_.subregion(0, ring_size);
    c.buffers = shm_;
    c.num = kNum;
    c.align = kAlign;
    c.event_idx = event_idx;
    layout_ = *RingLayout::compute(kNum, kAlign);
    ASSERT_EQ(driver_.init(c, slots_), Status::kOk);
    ASSERT_EQ(device_.init(c, in_flight_), Status::kOk);
  }

  /// A buffer at `offset` into the shared memory.
  static Buffer buf(std::size_t offset, std::uint32_t len, bool writable) {
    return Buffer{kShmBase + offset, len, writable};
  }

  template <class T>
  T peek(std::size_t off) {
    T v;
    std::memcpy(&v, mem_.data() + off, sizeof v);
    return v;
  }
  template <class T>
  void poke(std::size_t off, T v) {
    std::memcpy(mem_.data() + off, &v, sizeof v);
  }

  std::vector<std::byte> mem_;
  IoRegion shm_;
  RingLayout layout_;
  std::array<DriverQueue::Slot, kNum> slots_{};
  std::array<std::uint64_t, DeviceQueue::in_flight_words(kNum)> in_flight_{};
  DriverQueue driver_;
  DeviceQueue device_;
  std::array<Buffer, kNum> chain_buf_{};
};

TEST_F(QueuePair, GoldenBytesOfADescriptorAndTheAvailRing) {
  auto head = driver_.add(std::array{buf(0x1000, 512, true)});
  ASSERT_TRUE(head);
  EXPECT_EQ(*head, 0);
  const std::array<std::uint8_t, 16> expected_desc{0x00, 0x10, 0x00, 0x80, 0, 0, 0, 0,  // addr 0x80001000
                                                   0x00, 0x02, 0x00, 0x00,              // len 512
                                                   0x02, 0x00,                          // flags WRITE
                                                   0x00, 0x00};                         // next 0
  EXPECT_EQ(std::memcmp(mem_.data(), expected_desc.data(), 16), 0);
  EXPECT_EQ(peek<std::uint16_t>(layout_.avail_flags()), 0);
  EXPECT_EQ(peek<std::uint16_t>(layout_.avail_idx()), 1);
  EXPECT_EQ(peek<std::uint16_t>(layout_.avail_entry(0)), 0);

  DeviceQueue::Chain c;
  ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
  ASSERT_EQ(device_.push_used(c.head, 100), Status::kOk);
  // used ring: idx 1, element {id 0, len 100}
  EXPECT_EQ(peek<std::uint16_t>(layout_.used_idx()), 1);
  EXPECT_EQ(peek<std::uint32_t>(layout_.used_entry(0)), 0U);
  EXPECT_EQ(peek<std::uint32_t>(layout_.used_entry(0) + 4), 100U);
}

TEST_F(QueuePair, ChainsTravelBothWays) {
  auto h = driver_.add(std::array{buf(0x1000, 16, false), buf(0x1100, 64, false), buf(0x2000, 256, true)});
  ASSERT_TRUE(h);
  EXPECT_EQ(driver_.free_count(), kNum - 3);
  DeviceQueue::Chain c;
  ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
  EXPECT_EQ(c.head, *h);
  ASSERT_EQ(c.count, 3U);
  EXPECT_EQ(c.readable_len, 80U);
  EXPECT_EQ(c.writable_len, 256U);
  EXPECT_EQ(chain_buf_[1].addr, kShmBase + 0x1100);
  EXPECT_EQ(chain_buf_[1].data, mem_.data() + 0x1100) << "translated once, by the queue";
  EXPECT_TRUE(chain_buf_[2].device_writable);
  EXPECT_FALSE(*device_.pop_available(c, chain_buf_)) << "nothing more available";
  ASSERT_EQ(device_.push_used(c.head, 200), Status::kOk);
  DriverQueue::Used u;
  ASSERT_TRUE(*driver_.pop_used(u));
  EXPECT_EQ(u.head, *h);
  EXPECT_EQ(u.len, 200U);
  EXPECT_EQ(driver_.free_count(), kNum);
  EXPECT_EQ(driver_.head_buffer(u.head).addr, kShmBase + 0x1000);
  EXPECT_FALSE(*driver_.pop_used(u));
}

TEST_F(QueuePair, SingleBuffersArePoppedOneAtATimeAndAChainIsRefused) {
  auto a = driver_.add(std::array{buf(0x1000, 512, true)});
  auto b = driver_.add(std::array{buf(0x1200, 64, false)});
  ASSERT_TRUE(a && b);
  std::uint16_t head = 0xffff;
  Buffer got;
  ASSERT_TRUE(*device_.pop_buffer(head, got));
  EXPECT_EQ(head, *a);
  EXPECT_EQ(got.addr, kShmBase + 0x1000);
  EXPECT_EQ(got.len, 512U);
  EXPECT_TRUE(got.device_writable);
  EXPECT_EQ(got.data, mem_.data() + 0x1000) << "translated once, by the queue";
  ASSERT_TRUE(*device_.pop_buffer(head, got));
  EXPECT_EQ(head, *b);
  EXPECT_FALSE(got.device_writable);
  EXPECT_EQ(device_.held(), 2U);
  EXPECT_FALSE(*device_.pop_buffer(head, got)) << "nothing more available";
  ASSERT_EQ(device_.push_used(*a, 10), Status::kOk);
  ASSERT_EQ(device_.push_used(*b, 0), Status::kOk);
  ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 8, false), buf(0x1100, 8, true)}));
  auto chain = device_.pop_buffer(head, got);
  ASSERT_FALSE(chain);
  EXPECT_EQ(device_.fault(), Fault::kChainTooLong);
}

TEST_F(QueuePair, ManyRoundsWrapTheIndexes) {
  for (int round = 0; round < 70000; ++round) {  // past the 16-bit index wrap
    auto h = driver_.add(std::array{buf(0x3000, 32, true)});
    ASSERT_TRUE(h) << round;
    DeviceQueue::Chain c;
    ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
    ASSERT_EQ(device_.push_used(c.head, static_cast<std::uint32_t>(round % 33)), Status::kOk);
    DriverQueue::Used u;
    ASSERT_TRUE(*driver_.pop_used(u));
    ASSERT_EQ(u.len, static_cast<std::uint32_t>(round % 33));
  }
  EXPECT_EQ(driver_.free_count(), kNum);
}

// Buffers come back and go out again in the same order, so a steady stream rewrites no descriptor (its cache
// line stays where the device left it). Shown by a marker the device left in descriptor 0's length word:
// re-adding the same buffer there leaves it alone (the driver trusts its own copy, not the table).
TEST_F(QueuePair, SteadyStreamDoesNotRewriteUnchangedDescriptors) {
  for (std::uint32_t i = 0; i < kNum; ++i)
    ASSERT_TRUE(driver_.add(std::array{buf(0x1000 + 0x100 * i, 64, true)}));
  for (std::uint32_t i = 0; i < kNum; ++i) {
    DeviceQueue::Chain c;
    ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
    ASSERT_EQ(device_.push_used(c.head, 8), Status::kOk);
    DriverQueue::Used u;
    ASSERT_TRUE(*driver_.pop_used(u));
  }
  poke<std::uint32_t>(layout_.desc_entry(0) + 8, 0xBEEF);  // descriptor 0's len
  auto h = driver_.add(std::array{buf(0x1000, 64, true)});
  ASSERT_TRUE(h);
  ASSERT_EQ(*h, 0);
  EXPECT_EQ(peek<std::uint32_t>(layout_.desc_entry(0) + 8), 0xBEEFU) << "rewritten though unchanged";
  DeviceQueue::Chain c;
  ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
  EXPECT_EQ(chain_buf_[0].len, 0xBEEFU) << "(what the device reads is the table)";
}

TEST_F(QueuePair, DriverRefusesWhatItCannotOffer) {
  EXPECT_EQ(driver_.add(std::span<const Buffer>{}).error(), Status::kInvalidArgument);
  EXPECT_EQ(driver_.add(std::array{buf(0x1000, 8, true), buf(0x1100, 8, false)}).error(),
            Status::kInvalidArgument);
  EXPECT_EQ(driver_.add(std::array{Buffer{0x1000, 8, false}}).error(), Status::kOutOfRange);
  EXPECT_EQ(driver_.add(std::array{buf(64 * 1024 - 4, 8, false)}).error(), Status::kOutOfRange);
  for (std::uint32_t i = 0; i < kNum; ++i) ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 8, false)}));
  EXPECT_EQ(driver_.add(std::array{buf(0x1000, 8, false)}).error(), Status::kWouldBlock);
  EXPECT_FALSE(driver_.broken());
}

TEST_F(QueuePair, FlagSuppressionWithoutEventIdx) {
  ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 8, false)}));
  EXPECT_TRUE(driver_.kick_needed());
  EXPECT_FALSE(driver_.kick_needed()) << "nothing new since the last kick";
  device_.disable_notifications();
  EXPECT_EQ(peek<std::uint16_t>(layout_.used_flags()), kUsedFlagNoNotify);
  ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 8, false)}));
  EXPECT_FALSE(driver_.kick_needed());
  EXPECT_TRUE(device_.enable_notifications()) << "buffers already waiting";

  DeviceQueue::Chain c;
  ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
  ASSERT_EQ(device_.push_used(c.head, 0), Status::kOk);
  EXPECT_TRUE(device_.notify_needed());
  driver_.disable_interrupts();
  EXPECT_EQ(peek<std::uint16_t>(layout_.avail_flags()), kAvailFlagNoInterrupt);
  ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
  ASSERT_EQ(device_.push_used(c.head, 0), Status::kOk);
  EXPECT_FALSE(device_.notify_needed());
  EXPECT_TRUE(driver_.enable_interrupts()) << "used buffers already waiting";
}

class EventIdxPair : public QueuePair {
 protected:
  void SetUp() override { setup(true); }
};

TEST_F(EventIdxPair, ABusyDeviceIsNotKickedForEveryBuffer) {
  // The device is idle and waiting: the first buffer kicks it.
  ASSERT_TRUE(device_.enable_notifications() == false);
  ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 8, false)}));
  EXPECT_TRUE(driver_.kick_needed());
  // The device starts draining with notifications off; the driver keeps adding: no kicks.
  device_.disable_notifications();
  DeviceQueue::Chain c;
  ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
  int kicks = 0;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 8, false)}));
    kicks += driver_.kick_needed() ? 1 : 0;
  }
  EXPECT_EQ(kicks, 0);
  // The device drains, re-enables, finds nothing more: the next buffer kicks again.
  while (*device_.pop_available(c, chain_buf_)) {
  }
  EXPECT_FALSE(device_.enable_notifications());
  ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 8, false)}));
  EXPECT_TRUE(driver_.kick_needed());
}

TEST_F(EventIdxPair, DriverInterruptsFollowUsedEvent) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 8, true)}));
  DeviceQueue::Chain c;
  ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
  ASSERT_EQ(device_.push_used(c.head, 1), Status::kOk);
  EXPECT_TRUE(device_.notify_needed()) << "used_event 0: interrupt at the first used buffer";
  // The driver has not read it yet, so used_event still says 0: more used buffers don't interrupt.
  ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
  ASSERT_EQ(device_.push_used(c.head, 1), Status::kOk);
  EXPECT_FALSE(device_.notify_needed());
  DriverQueue::Used u;
  ASSERT_TRUE(*driver_.pop_used(u));
  ASSERT_TRUE(*driver_.pop_used(u));  // used_event -> 2
  ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
  ASSERT_EQ(device_.push_used(c.head, 1), Status::kOk);
  EXPECT_TRUE(device_.notify_needed());
  driver_.disable_interrupts();
  ASSERT_TRUE(*driver_.pop_used(u));
  ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
  ASSERT_EQ(device_.push_used(c.head, 1), Status::kOk);
  EXPECT_FALSE(device_.notify_needed()) << "interrupts disabled";
  EXPECT_TRUE(driver_.enable_interrupts());
}

// ---- Malformed shared-memory values: each is a clean error, never an access outside the region --------

class Malformed : public QueuePair {
 protected:
  void SetUp() override {
    QueuePair::SetUp();
    // A second device on the same ring, which takes single buffers (pop_buffer, as rpmsg does): it reads
    // what the first reads, and writes nothing to the ring until it takes a buffer.
    QueueConfig c;
    c.ring = *shm_.subregion(0, layout_.size);
    c.buffers = shm_;
    c.num = kNum;
    c.align = kAlign;
    ASSERT_EQ(single_.init(c, single_in_flight_), Status::kOk);
  }
  /// The driver offers one readable buffer; the test then corrupts what the device will read.
  void offer() { ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 64, false)})); }
  /// What the device finds is fault `f` (`single`, for a device that takes single buffers: kNone for the
  /// same as `f`).
  void expect_device_fault(Fault f, Fault single = Fault::kNone) {
    std::uint16_t head = 0;
    Buffer b;
    auto one = single_.pop_buffer(head, b);
    ASSERT_FALSE(one);
    EXPECT_EQ(one.error(), Status::kBroken);
    EXPECT_EQ(single_.fault(), single == Fault::kNone ? f : single) << to_string(single_.fault());
    EXPECT_EQ(single_.pop_buffer(head, b).error(), Status::kBroken);
    DeviceQueue::Chain c;
    auto r = device_.pop_available(c, chain_buf_);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), Status::kBroken);
    EXPECT_EQ(device_.fault(), f) << to_string(device_.fault());
    // Broken stays broken.
    EXPECT_EQ(device_.pop_available(c, chain_buf_).error(), Status::kBroken);
    EXPECT_EQ(device_.push_used(0, 0), Status::kBroken);
  }
  void expect_driver_fault(Fault f) {
    DriverQueue::Used u;
    auto r = driver_.pop_used(u);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), Status::kBroken);
    EXPECT_EQ(driver_.fault(), f) << to_string(driver_.fault());
    EXPECT_EQ(driver_.add(std::array{buf(0x1000, 8, false)}).error(), Status::kBroken);
  }
  std::size_t desc(std::uint32_t i, std::size_t field) { return layout_.desc_entry(i) + field; }

  std::array<std::uint64_t, DeviceQueue::in_flight_words(kNum)> single_in_flight_{};
  DeviceQueue single_;
};

TEST_F(Malformed, HeadIndexOutOfRange) {
  offer();
  poke<std::uint16_t>(layout_.avail_entry(0), kNum);
  expect_device_fault(Fault::kDescriptorIndex);
}

TEST_F(Malformed, NextIndexOutOfRange) {
  offer();
  poke<std::uint16_t>(desc(0, 12), kDescFlagNext);
  poke<std::uint16_t>(desc(0, 14), 0xffff);
  expect_device_fault(Fault::kDescriptorIndex, Fault::kChainTooLong);
}

TEST_F(Malformed, AddressOutsideTheRegion) {
  offer();
  poke<std::uint64_t>(desc(0, 0), 0x1000);  // below the shared memory
  expect_device_fault(Fault::kDescriptorAddress);
}

TEST_F(Malformed, AddressPastTheEnd) {
  offer();
  poke<std::uint64_t>(desc(0, 0), kShmBase + 64 * 1024);
  expect_device_fault(Fault::kDescriptorAddress);
}

TEST_F(Malformed, OversizeLength) {
  offer();
  poke<std::uint32_t>(desc(0, 8), 0xffff'ffff);
  expect_device_fault(Fault::kDescriptorAddress);
}

TEST_F(Malformed, AddressThatWrapsAroundTheAddressSpace) {
  offer();
  poke<std::uint64_t>(desc(0, 0), ~std::uint64_t{0} - 8);
  expect_device_fault(Fault::kDescriptorAddress);
}

TEST_F(Malformed, RunawayAvailIndex) {
  offer();
  poke<std::uint16_t>(layout_.avail_idx(), kNum + 1);
  expect_device_fault(Fault::kIndexRunaway);
}

TEST_F(Malformed, DescriptorLoop) {
  offer();
  // 0 -> 1 -> 0 -> ...
  poke<std::uint16_t>(desc(0, 12), kDescFlagNext);
  poke<std::uint16_t>(desc(0, 14), 1);
  poke<std::uint64_t>(desc(1, 0), kShmBase + 0x1000);
  poke<std::uint32_t>(desc(1, 8), 8);
  poke<std::uint16_t>(desc(1, 12), kDescFlagNext);
  poke<std::uint16_t>(desc(1, 14), 0);
  DeviceQueue::Chain c;
  std::array<Buffer, 64> big{};  // room for far more than the ring: the loop bound must trip first
  auto r = device_.pop_available(c, big);
  ASSERT_FALSE(r);
  EXPECT_EQ(device_.fault(), Fault::kDescriptorLoop);
}

TEST_F(Malformed, SelfLoop) {
  offer();
  poke<std::uint16_t>(desc(0, 12), kDescFlagNext);
  poke<std::uint16_t>(desc(0, 14), 0);
  DeviceQueue::Chain c;
  std::array<Buffer, 64> big{};
  ASSERT_FALSE(device_.pop_available(c, big));
  EXPECT_EQ(device_.fault(), Fault::kDescriptorLoop);
}

TEST_F(Malformed, ChainLongerThanTheCallerTakes) {
  ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 8, false), buf(0x1100, 8, false)}));
  DeviceQueue::Chain c;
  std::array<Buffer, 1> one{};
  ASSERT_FALSE(device_.pop_available(c, one));
  EXPECT_EQ(device_.fault(), Fault::kChainTooLong);
}

TEST_F(Malformed, IndirectNotNegotiated) {
  offer();
  poke<std::uint16_t>(desc(0, 12), kDescFlagIndirect);
  expect_device_fault(Fault::kUnexpectedIndirect);
}

TEST_F(Malformed, ReadableAfterWritable) {
  ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 8, true), buf(0x1100, 8, true)}));
  poke<std::uint16_t>(desc(1, 12), 0);  // second buffer now readable
  expect_device_fault(Fault::kReadableAfterWritable, Fault::kChainTooLong);
}

TEST_F(Malformed, UsedIdOutOfRange) {
  offer();
  poke<std::uint32_t>(layout_.used_entry(0), kNum);
  poke<std::uint16_t>(layout_.used_idx(), 1);
  expect_driver_fault(Fault::kDescriptorIndex);
}

TEST_F(Malformed, UsedIdNotInFlight) {
  offer();
  poke<std::uint32_t>(layout_.used_entry(0), 3);  // descriptor 3 was never offered
  poke<std::uint16_t>(layout_.used_idx(), 1);
  expect_driver_fault(Fault::kUsedIdNotInFlight);
}

TEST_F(Malformed, UsedTwice) {
  offer();
  poke<std::uint32_t>(layout_.used_entry(0), 0);
  poke<std::uint32_t>(layout_.used_entry(1), 0);
  poke<std::uint16_t>(layout_.used_idx(), 2);
  // Two used entries for one chain in flight: the index ran past what is in flight.
  expect_driver_fault(Fault::kIndexRunaway);
}

TEST_F(Malformed, UsedTwiceAcrossCalls) {
  offer();
  ASSERT_TRUE(driver_.add(std::array{buf(0x1100, 64, false)}));
  poke<std::uint32_t>(layout_.used_entry(0), 0);
  poke<std::uint32_t>(layout_.used_entry(1), 0);
  poke<std::uint16_t>(layout_.used_idx(), 2);
  DriverQueue::Used u;
  ASSERT_TRUE(*driver_.pop_used(u));
  expect_driver_fault(Fault::kUsedIdNotInFlight);
}

TEST_F(Malformed, UsedLengthLargerThanTheBuffer) {
  ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 64, true)}));
  poke<std::uint32_t>(layout_.used_entry(0), 0);
  poke<std::uint32_t>(layout_.used_entry(0) + 4, 65);
  poke<std::uint16_t>(layout_.used_idx(), 1);
  expect_driver_fault(Fault::kUsedLengthTooLarge);
}

TEST_F(Malformed, UsedLengthOfAReadOnlyChainIsIgnored) {
  // OpenAMP devices return read-only buffers with their full length; that is not a violation.
  offer();
  poke<std::uint32_t>(layout_.used_entry(0), 0);
  poke<std::uint32_t>(layout_.used_entry(0) + 4, 4096);
  poke<std::uint16_t>(layout_.used_idx(), 1);
  DriverQueue::Used u;
  ASSERT_TRUE(*driver_.pop_used(u));
  EXPECT_EQ(u.len, 0U);
  EXPECT_FALSE(driver_.broken());
}

TEST_F(Malformed, HeadOfferedAgainWhileTheDeviceHoldsIt) {
  offer();
  DeviceQueue::Chain c;
  ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
  EXPECT_EQ(device_.held(), 1U);
  std::uint16_t head = 0;
  Buffer b;
  ASSERT_TRUE(*single_.pop_buffer(head, b));
  // The driver puts the same head in the next avail slot and moves its index on, without the device having
  // returned it: the device would hold one buffer twice (and a flood of these is unbounded memory above).
  poke<std::uint16_t>(layout_.avail_entry(1), c.head);
  poke<std::uint16_t>(layout_.avail_idx(), 2);
  expect_device_fault(Fault::kHeadInFlight);
  EXPECT_EQ(device_.held(), 1U);
}

TEST_F(QueuePair, AHeadReturnedMayBeOfferedAgain) {
  // The same buffer, offered, returned and offered again, 3 rounds: normal reuse, not a fault.
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 64, false)}));
    DeviceQueue::Chain c;
    ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
    ASSERT_EQ(device_.push_used(c.head, 64), Status::kOk);
    EXPECT_EQ(device_.held(), 0U);
    DriverQueue::Used u;
    ASSERT_TRUE(*driver_.pop_used(u));
  }
  EXPECT_FALSE(device_.broken());
}

TEST_F(QueuePair, DeviceReturnsOnlyWhatItHolds) {
  ASSERT_TRUE(driver_.add(std::array{buf(0x1000, 64, false)}));
  DeviceQueue::Chain c;
  ASSERT_TRUE(*device_.pop_available(c, chain_buf_));
  EXPECT_EQ(device_.push_used(static_cast<std::uint16_t>(c.head + 1), 0), Status::kInvalidArgument);
  ASSERT_EQ(device_.push_used(c.head, 64), Status::kOk);
  EXPECT_EQ(device_.push_used(c.head, 64), Status::kInvalidArgument);  // twice
  EXPECT_FALSE(device_.broken());                                      // a caller's mistake, not the peer's
  EXPECT_EQ(peek<std::uint16_t>(layout_.used_idx()), 1);
}

TEST_F(Malformed, RunawayUsedIndex) {
  offer();
  poke<std::uint16_t>(layout_.used_idx(), 0x8000);
  expect_driver_fault(Fault::kIndexRunaway);
}

TEST(QueueSetup, RingMustFitItsRegion) {
  alignas(16) std::array<std::byte, 256> mem{};
  QueueConfig c;
  c.ring = IoRegion(mem, 0);
  c.buffers = c.ring;
  c.num = 16;  // needs 16*16 + ... > 256 bytes
  c.align = 4;
  std::array<DriverQueue::Slot, 16> slots{};
  DriverQueue d;
  EXPECT_EQ(d.init(c, slots), Status::kOutOfRange);
  DeviceQueue v;
  std::array<std::uint64_t, 1> in_flight{};
  EXPECT_EQ(v.init(c, in_flight), Status::kOutOfRange);
  c.num = 4;
  c.ring = *IoRegion(mem, 0).subregion(4, 200);  // misaligned ring
  EXPECT_EQ(v.init(c, in_flight), Status::kMisaligned);
  c.ring = IoRegion(mem, 0);
  EXPECT_EQ(v.init(c, {}), Status::kInvalidArgument);  // no room to record what it holds
  EXPECT_EQ(v.init(c, in_flight), Status::kOk);
  c.ring = IoRegion(mem, 0);
  EXPECT_EQ(d.init(c, std::span(slots).first(2)), Status::kInvalidArgument);
  EXPECT_EQ(d.init(c, slots), Status::kOk);
}

TEST(QueueSetup, UninitialisedQueuesRefuseWork) {
  DriverQueue d;
  EXPECT_EQ(d.add(std::array{Buffer{0, 1, false}}).error(), Status::kInvalidArgument);
  DriverQueue::Used u;
  EXPECT_EQ(d.pop_used(u).error(), Status::kInvalidArgument);
  DeviceQueue v;
  DeviceQueue::Chain c;
  std::array<Buffer, 1> b{};
  EXPECT_EQ(v.pop_available(c, b).error(), Status::kInvalidArgument);
}

}  // namespace
}  // namespace amp::virtio
