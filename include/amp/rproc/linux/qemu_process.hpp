// SPDX-License-Identifier: BSD-3-Clause
// One QEMU process that emulates a remote processor, with everything that lives as long as it: guest RAM
// that this process maps too, the doorbell socket, the QMP connection, its console, its output.
//
// launch() does, in order: finds the QEMU program; creates a private runtime directory (0700) for the
// sockets; creates the guest's RAM (an anonymous memfd that QEMU opens as /proc/<pid>/fd/N, or with ram_dir
// a file there) and maps it MAP_SHARED; listens on the doorbell and console sockets (the host listens and
// QEMU connects, so no byte is lost); starts QEMU paused (-S) with its stdout and stderr into an anonymous
// file; waits for it to connect both; connects to QMP and checks that the machine waits in "prelaunch". Then
// the runtime directory (and a RAM file) are removed: from there on nothing is left behind even if this
// process is killed (before, a kill can leave the directory's socket files). The console is read by a
// thread of this object into a bounded tail. QEMU runs with semihosting for the guest's exit only
// (target=gdb: the guest cannot reach this machine's files or shell) and in QEMU's seccomp sandbox. Every
// wait is bounded by QemuLaunch::timeout and ends early when QEMU ends: a QEMU that fails to start is an
// error with what it wrote to stderr, and nothing is left behind (the process killed and reaped, the files
// removed).
//
// QEMU is started from a thread of amp's own that lives as long as the process, with PR_SET_PDEATHSIG: when
// this process ends, however it ends, the kernel kills QEMU too. QEMU gets its own process group (a
// terminal's Ctrl-C is the host's to handle), stdin from /dev/null, default signal dispositions, and no
// descriptor of this process except its stdout/stderr.
//
// Thread-safety: launch, stop, reap, qmp() and the destructor belong to the owner, one thread at a time. Any
// thread may call pid(), pidfd(), ram(), doorbell(), argv(), ended(), output() and console() while the
// object lives, also while the owner stops or reaps it.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "amp/metal/io_region.hpp"
#include "amp/metal/linux/shared_memory.hpp"
#include "amp/metal/linux/sys_error.hpp"
#include "amp/metal/linux/unique_fd.hpp"
#include "amp/metal/linux/unix_socket.hpp"
#include "amp/rproc/linux/qemu_qmp.hpp"

namespace amp::rproc {

struct QemuLaunch {
  /// The QEMU program: a path (with a '/'), or a name looked up in PATH.
  std::string binary = "qemu-system-arm";
  /// The Debian package that has it, for the message when it is missing.
  std::string package = "qemu-system-arm";
  /// -M and -cpu.
  std::string machine = "virt,secure=on";
  std::string cpu = "cortex-a15";
  /// Guest RAM: where it starts in the guest's physical address space, and its size (a multiple of 1 MiB).
  metal::DeviceAddress ram_base = 0x4000'0000;
  std::size_t ram_size = std::size_t{64} << 20;
  /// Where the CPU starts (-device loader,addr=ENTRY,cpu-num=0); none: the board's reset vector.
  std::optional<metal::DeviceAddress> entry;
  /// More arguments for QEMU, after amp's own.
  std::vector<std::string> extra_args;
  /// "": the RAM is an anonymous memfd (QEMU opens it as /proc/<pid>/fd/N). Else where the RAM file is made.
  std::string ram_dir;
  /// Where the private runtime directory is made: "" for $TMPDIR, or /tmp.
  std::string runtime_dir;
  /// Start-up, from the spawn until QMP answers; also the bound of each QMP command.
  std::chrono::milliseconds timeout{5000};
};

/// Where `binary` is: itself when it holds a '/', else the first executable file of that name in PATH.
/// kNotFound names the Debian package to install.
metal::SysResult<std::string> find_qemu(const std::string& binary, const std::string& package);

/// How a wait status reads: "exited with status 1", "killed by signal 9 (Killed)".
std::string describe_wait_status(int status);

class QemuProcess {
 public:
  static metal::SysResult<std::unique_ptr<QemuProcess>> launch(const QemuLaunch& launch);
  /// Kills QEMU (SIGKILL) when it still runs, reaps it, removes its files.
  ~QemuProcess();
  QemuProcess(const QemuProcess&) = delete;
  QemuProcess& operator=(const QemuProcess&) = delete;

  pid_t pid() const noexcept { return pid_; }
  /// Readable once QEMU has ended (a pidfd; owned here).
  int pidfd() const noexcept { return pidfd_.get(); }
  /// Guest RAM, at guest physical addresses. Stays mapped after QEMU ended, until this object goes.
  metal::IoRegion ram() const noexcept { return ram_.region(); }
  /// The doorbell: a connected, non-blocking stream socket.
  int doorbell() const noexcept { return doorbell_.fd(); }
  QmpClient& qmp() noexcept { return *qmp_; }
  /// The command line QEMU was started with.
  const std::vector<std::string>& argv() const noexcept { return argv_; }
  std::string command_line() const;

  /// Ends QEMU: QMP "quit", up to `timeout` for it to exit, then SIGKILL; reaps it and removes its files.
  /// Returns how it ended. Idempotent (then returns how it ended the first time).
  std::string stop(std::chrono::milliseconds timeout);
  /// Kills QEMU and its process group (SIGKILL) without waiting: its pidfd turns readable, reap() follows.
  void kill() noexcept;
  /// Reaps QEMU once it has ended by itself (its pidfd is readable; one still running is killed first) and
  /// removes its files. Returns how it ended.
  std::string reap();
  bool ended() const noexcept { return reaped_.load(std::memory_order_acquire); }
  /// How it ended, once ended() (the owner's thread): "exited with status 1".
  const std::string& how() const noexcept { return how_; }
  /// The raw wait status, once ended().
  int wait_status() const noexcept { return wait_status_; }

  /// The last `max` bytes QEMU wrote to its stdout and stderr.
  std::string output(std::size_t max = 4096) const;
  /// The same, of what it wrote once it was ready (paused, answering QMP): not its start-up's warnings.
  std::string output_since_ready(std::size_t max = 4096) const;
  /// The last `max` bytes the guest wrote to its console (the first UART); kept after the file is removed.
  std::string console(std::size_t max = 16384) const;

 private:
  QemuProcess() = default;
  metal::SysResult<void> start(const QemuLaunch& launch);
  /// A start-up failure: `why`, with how QEMU ended and what it said when it did.
  metal::SysError failed(Status status, std::string why);
  void remove_files();

  pid_t pid_ = -1;
  metal::UniqueFd pidfd_;
  metal::UniqueFd output_;                  // an anonymous file: QEMU's stdout and stderr
  std::atomic<std::size_t> ready_mark_{0};  // its size when QEMU was ready
  metal::SharedMemory ram_;
  metal::UnixSocket doorbell_{metal::UniqueFd()};
  std::optional<QmpClient> qmp_;
  std::vector<std::string> argv_;
  /// Reads the console socket into console_tail_ on a thread of its own, until QEMU ends.
  void start_console_reader(metal::UnixSocket socket);

  static constexpr std::size_t kConsoleTail = 16384;

  mutable std::mutex files_;  // guards dir_ (the getters may run on another thread)
  std::string dir_;           // the private runtime directory ("" once removed)
  std::string ram_path_;      // the RAM file while it has a name (with ram_dir only)
  std::string console_path_;
  std::optional<metal::UnixSocket> console_socket_;
  std::thread console_reader_;
  mutable std::mutex console_mutex_;
  std::string console_tail_;  // the console's last bytes (at most 2 * kConsoleTail)
  std::atomic<bool> reaped_{false};
  int wait_status_ = 0;
  std::string how_;
};

}  // namespace amp::rproc
