// SPDX-License-Identifier: BSD-3-Clause
// The qemu driver: the remote processor is a bare-metal firmware run by QEMU, here on this machine. The host
// loads the firmware's ELF into guest RAM (a file both map), starts QEMU's CPU, and runs the virtio driver
// role of the firmware's rpmsg vdev over that RAM, with notifications through a doorbell (a serial line of
// the board, routed to a socket; see qemu_doorbell.hpp). QEMU ending when nobody asked it to is a crash,
// and so is a guest fault (the firmware ends QEMU through semihosting with a non-zero status).
//
//   QemuRemote remote(QemuConfig{});                  // board virt-a15: qemu-system-arm -M virt -cpu
//   cortex-a15 remote.on_link_up([](rpmsg::Device& d) { d.set_name_service_handler(...); });
//   remote.start(firmware_bytes);                       // load (a new QEMU, paused) + start (cont, rpmsg)
//
// What the firmware and the driver agree on (the board profile, the resource table, the doorbell) is
// written down in firmware/baremetal/README.md, QemuBoard and qemu_firmware.hpp: guest RAM
// 0x40000000..0x43FFFFFF (the first MiB is QEMU's device tree), the image above it; a resource table with
// an rpmsg vdev, the carveout "vdev0buffer" (the host's pool for the vrings left at ANY and the rpmsg
// buffers), a trace buffer and the vendor entry "amp doorbell" (type 128, body {u32 mode; u32 state; u32
// ping; u32 pong}: mode 0 interrupt, 1 poll), whose mode the host writes before the CPU starts, whose state
// the firmware keeps (serving, or idle once it let go of the vrings), and whose ping and pong are the
// watchdog's (QemuConfig::watchdog).
//
// Each load is a new QEMU process (QEMU caches translated code: code written into the RAM of a QEMU that
// ran old code may not be seen), started paused (-S); start() lets the CPU run (QMP "cont"). stop() resets
// the vdev (status 0), then asks QEMU to quit (QMP "quit", bounded), then kills it. detach() resets the vdev
// and kicks the firmware, which waits for the next DRIVER_OK while QEMU keeps running; attach() brings a new
// vdev host up over the same memory. Interrupt mode costs no host CPU when idle (every thread sleeps in
// epoll, but for the watchdog's wake-up 4 times per period); poll mode (QemuConfig::poll) keeps a host thread
// and the guest's CPU spinning over the rings.
//
// Thread-safety: as ProcessDriver's. The operations (load, start, stop, attach, detach) are serialised by a
// mutex of their own; the getters may be called from any thread, callbacks included. The device callbacks
// run during an operation (on its thread, or on the driver's thread when QEMU ended) and must not start
// another operation, nor may an rpmsg receive callback (it runs on the vdev host's thread, which
// stop/detach join). The exit handler runs with no lock held and may go through the Lifecycle.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "amp/metal/linux/event_loop.hpp"
#include "amp/metal/linux/sys_error.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/rpmsg/wire.hpp"
#include "amp/rproc/lifecycle.hpp"
#include "amp/rproc/linux/qemu_doorbell.hpp"
#include "amp/rproc/linux/qemu_firmware.hpp"
#include "amp/rproc/linux/vdev_host.hpp"
#include "amp/rproc/resources.hpp"

namespace amp::rproc {

class QemuProcess;

struct QemuConfig {
  QemuBoard board = QemuBoard::virt_a15();
  /// The QEMU program ("" = the board's, from PATH): a path or a name looked up in PATH.
  std::string binary;
  /// More arguments for QEMU, after amp's own.
  std::vector<std::string> extra_args;
  /// Poll mode: the firmware is told to poll (vendor mode 1) and the host polls its rings too, with a
  /// thread of its own; no doorbell bytes either way. Costs a host core and the guest's.
  bool poll = false;
  std::uint32_t buffer_size = rpmsg::kDefaultBufferSize;
  bool event_idx = true;
  /// How long bringing rpmsg up may take (the virtio handshake's bound).
  std::chrono::milliseconds timeout{10000};
  /// QEMU's start-up (spawn until QMP answers) and each QMP command.
  std::chrono::milliseconds qemu_timeout{5000};
  /// How long stop() waits for QEMU to quit before it kills it.
  std::chrono::milliseconds stop_timeout{2000};
  /// The watchdog, for a firmware whose doorbell entry has its words (baremetal_table.hpp): from start() on
  /// (and while detached), the host writes a new ping and rings the doorbell every watchdog / 4, and a
  /// firmware that has not answered for `watchdog` is hung: a crash (QEMU is killed; the exit handler hears
  /// "the firmware stopped answering its watchdog ..."). 0: off. The guest is emulated: a busy host slows
  /// its answers, so leave room. Idle costs a wake-up of each side per period, not a spin.
  std::chrono::milliseconds watchdog{2000};
  /// "" (the default): the guest's RAM is an anonymous memfd, never named. Else a directory where the RAM is
  /// a file (a unique name, unlinked once QEMU has it open).
  std::string ram_dir;
  /// Where QEMU's private runtime directory (sockets, console) is made: "" for $TMPDIR or /tmp.
  std::string runtime_dir;
};

/// The Driver. Used through a Lifecycle (QemuRemote wires the two together).
class QemuDriver final : public Driver {
 public:
  using DeviceFn = std::function<void(rpmsg::Device&)>;
  /// Called on the driver's thread when QEMU ended while loaded, running or detached, with how it ended
  /// ("QEMU exited with status 1 (...)", "QEMU was killed by signal 9 (Killed)"). The vdev is down already.
  using ExitFn = std::function<void(const std::string& how)>;

  explicit QemuDriver(QemuConfig config);
  /// Stops a QEMU still running.
  ~QemuDriver();
  QemuDriver(const QemuDriver&) = delete;
  QemuDriver& operator=(const QemuDriver&) = delete;

  /// Called once rpmsg is up after each start and attach (create endpoints, set the name-service handler).
  void on_link_up(DeviceFn fn);
  /// Called when rpmsg went down (stop, detach, QEMU's end), before the device is destroyed: destroy the
  /// endpoints made on it here.
  void on_link_down(DeviceFn fn);
  void on_exit(ExitFn fn);

  /// Checks the ELF for the board (class, machine, every segment inside guest RAM and out of QEMU's area, a
  /// resource table in a loaded segment with an rpmsg vdev, the vdev0buffer carveout and, for poll mode,
  /// the amp doorbell entry), then starts a new QEMU, paused, loads the image into its RAM and writes the
  /// doorbell mode. A failure leaves nothing behind (no QEMU, no file); error() says why.
  [[nodiscard]] Status load(std::span<const std::byte> firmware) noexcept override;
  /// Lets the CPU run (QMP "cont") and brings rpmsg up: places the vrings and buffers in vdev0buffer, sets
  /// DRIVER_OK and kicks. Like Linux's virtio driver it does not wait for the firmware: one that fails to
  /// boot shows no services (or, when it faults, a crash).
  [[nodiscard]] Status start() noexcept override;
  /// Takes rpmsg down, then ends QEMU (QMP quit, then SIGKILL after stop_timeout). kOk when none runs.
  [[nodiscard]] Status stop() noexcept override;
  /// Takes rpmsg down (a virtio reset, then a kick so that the firmware sees it) and leaves QEMU running.
  [[nodiscard]] Status detach() noexcept override;
  /// Brings rpmsg up again with a firmware detached from: waits (up to 2 s) for the firmware to have let go
  /// of the old vrings (its doorbell state idle), puts the table back as the image had it (the vrings at ANY
  /// again) and starts a new vdev host over the same memory. kNotFound without such a QEMU.
  [[nodiscard]] Status attach() noexcept override;

  /// The current rpmsg device, or null. Valid until on_link_down has returned.
  rpmsg::Device* device() const;
  /// QEMU's pid, or -1 when none runs.
  pid_t pid() const;
  /// The last failure, one line.
  std::string error() const;
  /// How the last QEMU ended ("exited with status 0" ...), stopped or not; "" before any ended.
  std::string last_end() const;
  /// What the firmware wrote into its trace buffer ("amp-trace", else its first one), from the current
  /// QEMU's RAM or, after it ended, the last one's. "" when there is none. The lines of an image that logs by
  /// dictionary come rendered (LogDictionary), as are the console's.
  std::string trace() const;
  /// The guest's console (its first UART), the last 16 KiB.
  std::string console() const;
  /// What QEMU itself wrote to stdout/stderr, the last 4 KiB.
  std::string qemu_output() const;
  /// Where the last start or attach put the vrings and buffers.
  std::optional<RpmsgPlan> plan() const;
  /// Guest RAM, at guest physical addresses: the current QEMU's, or after it ended the last one's; empty
  /// before the first load. Valid until the next load() or the driver's end.
  metal::IoRegion memory() const;
  /// QEMU's run state through QMP query-status ("prelaunch" after load, "running" after start). An
  /// operation: waits for one in progress.
  metal::SysResult<std::string> machine_status();

  /// Ends QEMU and the driver's thread; no exit is reported afterwards. The destructor calls it.
  void shutdown();

 private:
  struct Image;
  struct Watch;
  Status fail(Status s, std::string message);
  void set_error(std::string message);
  // With op_mutex_ held:
  Status check_image(std::span<const std::byte> firmware, Image& out);
  Status open_vdev();
  void wait_until_idle();
  void take_down_vdev();
  void set_doorbell_drain(bool on);
  void stop_op();
  void on_qemu_exit(std::uint64_t generation);
  std::string describe_end();
  void start_watchdog();
  void stop_watchdog();
  void on_watchdog_tick();

  QemuConfig config_;
  std::mutex op_mutex_;       // serialises the operations and an exit's teardown
  mutable std::mutex mutex_;  // guards what the getters read; never held while rpmsg goes down
  std::unique_ptr<Image> image_;
  std::unique_ptr<QemuProcess> qemu_;
  std::uint64_t generation_ = 0;
  bool started_ = false;
  std::unique_ptr<VdevHost> vdev_;
  std::optional<RpmsgPlan> plan_;
  DoorbellKick kick_;
  std::optional<metal::SourceId> drain_;  // the doorbell, while no vdev host reads it
  struct Watchdog {
    metal::SourceId timer{};
    std::uint32_t ping = 0;  // the last one written
    std::chrono::steady_clock::time_point answered;
  };
  std::optional<Watchdog> watchdog_;
  std::string hung_;  // set when the watchdog killed QEMU: how its end is told
  std::map<std::uint64_t, std::unique_ptr<Watch>> watches_;
  std::string error_;
  std::string last_how_;
  DeviceFn link_up_;
  DeviceFn link_down_;
  ExitFn exit_;
  bool shutting_down_ = false;
  std::unique_ptr<metal::EventLoop> loop_;  // QEMU's end, the watchdog, the doorbell's drain
};

/// A Lifecycle over a QemuDriver: QEMU's end is a crash, and with recovery on the firmware is loaded into a
/// new QEMU and started again (rpmsg comes back up, on_link_up is called for the new device).
///
/// Thread-safety: as ProcessRemote's.
class QemuRemote {
 public:
  explicit QemuRemote(QemuConfig config);
  ~QemuRemote();

  void on_link_up(QemuDriver::DeviceFn fn) { driver_.on_link_up(std::move(fn)); }
  void on_link_down(QemuDriver::DeviceFn fn) { driver_.on_link_down(std::move(fn)); }
  void on_transition(std::function<void(const Transition&)> fn);
  /// Called (on the driver's thread) when QEMU ended unexpectedly and the remote stays down: recovery is
  /// off, its attempts are used up, or it failed. Set before start().
  void on_down(std::function<void(const std::string& how)> fn) { down_ = std::move(fn); }
  void set_recovery(bool enabled, std::uint32_t max_attempts = 3) {
    lifecycle_.set_recovery(enabled, max_attempts);
  }

  /// Keeps `firmware`, loads and starts it.
  metal::SysResult<void> start(std::vector<std::byte> firmware);
  /// Loads `firmware` (a new QEMU, paused) without starting it.
  metal::SysResult<void> load(std::vector<std::byte> firmware);
  /// Starts what load() loaded.
  metal::SysResult<void> start_loaded() { return result(lifecycle_.start()); }
  /// Stops a running, attached or detached remote; kOk when there is nothing to stop. (A remote that is only
  /// loaded keeps its paused QEMU until the next load or the QemuRemote's end.)
  metal::SysResult<void> stop();
  metal::SysResult<void> detach() { return result(lifecycle_.detach()); }
  metal::SysResult<void> attach() { return result(lifecycle_.attach()); }

  State state() const;
  /// Sleeps until the state is `s` (true) or `timeout` passes (false).
  bool wait_for(State s, std::chrono::milliseconds timeout);
  /// How QEMU last ended unexpectedly ("" if it never did).
  std::string last_exit() const;
  Lifecycle& lifecycle() { return lifecycle_; }
  QemuDriver& driver() { return driver_; }

 private:
  metal::SysResult<void> result(Status s) const;

  QemuDriver driver_;
  Lifecycle lifecycle_{driver_};
  std::unique_ptr<std::vector<std::byte>> firmware_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  State state_ = State::kOffline;
  std::function<void(const Transition&)> transition_;
  std::function<void(const std::string&)> down_;
  std::string last_exit_;
};

}  // namespace amp::rproc
