// SPDX-License-Identifier: BSD-3-Clause
// amp's bare-metal remote firmware: the resource table, and the main loop that serves rpmsg in the virtio
// device role over it.
//
// Lifecycle: the firmware waits (idle, woken by the doorbell) for DRIVER_OK in its vdev's status, starts an
// rpmsg::LiteDevice (rpmsg's device role at its smallest) over the vrings the host placed (read from the
// table each time), announces its services and serves. When the host resets the vdev (a status without
// DRIVER_OK), or puts the image's table back (which clears the doorbell entry's state word, set to serving
// while a session runs), it stops the Device and its endpoints, sets the state word to idle, acknowledges
// with a doorbell byte 'r' (interrupt mode), and waits for the next DRIVER_OK. When the host breaks the ring
// protocol, the firmware stops serving and waits for the session to end in one of those ways. The firmware
// never writes the vdev's status (the driver's). Each time round, in every state, it answers the host's
// watchdog (the doorbell entry's ping and pong).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "amp/metal/baremetal/board.hpp"
#include "amp/metal/io_region.hpp"
#include "amp/metal/log.hpp"
#include "amp/metal/platform.hpp"
#include "amp/rpmsg/lite_device.hpp"
#include "amp/rproc/baremetal_table.hpp"
#include "amp/virtio/rsc_vdev.hpp"
#include "board.hpp"
#include "services.hpp"
#include "trace.hpp"

namespace amp::firmware {

/// Entries per vring (the host may not change it: the firmware's storage is sized for it).
inline constexpr std::uint32_t kRingSize = 64;

}  // namespace amp::firmware

// Not const: the host writes into it (vring addresses, notify ids, the status, the doorbell mode). Read
// through an IoRegion (atomic accesses), never as the constant it starts as.
extern "C" {
AMP_RPROC_RESOURCE_TABLE constinit amp::rproc::BaremetalFirmwareTable amp_resource_table =
    amp::rproc::baremetal_firmware_table(
        {.vdev = {.vring_num = amp::firmware::kRingSize,
                  .vring_align = 0x1000,
                  .features = (1U << amp::rpmsg::kFeatureNs) | (1U << amp::virtio::kFeatureEventIdx)},
         .carveout_da = AMP_BOARD_SHM_DA,
         .carveout_len = AMP_BOARD_SHM_SIZE,
         .trace_da = AMP_BOARD_TRACE_DA,
         .trace_len = amp::firmware::trace::kSize});
}

namespace amp::firmware {

namespace {

using metal::IoRegion;
using metal::LogLevel;

IoRegion table_region() noexcept {
  auto* bytes = reinterpret_cast<std::byte*>(&amp_resource_table);
  return IoRegion(std::span(bytes, sizeof amp_resource_table),
                  reinterpret_cast<std::uintptr_t>(&amp_resource_table));
}

IoRegion shared_memory() noexcept {
  // The carveout the host allocates vrings and buffers from: identity-mapped, so the pointer is the da.
  return IoRegion(
      std::span(reinterpret_cast<std::byte*>(std::uintptr_t{AMP_BOARD_SHM_DA}), AMP_BOARD_SHM_SIZE),
      AMP_BOARD_SHM_DA);
}

/// The doorbell mode the host left in the vendor entry (read once, at boot).
std::uint32_t read_mode() noexcept {
  constexpr std::size_t at = offsetof(rproc::BaremetalFirmwareTable, doorbell.mode);
  return table_region().load<std::uint32_t>(at).value_or(rproc::kDoorbellModeInterrupt);
}

// Log lines go to the trace buffer and the console: "[seconds.microseconds] level: message", or, in
// dictionary mode, "[#<hex ns>] level: <record>", which the host renders the same (rproc::LogDictionary):
// no division and no formatter in the image.
void log_line(LogLevel level, std::string_view message) noexcept {
  char line[metal::kMaxLogMessage + 32];
#if AMP_LOG_DICTIONARY
  std::size_t n = 0;
  const auto append = [&](std::string_view s) {
    for (char c : s) {
      if (n + 1 < sizeof line) line[n++] = c;
    }
  };
  append("[#");
  n = metal::dict::append_hex(line, n, board::now_ns());
  append("] ");
  append(metal::to_string(level));
  append(": ");
  append(message);
  const std::string_view text(line, n);
#else
  const std::uint64_t us = board::now_ns() / 1000;
  const std::size_t n =
      metal::format(line, "[%5lu.%06lu] %s: %.*s", static_cast<unsigned long>(us / 1'000'000),
                    static_cast<unsigned long>(us % 1'000'000), metal::to_string(level),
                    static_cast<int>(message.size()), message.data());
  const std::string_view text(line, n < sizeof line ? n : sizeof line - 1);
#endif
  trace::write_line(text);
  board::console_write(text);
  board::console_write("\n");
}

class DoorbellNotifier final : public rpmsg::Notifier {
 public:
  Status notify(std::uint32_t) noexcept override {
    board::doorbell_kick();
    return Status::kOk;
  }
};

struct Firmware {
  DoorbellMode mode = DoorbellMode::kInterrupt;
  DoorbellNotifier doorbell;
  rpmsg::LiteStorage<kRingSize> storage;
  rpmsg::LiteDevice device;
  Services services;
};

/// The watchdog (see baremetal_table.hpp): pong follows the host's ping each time round the main loop, so a
/// firmware stuck anywhere else (a handler that never returns, interrupts masked for good) stops answering.
constexpr std::size_t kPingAt = offsetof(rproc::BaremetalFirmwareTable, doorbell.ping);
constexpr std::size_t kPongAt = offsetof(rproc::BaremetalFirmwareTable, doorbell.pong);
void answer_watchdog() noexcept {
  const IoRegion table = table_region();
  if (const auto ping = table.load<std::uint32_t>(kPingAt)) (void)table.store<std::uint32_t>(kPongAt, *ping);
}

/// Idles until something may have changed: the doorbell (interrupt mode), or a spin (poll mode). The
/// watchdog is answered first: a ping that comes meanwhile rings the doorbell, so the idle returns for it.
void wait_a_little(DoorbellMode mode) noexcept {
  answer_watchdog();
  if (mode == DoorbellMode::kInterrupt) {
    board::idle();
  } else {
    metal::cpu_relax();
  }
}

/// The vdev's status, read afresh from the table.
std::uint8_t vdev_status(const virtio::RscVdev& t) noexcept {
  return t.status();
}

/// The firmware's state word in the doorbell entry (rproc::kDoorbellState*).
constexpr std::size_t kStateAt = offsetof(rproc::BaremetalFirmwareTable, doorbell.state);
void set_state(std::uint32_t state) noexcept {
  (void)table_region().store<std::uint32_t>(kStateAt, state);
}
std::uint32_t state() noexcept {
  return table_region().load<std::uint32_t>(kStateAt).value_or(rproc::kDoorbellStateIdle);
}

/// Whether the session the firmware serves has ended: the host reset the vdev (no DRIVER_OK), or put the
/// image's table back (the state word cleared), possibly with DRIVER_OK set again since.
bool session_over(const virtio::RscVdev& t) noexcept {
  return (vdev_status(t) & virtio::kStatusDriverOk) == 0 || state() != rproc::kDoorbellStateServing;
}

/// Waits until the host has set DRIVER_OK (without FAILED or NEEDS_RESET); returns the transport over the
/// vdev as it is now.
virtio::RscVdev wait_for_driver(DoorbellMode mode) noexcept {
  for (;;) {
    if (mode == DoorbellMode::kInterrupt) (void)board::doorbell_take();
    auto body = virtio::find_vdev(table_region(), 0);
    if (body) {
      if (auto t = virtio::RscVdev::open(*body)) {
        const std::uint8_t st = vdev_status(*t);
        constexpr std::uint8_t kBad = virtio::kStatusFailed | virtio::kStatusNeedsReset;
        if ((st & virtio::kStatusDriverOk) != 0 && (st & kBad) == 0) return *t;
      }
    }
    wait_a_little(mode);
  }
}

/// Waits until the session is over (see session_over).
void wait_for_reset(const virtio::RscVdev& t, DoorbellMode mode) noexcept {
  for (;;) {
    if (mode == DoorbellMode::kInterrupt) (void)board::doorbell_take();
    if (session_over(t)) return;
    wait_a_little(mode);
  }
}

/// Gives the vrings up: the state word says so, and in interrupt mode the doorbell too.
void let_go(DoorbellMode mode) noexcept {
  set_state(rproc::kDoorbellStateIdle);
  if (mode == DoorbellMode::kInterrupt) board::doorbell_kick(board::kResetAckByte);
}

/// One session: from DRIVER_OK to the host's reset.
void serve(Firmware& fw, virtio::RscVdev& transport) noexcept {
  const bool interrupts = fw.mode == DoorbellMode::kInterrupt;
  // Serving from here: the vrings are read after this, so a host that puts the table back from now on is
  // noticed (it clears the word), and one that did so before has already placed the vrings we read.
  set_state(rproc::kDoorbellStateServing);
  rpmsg::LiteConfig dc;
  dc.shm = shared_memory();
  dc.vdev = &transport;
  dc.notifier = interrupts ? &fw.doorbell : nullptr;  // poll mode: neither side kicks
  if (const Status s = fw.device.start(dc, fw.storage); !ok(s)) {
    AMP_LOG(LogLevel::kError, "rpmsg: cannot start over the host's vrings: %s; waiting for a reset",
            log_name(s));
    wait_for_reset(transport, fw.mode);
    let_go(fw.mode);
    return;
  }
  {
    const auto q0 = transport.queue(0);
    const auto q1 = transport.queue(1);
    AMP_LOG(LogLevel::kInfo, "rpmsg: up, vrings at 0x%llx and 0x%llx, %u entries",
            q0 ? static_cast<unsigned long long>(q0->da) : 0ULL,
            q1 ? static_cast<unsigned long long>(q1->da) : 0ULL, static_cast<unsigned>(kRingSize));
  }
  if (const Status s = fw.services.start(fw.device); !ok(s)) {
    AMP_LOG(LogLevel::kError, "rpmsg: announcing the services failed: %s", log_name(s));
  }
  bool broken = false;
  for (;;) {
    if (interrupts) (void)board::doorbell_take();  // before looking, so that a kick meanwhile is not lost
    if (session_over(transport)) break;
    const Status s = fw.device.process();
    if (s == Status::kBroken) {
      // Often a host that started a new session before we noticed the reset: then the session is over.
      if (session_over(transport)) break;
      AMP_LOG(LogLevel::kError, "rpmsg: the host broke the ring protocol; waiting for a reset");
      broken = true;
      break;
    }
    wait_a_little(fw.mode);
  }
  const bool replaced = !broken && state() != rproc::kDoorbellStateServing;
  fw.device.stop();
  fw.services.stop();
  if (broken) wait_for_reset(transport, fw.mode);
  const rpmsg::Stats st = fw.device.stats();
  AMP_LOG(LogLevel::kInfo, "rpmsg: vdev reset by the host%s after %llu messages in, %llu out",
          replaced ? " (its table put back)" : "", static_cast<unsigned long long>(st.rx_messages),
          static_cast<unsigned long long>(st.tx_messages));
  let_go(fw.mode);
}

}  // namespace

[[noreturn]] void firmware_main() noexcept {
  trace::clear();
  static Firmware fw;  // never destroyed: the firmware does not return
  const std::uint32_t raw_mode = read_mode();
  fw.mode = raw_mode == rproc::kDoorbellModePoll ? DoorbellMode::kPoll : DoorbellMode::kInterrupt;
  metal::baremetal::BoardHooks hooks{};
  board::init(fw.mode, hooks);
  hooks.log_write = log_line;
  metal::baremetal::set_board_hooks(hooks);
  metal::set_log_level(LogLevel::kInfo);
  AMP_LOG(LogLevel::kInfo, "%s: doorbell %s", version_line(),
          fw.mode == DoorbellMode::kPoll ? "off (poll mode)" : "on");
  if (raw_mode != rproc::kDoorbellModeInterrupt && raw_mode != rproc::kDoorbellModePoll) {
    AMP_LOG(LogLevel::kWarning, "doorbell mode %u is unknown: interrupt mode",
            static_cast<unsigned>(raw_mode));
  }
  for (;;) {
    virtio::RscVdev transport = wait_for_driver(fw.mode);
    serve(fw, transport);
  }
}

[[noreturn]] void firmware_fault(std::string_view line) noexcept {
  trace::write_fault_line(line);
  board::console_write(line);
  board::console_write("\n");
  board::exit(1);
}

}  // namespace amp::firmware
