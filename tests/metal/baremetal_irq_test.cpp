// SPDX-License-Identifier: BSD-3-Clause
// The bare-metal port's board hooks, critical sections, interrupt table, cache hooks and log sink, run on the
// PC with fake board hooks.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "amp/metal/baremetal/board.hpp"
#include "amp/metal/baremetal/irq.hpp"
#include "amp/metal/cache.hpp"
#include "amp/metal/log.hpp"

namespace amp::metal::baremetal {
namespace {

// --- Fake board state. Reset by the fixture; only the main test thread touches it unless noted. ---

// Fake interrupt mask: irq_save turns interrupts off and returns whether they were on.
bool g_irqs_on = true;
std::vector<std::string> g_events;  // "save->1", "restore(0)", "enable 3", "disable 3"...

std::uintptr_t fake_irq_save() {
  const bool was_on = g_irqs_on;
  g_irqs_on = false;
  g_events.push_back(std::string("save->") + (was_on ? "1" : "0"));
  return was_on ? 1 : 0;
}
void fake_irq_restore(std::uintptr_t state) {
  g_irqs_on = state != 0;
  g_events.push_back("restore(" + std::to_string(state) + ")");
}

// Controller hooks also record whether interrupts were masked when they ran.
bool g_controller_called_with_irqs_on = false;
void fake_controller_enable(unsigned vector) {
  g_controller_called_with_irqs_on |= g_irqs_on;
  g_events.push_back("enable " + std::to_string(vector));
}
void fake_controller_disable(unsigned vector) {
  g_controller_called_with_irqs_on |= g_irqs_on;
  g_events.push_back("disable " + std::to_string(vector));
}

std::vector<std::pair<const std::byte*, std::size_t>> g_flushed;
std::vector<std::pair<const std::byte*, std::size_t>> g_invalidated;
void fake_flush(const std::byte* p, std::size_t n) {
  g_flushed.emplace_back(p, n);
}
void fake_invalidate(const std::byte* p, std::size_t n) {
  g_invalidated.emplace_back(p, n);
}

std::vector<std::pair<LogLevel, std::string>> g_lines;
void fake_log_write(LogLevel level, std::string_view message) {
  g_lines.emplace_back(level, std::string(message));
}

BoardHooks all_fake_hooks() {
  BoardHooks h;
  h.irq_save = fake_irq_save;
  h.irq_restore = fake_irq_restore;
  h.irq_enable = fake_controller_enable;
  h.irq_disable = fake_controller_disable;
  h.cache_flush = fake_flush;
  h.cache_invalidate = fake_invalidate;
  h.log_write = fake_log_write;
  return h;
}

/// Records every vector it handles.
class RecordingHandler final : public IrqHandler {
 public:
  void handle_irq(unsigned vector) noexcept override { vectors.push_back(vector); }
  std::vector<unsigned> vectors;
};

class BaremetalBoard : public ::testing::Test {
 protected:
  void SetUp() override {
    g_irqs_on = true;
    g_events.clear();
    g_controller_called_with_irqs_on = false;
    g_flushed.clear();
    g_invalidated.clear();
    g_lines.clear();
    set_board_hooks(BoardHooks{});
  }
  void TearDown() override {
    // Leave the interrupt table empty and disabled for the next test.
    set_board_hooks(BoardHooks{});
    for (unsigned v = 0; v < kMaxIrqVectors; ++v) {
      static_cast<void>(irq_unregister(v));
      EXPECT_EQ(irq_disable(v), Status::kOk);
    }
  }
};

// --- Board hooks and critical sections ---

TEST_F(BaremetalBoard, HooksStartNullAndAreCopied) {
  EXPECT_EQ(board_hooks().irq_save, nullptr);
  EXPECT_EQ(board_hooks().now_ns, nullptr);
  BoardHooks h = all_fake_hooks();
  set_board_hooks(h);
  h.log_write = nullptr;  // the installed copy is unaffected
  EXPECT_EQ(board_hooks().log_write, &fake_log_write);
  EXPECT_EQ(board_hooks().irq_save, &fake_irq_save);
  set_board_hooks(BoardHooks{});
  EXPECT_EQ(board_hooks().log_write, nullptr);
}

TEST_F(BaremetalBoard, NestedCriticalSectionsRestoreInOrder) {
  set_board_hooks(all_fake_hooks());
  {
    CriticalSection outer;
    EXPECT_FALSE(g_irqs_on);
    {
      CriticalSection inner;
      EXPECT_FALSE(g_irqs_on);
    }
    EXPECT_FALSE(g_irqs_on) << "the inner section must restore 'off', not turn interrupts on";
  }
  EXPECT_TRUE(g_irqs_on);
  EXPECT_EQ(g_events, (std::vector<std::string>{"save->1", "save->0", "restore(0)", "restore(1)"}));
}

TEST_F(BaremetalBoard, CriticalSectionWithoutHooksTouchesNothing) {
  { CriticalSection cs; }
  EXPECT_TRUE(g_events.empty());
  // irq_save alone would leave interrupts off for good: the pair is used only when both are present.
  BoardHooks h;
  h.irq_save = fake_irq_save;
  set_board_hooks(h);
  { CriticalSection cs; }
  EXPECT_TRUE(g_events.empty());
  EXPECT_TRUE(g_irqs_on);
}

// --- Interrupt table ---

TEST_F(BaremetalBoard, DispatchRunsHandlerOnlyWhenRegisteredAndEnabled) {
  RecordingHandler h;
  const std::uint32_t spurious0 = irq_spurious_count();

  irq_dispatch(3);  // nothing registered
  EXPECT_EQ(irq_spurious_count(), spurious0 + 1);

  ASSERT_EQ(irq_register(3, h), Status::kOk);
  EXPECT_FALSE(irq_is_enabled(3)) << "registration does not enable";
  irq_dispatch(3);  // registered but disabled
  EXPECT_TRUE(h.vectors.empty());
  EXPECT_EQ(irq_spurious_count(), spurious0 + 2);

  ASSERT_EQ(irq_enable(3), Status::kOk);
  EXPECT_TRUE(irq_is_enabled(3));
  irq_dispatch(3);
  irq_dispatch(3);
  EXPECT_EQ(h.vectors, (std::vector<unsigned>{3, 3}));
  EXPECT_EQ(irq_spurious_count(), spurious0 + 2);

  irq_dispatch(4);  // a neighbouring vector is not ours
  EXPECT_EQ(h.vectors.size(), 2U);
  EXPECT_EQ(irq_spurious_count(), spurious0 + 3);

  ASSERT_EQ(irq_disable(3), Status::kOk);
  EXPECT_FALSE(irq_is_enabled(3));
  irq_dispatch(3);
  EXPECT_EQ(h.vectors.size(), 2U);
  EXPECT_EQ(irq_spurious_count(), spurious0 + 4);

  ASSERT_EQ(irq_enable(3), Status::kOk);
  ASSERT_EQ(irq_unregister(3), Status::kOk);
  EXPECT_FALSE(irq_is_enabled(3)) << "unregistering disables the vector";
  irq_dispatch(3);
  EXPECT_EQ(h.vectors.size(), 2U);
  EXPECT_EQ(irq_spurious_count(), spurious0 + 5);
}

TEST_F(BaremetalBoard, RegistrationErrors) {
  RecordingHandler a;
  RecordingHandler b;
  EXPECT_EQ(irq_register(kMaxIrqVectors, a), Status::kOutOfRange);
  EXPECT_EQ(irq_register(~0U, a), Status::kOutOfRange);
  EXPECT_EQ(irq_unregister(kMaxIrqVectors), Status::kOutOfRange);
  EXPECT_EQ(irq_enable(kMaxIrqVectors), Status::kOutOfRange);
  EXPECT_EQ(irq_disable(kMaxIrqVectors), Status::kOutOfRange);
  EXPECT_FALSE(irq_is_enabled(kMaxIrqVectors));
  EXPECT_EQ(irq_unregister(7), Status::kNotFound);

  ASSERT_EQ(irq_register(7, a), Status::kOk);
  EXPECT_EQ(irq_register(7, b), Status::kAlreadyExists);
  EXPECT_EQ(irq_register(7, a), Status::kAlreadyExists);
  ASSERT_EQ(irq_enable(7), Status::kOk);
  irq_dispatch(7);
  EXPECT_EQ(a.vectors.size(), 1U) << "the first registration stays in place";
  EXPECT_TRUE(b.vectors.empty());

  ASSERT_EQ(irq_unregister(7), Status::kOk);
  EXPECT_EQ(irq_unregister(7), Status::kNotFound);
  ASSERT_EQ(irq_register(7, b), Status::kOk) << "a freed vector can be taken again";
  ASSERT_EQ(irq_enable(7), Status::kOk);
  irq_dispatch(7);
  EXPECT_EQ(b.vectors, std::vector<unsigned>{7});
}

TEST_F(BaremetalBoard, BadVectorsAreCountedNotFatal) {
  const std::uint32_t spurious0 = irq_spurious_count();
  irq_dispatch(kMaxIrqVectors);
  irq_dispatch(kMaxIrqVectors + 1000);
  irq_dispatch(~0U);
  EXPECT_EQ(irq_spurious_count(), spurious0 + 3);
}

TEST_F(BaremetalBoard, EveryVectorUpToCapacityWorks) {
  RecordingHandler h;  // one handler may serve several vectors; it is told which one fired
  std::vector<unsigned> expected;
  for (unsigned v = 0; v < kMaxIrqVectors; ++v) {
    ASSERT_EQ(irq_register(v, h), Status::kOk) << v;
    ASSERT_EQ(irq_enable(v), Status::kOk) << v;
    expected.push_back(kMaxIrqVectors - 1 - v);
  }
  const std::uint32_t spurious0 = irq_spurious_count();
  for (unsigned v = kMaxIrqVectors; v-- > 0;) irq_dispatch(v);
  EXPECT_EQ(h.vectors, expected);
  EXPECT_EQ(irq_spurious_count(), spurious0);
}

TEST_F(BaremetalBoard, ControllerHooksFollowTheEnabledFlagInsideCriticalSections) {
  set_board_hooks(all_fake_hooks());
  RecordingHandler h;
  ASSERT_EQ(irq_register(5, h), Status::kOk);
  ASSERT_EQ(irq_enable(5), Status::kOk);
  ASSERT_EQ(irq_disable(5), Status::kOk);
  ASSERT_EQ(irq_enable(5), Status::kOk);
  ASSERT_EQ(irq_unregister(5), Status::kOk);  // disables the enabled vector at the controller too
  std::vector<std::string> controller;
  for (const std::string& e : g_events) {
    if (e.rfind("save", 0) != 0 && e.rfind("restore", 0) != 0) controller.push_back(e);
  }
  EXPECT_EQ(controller, (std::vector<std::string>{"enable 5", "disable 5", "enable 5", "disable 5"}));
  EXPECT_FALSE(g_controller_called_with_irqs_on) << "controller hooks must run inside a critical section";
  EXPECT_TRUE(g_irqs_on) << "every critical section was closed";
  EXPECT_EQ(g_events.front(), "save->1");
  EXPECT_EQ(g_events.back(), "restore(1)");
}

TEST_F(BaremetalBoard, TableWorksWithoutControllerHooks) {
  RecordingHandler h;
  ASSERT_EQ(irq_register(9, h), Status::kOk);
  ASSERT_EQ(irq_enable(9), Status::kOk);
  irq_dispatch(9);
  ASSERT_EQ(irq_disable(9), Status::kOk);
  irq_dispatch(9);
  EXPECT_EQ(h.vectors, std::vector<unsigned>{9});
  EXPECT_TRUE(g_events.empty());
}

TEST_F(BaremetalBoard, LambdaHandlerCanDisableItsOwnVector) {
  int calls = 0;
  IrqFunction handler([&calls](unsigned vector) {
    ++calls;
    // Dispatch holds no lock while a handler runs, so this must not deadlock.
    EXPECT_EQ(irq_disable(vector), Status::kOk);
  });
  ASSERT_EQ(irq_register(11, handler), Status::kOk);
  ASSERT_EQ(irq_enable(11), Status::kOk);
  irq_dispatch(11);
  irq_dispatch(11);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(irq_is_enabled(11));
}

TEST_F(BaremetalBoard, ConcurrentDispatchSeesConsistentEntries) {
  // Another "core" dispatches while this one registers, enables, disables and unregisters. Every dispatch
  // must be counted exactly once, as handled or as spurious.
  std::atomic<std::uint32_t> handled{0};
  IrqFunction handler([&handled](unsigned) { handled.fetch_add(1, std::memory_order_relaxed); });
  constexpr std::uint32_t kDispatches = 20000;
  const std::uint32_t spurious0 = irq_spurious_count();
  std::atomic<bool> done{false};
  std::thread isr([&] {
    for (std::uint32_t i = 0; i < kDispatches; ++i) irq_dispatch(2);
    done.store(true);
  });
  while (!done.load()) {
    EXPECT_EQ(irq_register(2, handler), Status::kOk);
    EXPECT_EQ(irq_enable(2), Status::kOk);
    EXPECT_EQ(irq_disable(2), Status::kOk);
    EXPECT_EQ(irq_enable(2), Status::kOk);
    EXPECT_EQ(irq_unregister(2), Status::kOk);
  }
  isr.join();
  EXPECT_EQ(handled.load() + (irq_spurious_count() - spurious0), kDispatches);
}

// --- Cache ---

TEST_F(BaremetalBoard, CacheOperationsReachTheHooks) {
  std::byte buf[64] = {};
  cache_flush(std::span<const std::byte>(buf, 64));  // without hooks: only a fence
  cache_invalidate(std::span<const std::byte>(buf, 64));
  EXPECT_TRUE(g_flushed.empty());
  EXPECT_TRUE(g_invalidated.empty());

  set_board_hooks(all_fake_hooks());
  cache_flush(std::span<const std::byte>(buf + 8, 16));
  cache_invalidate(std::span<const std::byte>(buf + 32, 32));
  cache_flush(std::span<const std::byte>());  // empty ranges are not forwarded
  cache_invalidate(std::span<const std::byte>(buf, 0));
  ASSERT_EQ(g_flushed.size(), 1U);
  EXPECT_EQ(g_flushed[0].first, buf + 8);
  EXPECT_EQ(g_flushed[0].second, 16U);
  ASSERT_EQ(g_invalidated.size(), 1U);
  EXPECT_EQ(g_invalidated[0].first, buf + 32);
  EXPECT_EQ(g_invalidated[0].second, 32U);
}

// --- Log sink ---

TEST_F(BaremetalBoard, LogLinesReachLogWriteWithTheirLevel) {
  const LogLevel old_level = log_level();
  set_log_sink(nullptr);  // the platform default: the board's hook
  set_log_level(LogLevel::kInfo);

  log(LogLevel::kError, "dropped %d", 0);  // no hook yet: dropped without harm
  EXPECT_TRUE(g_lines.empty());

  set_board_hooks(all_fake_hooks());
  log(LogLevel::kWarning, "vring %u full", 3U);
  log(LogLevel::kDebug, "below the level");
  AMP_LOG_INFO("hello %s", "board");
  default_log_sink().write(LogLevel::kTrace, "direct");
  set_log_level(old_level);

  ASSERT_EQ(g_lines.size(), 3U);
  EXPECT_EQ(g_lines[0].first, LogLevel::kWarning);
  EXPECT_EQ(g_lines[0].second, "vring 3 full");
  EXPECT_EQ(g_lines[1].first, LogLevel::kInfo);
  EXPECT_EQ(g_lines[1].second, "hello board");
  EXPECT_EQ(g_lines[2].first, LogLevel::kTrace);
  EXPECT_EQ(g_lines[2].second, "direct");
}

}  // namespace
}  // namespace amp::metal::baremetal
