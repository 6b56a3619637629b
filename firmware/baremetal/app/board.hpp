// SPDX-License-Identifier: BSD-3-Clause
// What a board gives amp's bare-metal firmware, and what the firmware gives the board. Everything else (the
// resource table, rpmsg, the services, the trace buffer) is the board-independent app in this folder.
//
// A board provides:
//  - start-up: vectors, stacks, .data copied from its load image (or used in place where the host loads it
//    where it runs), .bss zeroed, static constructors, then firmware_main();
//  - its memory map, as compile definitions its CMake file sets (one source for code and linker script):
//    AMP_BOARD_NAME ("virt-a15", "mps2-an386"), AMP_BOARD_SHM_DA / AMP_BOARD_SHM_SIZE (the "vdev0buffer"
//    carveout), AMP_BOARD_TRACE_SIZE (the trace buffer, which its linker script places at AMP_BOARD_TRACE_DA),
//    AMP_BOARD_FAULT_ADDRESS (an address whose access faults, for the test images' amp-fault service);
//  - the functions below: init, the doorbell (kick, take, idle), time, console output, exit;
//  - fault handlers (undefined instruction, aborts, hard faults) that describe the fault in one line and call
//    firmware_fault(), which logs it and ends the run through exit().
//
// Thread-safety: the firmware runs in one context (its main loop); interrupt handlers only note that the
// doorbell rang. doorbell_take() and idle() may race with the doorbell's interrupt by design; the rest is
// called from the main loop only, except console_write and exit, which fault handlers also use.
#pragma once

#include <cstdint>
#include <string_view>

#include "amp/metal/baremetal/board.hpp"

namespace amp::firmware {

/// How the host and the firmware tell each other that rings changed (the doorbell vendor entry's mode).
enum class DoorbellMode : std::uint8_t {
  kInterrupt,  ///< A doorbell both ways; the firmware idles until one rings.
  kPoll,       ///< No doorbell: both sides poll the rings.
};

/// The app: runs after the board's start-up. Never returns.
[[noreturn]] void firmware_main() noexcept;
/// The app: a fault the board caught (`line` says what and where, without a newline). Writes it to the trace
/// buffer and the console, then ends the run with a non-zero status. Never returns; callable from any
/// exception context with a stack.
[[noreturn]] void firmware_fault(std::string_view line) noexcept;

namespace board {

/// Brings the board up for `mode`: interrupt controller, time base, console, and in interrupt mode the
/// doorbell and its interrupt; interrupts are on when it returns. Fills the hooks amp's bare-metal port
/// needs (irq_save/irq_restore, now_ns, wait_for_event in interrupt mode, irq_enable/irq_disable); the app
/// adds log_write and installs them. Called once, first.
void init(DoorbellMode mode, metal::baremetal::BoardHooks& hooks) noexcept;

/// Doorbell bytes the firmware sends: a notification ("look at the rings"), and the acknowledgement of a
/// vdev reset (the firmware has stopped using the vrings and waits for the next DRIVER_OK). A host that only
/// counts notifications may treat both alike.
inline constexpr std::uint8_t kKickByte = 'k';
inline constexpr std::uint8_t kResetAckByte = 'r';

/// Firmware -> host: one doorbell byte (interrupt mode).
void doorbell_kick(std::uint8_t value = kKickByte) noexcept;
/// Host -> firmware: whether the doorbell rang since the last call; clears the note.
bool doorbell_take() noexcept;
/// Sleeps until the doorbell rings, returning at once when it rang since the last doorbell_take(). May
/// return early (another interrupt): callers loop. Interrupt mode only.
void idle() noexcept;

/// Monotonic nanoseconds since an arbitrary origin.
std::uint64_t now_ns() noexcept;

/// Writes text to the board's console as it is (the caller adds newlines).
void console_write(std::string_view text) noexcept;

/// Ends the run: status 0 is a normal end, anything else a crash (on QEMU: the emulator exits, with status 0
/// or 1).
[[noreturn]] void exit(int status) noexcept;

}  // namespace board
}  // namespace amp::firmware
