// SPDX-License-Identifier: BSD-3-Clause
// The bare-metal port's Mutex, Condition and time, run on the PC with fake board hooks (a fake clock, a
// fake wait_for_event/send_event). Threads stand in for cores; the fakes are atomics since they are shared.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>

#include "amp/metal/baremetal/board.hpp"
#include "amp/metal/sync.hpp"
#include "amp/metal/time.hpp"

namespace amp::metal {
namespace {

constexpr std::uint64_t kNever = ~std::uint64_t{0};

std::atomic<std::uint64_t> g_clock{0};
std::atomic<std::uint64_t> g_tick{0};  // what each wait_for_event (or clock read) advances the clock by
std::atomic<int> g_waits{0};           // wait_for_event calls
std::atomic<int> g_events{0};          // send_event calls
std::mutex g_waiter_ids_mutex;
std::set<std::thread::id> g_waiter_ids;  // threads that idled in wait_for_event

std::uint64_t fake_now() {
  return g_clock.load();
}
std::uint64_t self_advancing_now() {
  return g_clock.fetch_add(g_tick.load()) + g_tick.load();
}
void fake_wait_for_event() {
  g_waits.fetch_add(1);
  g_clock.fetch_add(g_tick.load());
  {
    std::lock_guard<std::mutex> lock(g_waiter_ids_mutex);
    g_waiter_ids.insert(std::this_thread::get_id());
  }
  std::this_thread::yield();
}
void fake_send_event() {
  g_events.fetch_add(1);
}

std::size_t waiter_count() {
  std::lock_guard<std::mutex> lock(g_waiter_ids_mutex);
  return g_waiter_ids.size();
}

/// Spins until `done()` (a deterministic handshake with another thread), giving up after a generous time.
template <class F>
bool spin_until(F done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

class BaremetalSync : public ::testing::Test {
 protected:
  void SetUp() override {
    g_clock = 0;
    g_tick = 0;
    g_waits = 0;
    g_events = 0;
    {
      std::lock_guard<std::mutex> lock(g_waiter_ids_mutex);
      g_waiter_ids.clear();
    }
    baremetal::set_board_hooks(baremetal::BoardHooks{});
  }
  void TearDown() override { baremetal::set_board_hooks(baremetal::BoardHooks{}); }

  static void install(std::uint64_t (*now)(), bool events) {
    baremetal::BoardHooks h;
    h.now_ns = now;
    if (events) {
      h.wait_for_event = fake_wait_for_event;
      h.send_event = fake_send_event;
    }
    baremetal::set_board_hooks(h);
  }
};

// --- Time ---

TEST_F(BaremetalSync, MonotonicReadsTheBoardClock) {
  EXPECT_EQ(monotonic_ns(), 0U) << "no clock hook";
  install(fake_now, false);
  g_clock = 123'456;
  EXPECT_EQ(monotonic_ns(), 123'456U);
  EXPECT_EQ(deadline_after(1000), 124'456U);
}

TEST_F(BaremetalSync, SleepWithoutClockReturnsAtOnce) {
  install(nullptr, true);
  sleep_ns(1'000'000);
  EXPECT_EQ(g_waits.load(), 0);
}

TEST_F(BaremetalSync, SleepIdlesUntilTheClockPassesTheDeadline) {
  install(fake_now, true);
  g_clock = 10'000;
  g_tick = 1'000;
  sleep_ns(5'000);
  EXPECT_GE(g_clock.load(), 15'000U);
  EXPECT_EQ(g_waits.load(), 5) << "one idle per tick until the deadline";
  sleep_ns(0);
  EXPECT_EQ(g_waits.load(), 5) << "a zero sleep does not idle";
}

TEST_F(BaremetalSync, SleepSpinsWithoutWaitForEvent) {
  install(self_advancing_now, false);
  g_tick = 100;
  sleep_ns(10'000);
  EXPECT_GE(g_clock.load(), 10'000U);
}

// --- Mutex ---

TEST_F(BaremetalSync, MutexExcludesAcrossThreads) {
  Mutex m;
  long counter = 0;
  auto work = [&] {
    for (int i = 0; i < 50'000; ++i) {
      LockGuard<Mutex> guard(m);
      ++counter;  // a data race (and a TSan report) if the mutex does not exclude
    }
  };
  std::thread a(work);
  std::thread b(work);
  a.join();
  b.join();
  EXPECT_EQ(counter, 100'000);
}

TEST_F(BaremetalSync, ContendedMutexIdlesAndUnlockSendsAnEvent) {
  install(nullptr, true);
  Mutex m;
  m.lock();
  EXPECT_FALSE(m.try_lock());
  std::atomic<bool> acquired{false};
  std::thread t([&] {
    m.lock();
    acquired = true;
    m.unlock();
  });
  // The other thread idles in wait_for_event only while it cannot take the lock.
  ASSERT_TRUE(spin_until([] { return g_waits.load() > 0; }));
  EXPECT_FALSE(acquired.load());
  const int events_before = g_events.load();
  m.unlock();
  t.join();
  EXPECT_TRUE(acquired.load());
  EXPECT_GT(g_events.load(), events_before) << "unlock wakes idling lockers";
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

// --- Condition ---

TEST_F(BaremetalSync, NotifyWakesAWaitingThread) {
  install(nullptr, true);  // no clock: only a notification can end the wait
  Mutex m;
  Condition c;
  bool ready = false;  // guarded by m
  bool woke = false;
  bool saw_ready = false;
  std::thread waiter([&] {
    m.lock();
    woke = c.wait_until(m, kNever);
    saw_ready = ready;
    m.unlock();
  });
  // The waiter idles only once it is inside wait_until with m released.
  ASSERT_TRUE(spin_until([] { return g_waits.load() > 0; }));
  {
    LockGuard<Mutex> guard(m);
    ready = true;
  }
  const int events_before = g_events.load();
  c.notify_all();
  EXPECT_GT(g_events.load(), events_before) << "notify sends an event";
  waiter.join();
  EXPECT_TRUE(woke);
  EXPECT_TRUE(saw_ready);
}

TEST_F(BaremetalSync, NotifyAllWakesEveryWaiter) {
  install(nullptr, true);
  Mutex m;
  Condition c;
  std::atomic<int> woken{0};
  auto wait = [&] {
    m.lock();
    if (c.wait_until(m, kNever)) woken.fetch_add(1);
    m.unlock();
  };
  std::thread a(wait);
  std::thread b(wait);
  ASSERT_TRUE(spin_until([] { return waiter_count() == 2; }));
  c.notify_one();  // on bare metal notify_one wakes all: callers must re-check their predicate anyway
  a.join();
  b.join();
  EXPECT_EQ(woken.load(), 2);
}

TEST_F(BaremetalSync, WaitUntilTimesOutOnTheFakeClock) {
  install(fake_now, true);
  g_clock = 1'000'000;
  g_tick = 1'000;
  Mutex m;
  Condition c;
  c.notify_all();  // a notification before the wait is not remembered
  m.lock();
  const std::uint64_t deadline = deadline_after(10'000);
  EXPECT_FALSE(c.wait_until(m, deadline));
  EXPECT_GE(g_clock.load(), deadline);
  EXPECT_EQ(g_waits.load(), 10);
  EXPECT_FALSE(m.try_lock()) << "m is locked again on return";
  m.unlock();
}

TEST_F(BaremetalSync, WaitUntilWithPastDeadlineDoesNotIdle) {
  install(fake_now, true);
  g_clock = 500;
  Mutex m;
  Condition c;
  m.lock();
  EXPECT_FALSE(c.wait_until(m, 500));
  EXPECT_FALSE(c.wait_until(m, 0));
  EXPECT_EQ(g_waits.load(), 0);
  m.unlock();
}

TEST_F(BaremetalSync, WaitUntilWithoutAnyHooks) {
  // No clock: monotonic_ns() is 0, so a deadline of 0 has passed and the wait ends at once.
  Mutex m;
  Condition c;
  m.lock();
  EXPECT_FALSE(c.wait_until(m, 0));
  m.unlock();
  // No wait_for_event either: the waiter spins with cpu_relax until notified.
  std::atomic<bool> entered{false};
  bool woke = false;
  std::thread waiter([&] {
    m.lock();
    entered = true;
    woke = c.wait_until(m, kNever);
    m.unlock();
  });
  ASSERT_TRUE(spin_until([&] { return entered.load(); }));
  {
    // Once we hold m, the waiter has recorded the generation and released m inside wait_until.
    LockGuard<Mutex> guard(m);
  }
  c.notify_all();
  waiter.join();
  EXPECT_TRUE(woke);
}

}  // namespace
}  // namespace amp::metal
