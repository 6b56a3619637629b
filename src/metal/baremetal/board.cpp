// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/baremetal/board.hpp"

#include <atomic>

#include "amp/metal/platform.hpp"

namespace amp::metal::baremetal {

namespace {
// Constant-initialised: usable before (and without) C++ static constructors running.
constinit BoardHooks g_hooks{};
}  // namespace

void set_board_hooks(const BoardHooks& hooks) noexcept {
  g_hooks = hooks;
}

const BoardHooks& board_hooks() noexcept {
  return g_hooks;
}

void wait_for_event() noexcept {
  if (g_hooks.wait_for_event != nullptr) {
    g_hooks.wait_for_event();
  } else {
    cpu_relax();
  }
}

void send_event() noexcept {
  if (g_hooks.send_event != nullptr) g_hooks.send_event();
}

CriticalSection::CriticalSection() noexcept {
  if (g_hooks.irq_save != nullptr && g_hooks.irq_restore != nullptr) {
    state_ = g_hooks.irq_save();
    masked_ = true;
    // Masking interrupts is a same-core matter: the compiler must not move accesses out of the section.
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

CriticalSection::~CriticalSection() {
  if (masked_) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    g_hooks.irq_restore(state_);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

}  // namespace amp::metal::baremetal
