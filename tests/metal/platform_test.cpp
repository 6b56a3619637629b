// SPDX-License-Identifier: BSD-3-Clause
// The Linux port's generic services: time, locks and conditions, cache and DMA mapping.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <thread>
#include <vector>

#include "amp/metal/cache.hpp"
#include "amp/metal/dma.hpp"
#include "amp/metal/sync.hpp"
#include "amp/metal/time.hpp"

namespace amp::metal {
namespace {

TEST(Time, MonotonicAndSleepsAtLeastTheRequestedTime) {
  const std::uint64_t a = monotonic_ns();
  sleep_ns(2'000'000);
  const std::uint64_t b = monotonic_ns();
  EXPECT_GE(b - a, 2'000'000U);
  EXPECT_GE(monotonic_ns(), b);
}

TEST(Time, DeadlineSaturates) {
  EXPECT_EQ(deadline_after(~std::uint64_t{0}), ~std::uint64_t{0});
  const std::uint64_t now = monotonic_ns();
  const std::uint64_t d = deadline_after(1000);
  EXPECT_GE(d, now + 1000);
}

template <class Lock>
void hammer(Lock& lock) {
  long counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        LockGuard guard(lock);
        ++counter;  // a data race (and a TSan report) if the lock does not exclude
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 80000);
}

TEST(Sync, SpinlockExcludes) {
  Spinlock s;
  hammer(s);
  EXPECT_TRUE(s.try_lock());
  EXPECT_FALSE(s.try_lock());
  s.unlock();
}

TEST(Sync, MutexExcludes) {
  Mutex m;
  hammer(m);
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

TEST(Sync, ConditionWakesAWaiter) {
  Mutex m;
  Condition c;
  bool ready = false;
  std::thread waiter([&] {
    LockGuard g(m);
    while (!ready) c.wait(m);
  });
  {
    LockGuard g(m);
    ready = true;
  }
  c.notify_all();
  waiter.join();
  EXPECT_TRUE(ready);
}

TEST(Sync, ConditionWaitUntilTimesOut) {
  Mutex m;
  Condition c;
  LockGuard g(m);
  const std::uint64_t start = monotonic_ns();
  bool woke = true;
  // Spurious wake-ups may return true early; loop until the deadline as callers do.
  const std::uint64_t deadline = start + 5'000'000;
  while (woke && monotonic_ns() < deadline) woke = c.wait_until(m, deadline);
  EXPECT_FALSE(woke);
  EXPECT_GE(monotonic_ns(), deadline);
  EXPECT_TRUE(c.wait_until(m, 0) == false) << "a deadline in the past times out at once";
}

TEST(Dma, MapReturnsTheDeviceAddressInsideTheRegion) {
  alignas(64) std::array<std::byte, 4096> mem{};
  const IoRegion region(mem, 0x7000'0000);
  std::span<std::byte> buf(mem.data() + 512, 256);
  for (auto dir : {DmaDirection::kToDevice, DmaDirection::kFromDevice, DmaDirection::kBidirectional}) {
    auto da = dma_map(region, buf, dir);
    ASSERT_TRUE(da);
    EXPECT_EQ(*da, 0x7000'0200U);
    dma_unmap(buf, dir);
  }
}

TEST(Dma, MapRefusesBuffersOutsideTheRegion) {
  alignas(64) std::array<std::byte, 4096> mem{};
  std::array<std::byte, 64> elsewhere{};
  const IoRegion region(std::span<std::byte>(mem).first(1024), 0x1000);
  EXPECT_EQ(dma_map(region, elsewhere, DmaDirection::kToDevice).error(), Status::kOutOfRange);
  // Starts inside, ends outside.
  EXPECT_EQ(dma_map(region, std::span<std::byte>(mem.data() + 1000, 100), DmaDirection::kToDevice).error(),
            Status::kOutOfRange);
}

TEST(Cache, FlushAndInvalidateKeepTheData) {
  // On this coherent host they only order memory; the data must be untouched either way.
  std::array<std::byte, 300> buf{};
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<std::byte>(i);
  cache_flush(buf);
  cache_invalidate(buf);
  cache_flush({});
  for (std::size_t i = 0; i < buf.size(); ++i) EXPECT_EQ(buf[i], static_cast<std::byte>(i));
}

}  // namespace
}  // namespace amp::metal
