// SPDX-License-Identifier: BSD-3-Clause
// The process driver: the remote processor is a Linux program built with amp (a "native" firmware). The
// host side loads its ELF, takes the resource table from its `.resource_table` section, gives the remote a
// shared memory (a memfd) holding a copy of that table with the host's choices written back (vrings placed,
// notify ids), starts the program with a UNIX socket to the host, and runs the virtio driver role of its
// rpmsg vdev over an rpmsg::Link. The program ending when nobody asked it to is a crash.
//
//   host:     ProcessRemote remote(config);  remote.on_link_up(...);  remote.start(firmware_bytes);
//   firmware: AMP_RPROC_RESOURCE_TABLE const auto table = amp::rproc::rpmsg_firmware_table();
//             while (auto link = amp::rproc::join_host()) { serve **link until (*link)->peer_gone(); }
//
// The firmware is executed from a sealed memfd copy of the loaded bytes, so the file it came from may
// change or go away meanwhile; it still shows in ps by its file name (ProcessConfig::name). It gets a control
// socket as a descriptor named by the environment variable AMP_RPROC_LINK_FD, its argv from
// ProcessConfig::args, and stdin, stdout and stderr of the host. Over the control socket the host hands it
// one link session at a time (a socket for rpmsg::Link::join), so that a detached program can be attached to
// again; the control socket closing means the host is gone.
//
// Teardown, like the kernel's: on stop the link goes first (endpoints get their unbind callback, sends fail
// with kClosed), then the program gets SIGTERM, and SIGKILL after ProcessConfig::stop_timeout.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
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
#include "amp/metal/linux/unique_fd.hpp"
#include "amp/rpmsg/linux/link.hpp"
#include "amp/rproc/lifecycle.hpp"
#include "amp/rproc/resources.hpp"

namespace amp::rproc {

/// The environment variable through which a native firmware finds its socket to the host.
inline constexpr const char* kLinkFdVariable = "AMP_RPROC_LINK_FD";

struct ProcessConfig {
  /// The remote's memory (resource table, vrings, rpmsg buffers, carveouts placed by the host).
  std::size_t memory_size = std::size_t{4} << 20;
  /// Its device address: what the remote's table and the rings' buffer addresses refer to.
  metal::DeviceAddress memory_base = 0x1000'0000;
  /// Notification mode, rpmsg buffer size, EVENT_IDX, handshake timeout. The role is always the driver's.
  rpmsg::LinkConfig link{};
  /// argv[1..] of the program (argv[0] is `name`).
  std::vector<std::string> args{};
  /// argv[0] of the program: the firmware's path or file name. Its last component names the process (what
  /// ps and top show, /proc/PID/comm, which the kernel cuts to 15 characters) and the memfd it runs from.
  std::string name = "remote";
  /// How long stop() waits after SIGTERM before it sends SIGKILL.
  std::chrono::milliseconds stop_timeout{2000};
};

/// The Driver. Used through a Lifecycle (ProcessRemote wires the two together).
///
/// Thread-safety: the operations (load, start, stop, attach, detach) are serialised by a mutex of their own;
/// the getters (link(), pid(), error(), last_end(), vdevs()) may be called from any thread, callbacks
/// included, and never wait for a link to close. The link callbacks run during an operation (on its
/// thread, or on the driver's thread for an exit) and must not start another operation; neither may an
/// rpmsg receive callback (it runs on the link's thread, which stop/detach join): hand such work to another
/// thread. The exit handler runs after the teardown, with no lock held, and may go through the Lifecycle,
/// which is what it is for.
class ProcessDriver final : public Driver {
 public:
  using LinkFn = std::function<void(rpmsg::Link&)>;
  /// Called on the driver's thread when the program ended while running, with how it ended ("exited with
  /// status 3", "killed by signal 9 (Killed)"). The link is already down.
  using ExitFn = std::function<void(const std::string& how)>;

  explicit ProcessDriver(ProcessConfig config);
  /// Stops a program still running.
  ~ProcessDriver();
  ProcessDriver(const ProcessDriver&) = delete;
  ProcessDriver& operator=(const ProcessDriver&) = delete;

  /// Called once the link is up after each start (create endpoints, set the name-service handler here).
  void on_link_up(LinkFn fn);
  /// Called when the link went down (the program ended or is being stopped), before the Link is destroyed:
  /// destroy the endpoints created on it here.
  void on_link_down(LinkFn fn);
  void on_exit(ExitFn fn);

  /// Checks the ELF (an executable or PIE for this machine, with a valid `.resource_table` holding an rpmsg
  /// vdev) and keeps a sealed copy to run. kMalformed/kNotSupported/kNotFound with error() saying why.
  [[nodiscard]] Status load(std::span<const std::byte> firmware) noexcept override;
  /// Lays out the remote's memory, starts the program (stdin from /dev/null, a process group of its own) and
  /// brings the link up: hands it the session and runs the virtio driver side, which like Linux's does not
  /// wait for the device; a program that fails to boot shows up as a crash right after. On failure the
  /// program is ended and error() says why.
  [[nodiscard]] Status start() noexcept override;
  /// Takes the link down, then ends the program. kOk when it was not running.
  [[nodiscard]] Status stop() noexcept override;
  /// Takes the link down (a virtio reset) and leaves the program running, waiting in join_host() for the
  /// next host.
  [[nodiscard]] Status detach() noexcept override;
  /// Brings the link up again with a program detached from: reads and checks the resource table in the
  /// remote's memory (the remote may have changed it), then opens a new session. kNotFound when there is no
  /// such program.
  [[nodiscard]] Status attach() noexcept override;

  /// The running program's link, or null. Valid until on_link_down has returned.
  rpmsg::Link* link() const;
  /// The running program's pid, or -1.
  pid_t pid() const;
  /// The last failure, one line.
  std::string error() const;
  /// How the last program ended ("exited with status 0", "killed by signal 9 (Killed)"), stopped or not;
  /// "" before any ended.
  std::string last_end() const;
  /// Where the last start() put the vdevs' vrings.
  std::vector<AssignedVdev> vdevs() const;

  /// Ends the program and the driver's thread; no exit is reported afterwards. The destructor calls it; an
  /// owner whose exit handler uses other members calls it before those go.
  void shutdown();

 private:
  struct Child;
  struct Watch;
  // The *_op functions and those below run with op_mutex_ held.
  Status fail(Status s, std::string message);
  void set_error(std::string message);
  void stop_op();
  void reap();
  void kill_group(int sig);
  void take_down_link();
  Status open_session(metal::SharedMemory memory);
  void on_child_exit(std::uint64_t generation);

  ProcessConfig config_;
  /// Serialises the operations (load, start, stop, attach, detach, an exit's teardown). Held while links
  /// close and link callbacks run.
  std::mutex op_mutex_;
  /// Guards what the getters read (never held while a link closes or a callback runs).
  mutable std::mutex mutex_;
  metal::UniqueFd executable_;    // sealed memfd
  std::vector<std::byte> table_;  // the firmware's resource table
  std::unique_ptr<Child> child_;
  std::map<std::uint64_t, std::unique_ptr<Watch>> watches_;  // by child generation
  std::uint64_t generation_ = 0;
  std::string error_;
  std::string last_how_;  // how the last program ended
  std::vector<AssignedVdev> vdevs_;
  LinkFn link_up_;
  LinkFn link_down_;
  ExitFn exit_;
  bool shutting_down_ = false;
  std::unique_ptr<metal::EventLoop> loop_;  // watches the pidfds
};

/// A Lifecycle over a ProcessDriver: the driver's exit reports are crashes, and with recovery on the
/// firmware is reloaded and started again (rpmsg comes back up, on_link_up is called for the new link).
///
/// Thread-safety: all methods may be called from any thread. Callbacks: see ProcessDriver; the transition
/// callback runs with the Lifecycle's lock held and must not call back into it. Callbacks may run until the
/// destructor has stopped the remote: what they use must outlive the ProcessRemote (or stop it first).
class ProcessRemote {
 public:
  explicit ProcessRemote(ProcessConfig config);
  ~ProcessRemote();

  void on_link_up(ProcessDriver::LinkFn fn) { driver_.on_link_up(std::move(fn)); }
  void on_link_down(ProcessDriver::LinkFn fn) { driver_.on_link_down(std::move(fn)); }
  void on_transition(std::function<void(const Transition&)> fn);
  /// Called (on the driver's thread) when the program ended unexpectedly and stays down: recovery is off,
  /// its attempts are used up, or it failed. `how` says how the program ended. Set before start().
  void on_down(std::function<void(const std::string& how)> fn) { down_ = std::move(fn); }
  void set_recovery(bool enabled, std::uint32_t max_attempts = 3) {
    lifecycle_.set_recovery(enabled, max_attempts);
  }

  /// Keeps `firmware`, loads and starts it.
  metal::SysResult<void> start(std::vector<std::byte> firmware);
  /// Stops a running, attached or detached remote; kOk when there is nothing to stop.
  metal::SysResult<void> stop();
  /// Lets go of the running remote, leaving it running (rpmsg goes down).
  metal::SysResult<void> detach() { return result(lifecycle_.detach()); }
  /// Takes the detached remote over again (rpmsg comes back up).
  metal::SysResult<void> attach() { return result(lifecycle_.attach()); }

  State state() const;
  /// Sleeps until the state is `s` (true) or `timeout` passes (false).
  bool wait_for(State s, std::chrono::milliseconds timeout);
  /// How the program last ended unexpectedly ("" if it never did).
  std::string last_exit() const;
  Lifecycle& lifecycle() { return lifecycle_; }
  ProcessDriver& driver() { return driver_; }

 private:
  metal::SysResult<void> result(Status s) const;

  ProcessDriver driver_;
  Lifecycle lifecycle_{driver_};
  std::unique_ptr<std::vector<std::byte>> firmware_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  State state_ = State::kOffline;
  std::function<void(const Transition&)> transition_;
  std::function<void(const std::string&)> down_;
  std::string last_exit_;
};

/// In a native firmware: waits for the host's next session and joins it (the virtio device role). The host
/// opens one when it starts the program and one at each attach after a detach; serve a link until its
/// peer_gone(), then call join_host() again. kClosed when the host has gone for good (stopped the program, or
/// ended itself): time to exit. A session that fails before rpmsg is up is kIoError (or what Link::join
/// says): wait for the next one. kNotFound / kInvalidArgument: not started as a native firmware. The control
/// socket comes from AMP_RPROC_LINK_FD at the first call (it is this process's for good). `config.role` is
/// ignored; the mode and sizes come from the host. Thread-safe.
metal::SysResult<std::unique_ptr<rpmsg::Link>> join_host(rpmsg::LinkConfig config = {});

}  // namespace amp::rproc
