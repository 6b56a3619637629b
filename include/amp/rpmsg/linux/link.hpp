// SPDX-License-Identifier: BSD-3-Clause
// A Link joins two Linux processes with RPMsg: the shared memory (a memfd handed over a UNIX socket, or a
// named POSIX shm object), a notification path (an eventfd pair, the UNIX socket itself, or polling of the
// rings) and a thread that processes the peer's notifications. Either process may be the virtio driver
// (host) or the device (remote). No root, no kernel module.
//
// Set-up, amp's own protocol: one side *creates* the link (lays out the resource table, rings and buffer
// pool, then sends a hello with the memfd and eventfds over a connected UNIX socket); the other *joins* it
// (receives the hello, checks it, maps the memory) and answers: joined, or refused and why (both sides asked
// for one role, a layout that does not fit...). Both fail at once, with the reason, when the join fails. The
// OpenAMP preset (openamp_linux()) instead reproduces OpenAMP's two-process PC layout and protocol byte for
// byte.
//
// A peer is untrusted. The hello has one deadline for all of it and a fixed number of descriptors; every
// value in it is checked. A peer that shrinks the shared memory (possible for a POSIX shm object) cannot
// make us fault: the memory turns to zeros and the link ends (see metal/linux/fault_guard.hpp). A peer that
// makes a notification eventfd block (it shares its O_NONBLOCK flag) cannot block us: the write or read
// fails after a short bound (metal/linux/bounded_io.hpp) and the link ends. Either way peer_gone() becomes
// true, endpoints are unbound, sends fail with kClosed, and failure() says what happened.
//
// Thread-safety: the Link's methods may be called from any thread; device() follows rpmsg::Device's rules.
// Receive callbacks run on the link's own thread. A thread that kicks the peer through an eventfd (any
// sender, in the eventfd and adaptive modes) is registered with amp's bounded-I/O watchdog and gets
// SIGRTMAX-2 unblocked (metal/linux/bounded_io.hpp): leave that signal to amp.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "amp/metal/linux/event_fd.hpp"
#include "amp/metal/linux/event_loop.hpp"
#include "amp/metal/linux/shared_memory.hpp"
#include "amp/metal/linux/sys_error.hpp"
#include "amp/metal/linux/unix_socket.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/rpmsg/linux/process_on_loop.hpp"
#include "amp/rpmsg/linux/runtime_storage.hpp"
#include "amp/virtio/rsc_vdev.hpp"

namespace amp::rpmsg {

enum class NotifyMode : std::uint8_t {
  kEventFd,  ///< An eventfd each way (blocking; 0% CPU when idle).
  kSocket,   ///< One byte on the UNIX stream socket per kick (OpenAMP's way; blocking).
  kPoll,  ///< No notifications: each side's thread polls the rings (lowest latency; a core each; no syscall).
  kAdaptive,  ///< Polls for LinkConfig::adaptive_spin after the last message, then sleeps on an eventfd; the
              ///< peer kicks only a sleeping side (no syscall while traffic flows; 0% CPU when idle).
};

const char* to_string(NotifyMode m) noexcept;
const char* to_string(Role r) noexcept;

struct LinkConfig {
  Role role = Role::kDriver;
  NotifyMode notify = NotifyMode::kEventFd;
  std::uint32_t ring_size = 256;                   ///< Entries per vring (the kernel's default count).
  std::uint32_t buffer_size = kDefaultBufferSize;  ///< Bytes per buffer, header included.
  bool event_idx = true;                           ///< Offer/accept VIRTIO_RING_F_EVENT_IDX.
  std::chrono::milliseconds timeout{10000};        ///< For the hello and the virtio handshake.
  /// Create with a named POSIX shm object ("name" or "/name") instead of a memfd (the name is sent in the
  /// hello; the joining side opens it).
  std::string posix_shm_name{};
  /// Process the peer's notifications on a thread of the link's own (the default). When false, the caller
  /// drives the link: call poll_events() (or wait for event_fd() to be readable in its own epoll/asio/Qt
  /// loop, then call poll_events(0)); in poll mode, call device().process() in a loop.
  bool own_thread = true;
  /// With own_thread false: the caller promises to use this link (device, endpoints, poll_events) from one
  /// thread only, and the rpmsg device takes no locks (DeviceConfig::single_threaded).
  bool single_threaded = false;
  /// kAdaptive: how long to keep polling after the last message before sleeping.
  std::chrono::microseconds adaptive_spin{50};
};

/// Where the creator puts things in the shared memory (offsets from its start).
struct LinkLayout {
  std::size_t table = 0;       ///< resource table (its vdev number `vdev` is rpmsg's)
  std::size_t table_size = 0;  ///< bytes from `table` the table may occupy
  std::uint32_t vdev = 0;      ///< which vdev entry of the table is rpmsg's (virtio::find_vdev's index)
  std::size_t vring0 = 0;      ///< driver RX / device TX
  std::size_t vring1 = 0;      ///< driver TX / device RX
  std::uint32_t ring_align = 0x1000;
  std::size_t pool = 0;  ///< rpmsg buffers (RX half, then TX half)
  std::size_t pool_size = 0;
  std::size_t size = 0;  ///< whole shared memory
  /// The device address of the shared memory's byte 0 (what the table's vring addresses and the buffer
  /// addresses in the rings refer to).
  metal::DeviceAddress device_address = 0;
  static metal::SysResult<LinkLayout> compute(std::uint32_t ring_size, std::uint32_t buffer_size);
  /// OpenAMP's: table 0, vrings 0x4000 and 0x8000 (256 entries, align 0x1000), pool 0x10000 + 0x40000,
  /// shm 0x80000.
  static LinkLayout openamp();
};

/// "Wait for the peer as long as it takes" (Link::accept, OpenAmpLinuxConfig::peer_wait).
inline constexpr std::chrono::milliseconds kWaitForever{-1};

/// OpenAMP's two-process PC setup (Link::openamp_linux).
struct OpenAmpLinuxConfig {
  /// OpenAMP's process index: 0 is the socket server and writes the resource table; 1 is the client.
  unsigned index = 0;
  /// Independent of the index (OpenAMP's echo demo: the remote, the device role, is index 0).
  Role role = Role::kDevice;
  /// For the virtio handshake and the resource table to appear, once the other process is there.
  std::chrono::milliseconds timeout{10000};
  /// How long to wait for the other process to arrive (accept or connect); kWaitForever: as long as it
  /// takes, as OpenAMP's own programs do.
  std::chrono::milliseconds peer_wait{10000};
  std::string socket_path = "/tmp/openamp.event.0";
  std::string shm_name = "openamp.shm";
};

class Link {
 public:
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  /// Creates the shared memory and the notifiers, sends them over `socket`, and starts rpmsg in
  /// config.role. Returns once the virtio handshake is done.
  static metal::SysResult<std::unique_ptr<Link>> create(metal::UnixSocket socket, const LinkConfig& config);
  /// Like create(), over shared memory the caller prepared: `memory` (a memfd, or a POSIX shm object named
  /// in config.posix_shm_name) already holds, at layout.table, a resource table whose rpmsg vdev (number
  /// layout.vdev) has its vrings placed (e.g. a firmware's own table, see rproc/linux/process.hpp), and
  /// layout.pool is free for the rpmsg buffers. layout.vring0/1 and ring_align are not used: the table says
  /// where the vrings are. config.ring_size is ignored.
  static metal::SysResult<std::unique_ptr<Link>> create_in(metal::UnixSocket socket, const LinkConfig& config,
                                                           metal::SharedMemory memory,
                                                           const LinkLayout& layout);
  /// Joins a link the peer created on the other end of `socket`. config.role must differ from the peer's;
  /// the notify mode and sizes come from the peer. The peer learns whether we joined, and if not why.
  static metal::SysResult<std::unique_ptr<Link>> join(metal::UnixSocket socket, const LinkConfig& config);

  /// A server: waits on `listener` up to `peer_wait` (kWaitForever: no limit) for a peer and creates the
  /// link with it. A client that connects and leaves, never answers the hello (config.timeout) or answers
  /// garbage is logged and the wait goes on, so a probe or a stray client cannot end a server. A peer that
  /// refuses the link (a role clash...) ends the wait with its reason. When `interrupt_fd` (if >= 0)
  /// becomes readable, the wait ends with kClosed ("interrupted"), e.g. an eventfd set on Ctrl-C; a
  /// handshake under way is finished first (it is bounded by config.timeout).
  static metal::SysResult<std::unique_ptr<Link>> accept(metal::UnixListener& listener,
                                                        const LinkConfig& config,
                                                        std::chrono::milliseconds peer_wait,
                                                        int interrupt_fd = -1);

  /// OpenAMP's two-process PC setup: POSIX shm `shm_name` (0x80000 bytes), the UNIX stream socket
  /// `socket_path`, one byte per notification. Two amp processes that would take the same index on the same
  /// shm object, or the same socket, are refused at once ("in use by another process"), before anything is
  /// touched: each index holds an advisory lock (an OFD lock on one byte of the shm object) while it runs.
  static metal::SysResult<std::unique_ptr<Link>> openamp_linux(const OpenAmpLinuxConfig& config);
  static metal::SysResult<std::unique_ptr<Link>> openamp_linux(
      unsigned index, Role role, std::chrono::milliseconds timeout = std::chrono::seconds(10),
      const std::string& socket_path = "/tmp/openamp.event.0", const std::string& shm_name = "openamp.shm");

  Device& device() noexcept { return device_; }
  const metal::SharedMemory& memory() const noexcept { return shm_; }
  NotifyMode notify_mode() const noexcept { return notify_; }
  Role role() const noexcept { return device_.role(); }

  /// Caller-driven links (own_thread = false): waits up to `timeout` for notifications and processes them.
  /// Returns how many were handled.
  metal::SysResult<int> poll_events(std::chrono::milliseconds timeout);
  /// Caller-driven links: an fd that is readable when poll_events() has work (-1 in poll mode).
  int event_fd() const noexcept { return loop_ ? loop_->fd() : -1; }

  /// Stops processing and rpmsg (endpoints get their unbind callback). Idempotent; the destructor calls it.
  void close();
  /// True once the peer hung up (its socket closed), or the link failed (see failure()).
  bool peer_gone() const noexcept { return peer_gone_.load(std::memory_order_acquire); }
  /// Why the link stopped working on its own: the peer broke the ring protocol, shrank the shared memory
  /// or interfered with a notification descriptor. Empty while it works, after a plain hang-up, and after
  /// close().
  std::string failure() const;
  /// Sleeps until the peer hangs up (true) or `timeout` passes (false). No polling: 0% CPU while waiting.
  bool wait_peer_gone(std::chrono::milliseconds timeout);

 private:
  Link() : socket_(metal::UniqueFd()) {}
  /// Finds the rpmsg vdev in the table and checks its vrings (before a joiner answers).
  metal::SysResult<void> prepare(const LinkLayout& layout);
  metal::SysResult<void> start(const LinkConfig& config, const LinkLayout& layout);
  /// device_.process(), and a ring fault ends the link.
  Status process_now(bool rearm = true);
  metal::SysResult<void> start_processing(bool own_thread, std::chrono::microseconds spin);
  void on_socket_readable();
  /// Records why the link failed (the first reason wins) and has the link's thread take it down.
  void fail(std::string why) noexcept;
  /// The link's thread: a failure was reported, or the shared memory was lost.
  void on_alarm();
  /// Checks in polling loops: false when the link must end.
  bool healthy();
  void poll_loop();
  void adaptive_loop(std::chrono::microseconds spin);
  bool check_hangup();
  void mark_peer_gone();

  metal::SharedMemory shm_;
  metal::UnixSocket socket_;
  std::optional<metal::EventFd> kick_out_;  // eventfd we signal
  std::optional<metal::EventFd> kick_in_;   // eventfd the peer signals
  NotifyMode notify_ = NotifyMode::kEventFd;
  std::unique_ptr<metal::EventLoop> loop_;
  virtio::RscVdevTransport transport_;
  /// Kicks the peer the way notify_ says.
  class Kicker final : public Notifier {
   public:
    Status notify(std::uint32_t notify_id) noexcept override;
    NotifyMode mode = NotifyMode::kPoll;
    metal::EventFd* eventfd = nullptr;
    int socket_fd = -1;
    Link* link = nullptr;
  };
  Kicker kicker_;
  ProcessOnLoop rescheduler_;  // brings process() back when it stopped at its budget
  RuntimeStorage storage_;     // before device_: outlives it
  Device device_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> peer_gone_{false};
  std::mutex gone_mutex_;
  std::condition_variable gone_cv_;
  std::atomic<bool> closed_{false};
  std::optional<metal::EventFd> alarm_;  // ours alone: failure reports and lost memory wake the thread
  std::atomic<bool> failed_{false};
  mutable std::mutex failure_mutex_;
  std::string failure_;
};

}  // namespace amp::rpmsg
