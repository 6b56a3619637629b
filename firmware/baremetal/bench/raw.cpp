// SPDX-License-Identifier: BSD-3-Clause
// The raw baseline image: the smallest firmware loop that answers the host, on the board's own start-up and
// drivers (board.hpp), with no rpmsg, no virtio and no resource table. amp-bench measures the round trips of
// amp's rpmsg firmware against it, in the same run:
//  - doorbell mode: the board's doorbell interrupt and WFI idle, exactly the path the rpmsg firmware's main
//    loop takes (board::idle, board::doorbell_take), answered with one board::doorbell_kick;
//  - poll mode: a spin (metal::cpu_relax, as the rpmsg firmware's poll loop) on a word in shared memory,
//    answered by storing its value into another (raw_mailbox.hpp).
// The host picks the mode in the mailbox before the CPU starts. Faults are handled as in the app: a line in
// the trace buffer and the console, then the board's exit.
#include <atomic>
#include <cstdint>
#include <string_view>

#include "amp/metal/baremetal/board.hpp"
#include "amp/metal/platform.hpp"
#include "board.hpp"
#include "raw_mailbox.hpp"
#include "trace.hpp"

namespace amp::firmware {

namespace {

std::atomic_ref<std::uint32_t> word(std::size_t at) noexcept {
  // Identity-mapped shared memory: the carveout's device address is its pointer.
  return std::atomic_ref<std::uint32_t>(
      *reinterpret_cast<std::uint32_t*>(std::uintptr_t{AMP_BOARD_SHM_DA} + at));
}

void say(std::string_view line) noexcept {
  trace::write_line(line);
  board::console_write(line);
  board::console_write("\n");
}

[[noreturn]] void answer_doorbell() noexcept {
  (void)board::doorbell_take();  // init counts bytes that came before it as a ring: none was sent yet
  word(raw::kReadyAt).store(raw::kReadyDoorbell, std::memory_order_release);
  for (;;) {
    board::idle();
    if (board::doorbell_take()) board::doorbell_kick();
  }
}

[[noreturn]] void answer_poll() noexcept {
  auto ping = word(raw::kPingAt);
  auto pong = word(raw::kPongAt);
  std::uint32_t last = ping.load(std::memory_order_acquire);
  pong.store(last, std::memory_order_release);
  word(raw::kReadyAt).store(raw::kReadyPoll, std::memory_order_release);
  for (;;) {
    const std::uint32_t v = ping.load(std::memory_order_acquire);
    if (v != last) {
      last = v;
      pong.store(v, std::memory_order_release);
    } else {
      metal::cpu_relax();
    }
  }
}

}  // namespace

[[noreturn]] void firmware_main() noexcept {
  static_assert(raw::kMailboxSize <= AMP_BOARD_SHM_SIZE, "the mailbox does not fit the carveout");
  trace::clear();
  const bool poll = word(raw::kModeAt).load(std::memory_order_acquire) == raw::kModePoll;
  metal::baremetal::BoardHooks hooks{};
  board::init(poll ? DoorbellMode::kPoll : DoorbellMode::kInterrupt, hooks);
  metal::baremetal::set_board_hooks(hooks);
  say(poll ? "amp raw baseline " AMP_BOARD_NAME ": poll mode"
           : "amp raw baseline " AMP_BOARD_NAME ": doorbell mode");
  if (poll) answer_poll();
  answer_doorbell();
}

[[noreturn]] void firmware_fault(std::string_view line) noexcept {
  trace::write_fault_line(line);
  board::console_write(line);
  board::console_write("\n");
  board::exit(1);
}

}  // namespace amp::firmware
