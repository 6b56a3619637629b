// SPDX-License-Identifier: BSD-3-Clause
// VhostUserServer: amp's rpmsg device (rpmsg::Device in the virtio device role, the remote's side) served
// to a virtual machine's kernel over vhost-user. The VM's virtio_rpmsg_bus is the driver: it owns the
// buffers and creates channels from amp's name-service announcements; /dev/rpmsgN and /dev/rpmsg_ctrl0 in
// the guest then talk to amp's endpoints. Tested against User-mode Linux 6.1's virtio_uml
// (tests/kernel/README.md), which connects to the socket given as `virtio_uml.device=SOCKET:7`.
//
//   rpmsg::VhostUserServer::Callbacks cb;
//   cb.on_ready = [&](rpmsg::Device& d) { (void)d.create_endpoint(ep, "rpmsg-raw", kAddrAny, kAddrAny, echo);
//   }; cb.on_gone = [&](rpmsg::Device&) { ep.destroy(); }; auto server =
//   rpmsg::VhostUserServer::listen({.socket_path = "/tmp/rpmsg.sock"}, std::move(cb));
//
// The server listens before it returns (a front end that starts first finds no device), and serves one
// front end at a time (a second one is turned away with a log line), then the next one (a guest that
// reboots, or another VM), with a fresh rpmsg::Device each time. A session begins when the driver is ready:
// vhost-user carries no virtio status, so that is the first kick once both queues are enabled (the kernel
// kicks its receive queue right after virtio_device_ready()); then on_ready(device) runs, where the
// application creates its endpoints (named ones are announced). It ends when the front end disables a
// queue, resets, hangs up or breaks the protocol, or when stop() is called: the device stops (endpoints get
// their unbind callbacks), then on_gone(device) runs, where the application destroys what it created on
// that device; the device is destroyed after it.
//
// A front end is untrusted: its messages are checked by VhostUserBackend, its rings and buffers by the
// rpmsg device (nothing outside the guest memory it shared is touched), its kick descriptors are read
// without ever waiting, its call descriptors written without waiting (a socket) or for at most
// metal::kSharedFdLimit (an eventfd whose flags it changed: bounded_io.hpp), its socket is written for at
// most message_timeout (a front end that does not read its replies), and a guest memory file it shrinks
// under us turns to zeros (fault_guard.hpp). Each violation ends the connection with a line that says why
// (logged, and in Counters::last_error), and the server goes on listening (unless config.reconnect is
// false). A RESET_OWNER ends the session and the server serves what the front end sets up next. A front end
// that kicks without end (or hands over a semaphore eventfd, readable for ever) cannot keep the server's
// thread busy: after 64 kicks in a row after which no queue's available index moved forward, its kicks are
// not looked at for 10 ms, then 20, 40... up to 160 ms while it goes on; a kick that shows work ends that.
//
// Thread-safety: the server runs on a thread of its own; on_ready, on_gone and the device's receive and
// unbind callbacks run on it (for a connection still there at stop(), the unbind callbacks, on_gone and
// on_disconnected run on the thread calling stop(); a process() under way on the server's thread is told to
// give up first, so that its callbacks' sends fail at once). The device may be used from any thread between
// on_ready and on_gone, as rpmsg::Device allows. counters() and wait_sessions() may be called from any
// thread; stop() and the destructor belong to the owner.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "amp/metal/linux/event_loop.hpp"
#include "amp/metal/linux/sys_error.hpp"
#include "amp/metal/linux/unix_socket.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/rpmsg/linux/process_on_loop.hpp"

namespace amp::rpmsg {

struct VhostUserServerConfig {
  std::string socket_path;
  /// Offer VIRTIO_RING_F_EVENT_IDX (the kernel takes it when offered).
  bool event_idx = true;
  /// Offer VIRTIO_F_VERSION_1 (the kernel works with and without it).
  bool version_1 = true;
  /// The largest ring a front end may set up (the kernel's rpmsg uses 256).
  std::uint32_t max_queue_size = 1024;
  /// The size the device expects of the driver's buffers, header included (the kernel's are 512): it
  /// bounds the payload of what amp sends. The driver's buffers themselves say how big they are.
  std::uint32_t buffer_size = kDefaultBufferSize;
  /// How long the header, and then the payload, of a vhost-user message may take once it started arriving;
  /// and how long a reply may wait for room in the socket.
  std::chrono::milliseconds message_timeout{5000};
  /// After a front end leaves, serve the next one (false: the server is done after one connection).
  bool reconnect = true;
};

class VhostUserServer {
 public:
  using SessionFn = std::function<void(Device&)>;
  struct Callbacks {
    SessionFn on_ready;  ///< a driver is ready: create endpoints on the device
    SessionFn on_gone;   ///< the session ended, the device stopped: destroy them
    /// A front end's connection ended (after on_gone, if a session ran): `why` says what went wrong, empty
    /// for a plain hang-up or stop().
    std::function<void(const std::string& why)> on_disconnected;
  };

  struct Counters {
    std::uint64_t connections = 0;       ///< front ends accepted
    std::uint64_t disconnections = 0;    ///< of those, gone (on_disconnected ran)
    std::uint64_t turned_away = 0;       ///< front ends refused while another was served
    std::uint64_t sessions_started = 0;  ///< drivers that became ready (on_ready ran)
    std::uint64_t sessions_ended = 0;    ///< of those, ended (on_gone ran)
    std::uint64_t failures = 0;          ///< connections ended by an error (not a plain hang-up)
    std::uint64_t kick_pauses = 0;  ///< times a front end's kicks were not looked at a while (idle kicks)
    std::string last_error;         ///< why the last of those ended
    bool done = false;              ///< reconnect was false and the connection ended
  };

  /// Listens at config.socket_path (a stale socket file is replaced, a live one is kAlreadyExists) and
  /// starts the server's thread.
  static metal::SysResult<std::unique_ptr<VhostUserServer>> listen(const VhostUserServerConfig& config,
                                                                   Callbacks callbacks);

  ~VhostUserServer();
  VhostUserServer(const VhostUserServer&) = delete;
  VhostUserServer& operator=(const VhostUserServer&) = delete;

  /// Ends the session (if any), stops listening and joins the thread; the socket file is removed.
  /// Idempotent.
  void stop();

  Counters counters() const;
  /// Sleeps until `ended` sessions have ended (or the server is done), or `timeout` passes (false).
  bool wait_sessions_ended(std::uint64_t ended, std::chrono::milliseconds timeout) const;
  /// Sleeps until `gone` connections have ended, or `timeout` passes (false).
  bool wait_disconnections(std::uint64_t gone, std::chrono::milliseconds timeout) const;
  /// Sleeps until `started` sessions have started, or `timeout` passes (false).
  bool wait_sessions_started(std::uint64_t started, std::chrono::milliseconds timeout) const;
  /// The socket's path (config.socket_path; still known after stop() closed the listener).
  const std::string& path() const noexcept { return config_.socket_path; }

 private:
  struct Session;
  VhostUserServer(const VhostUserServerConfig& config, Callbacks callbacks, metal::UnixListener listener,
                  std::unique_ptr<metal::EventLoop> loop);

  void on_listener();
  void on_message();
  void on_kick(std::uint32_t queue);
  bool
  driver_made_buffers_available();  // whether a queue's available index moved forward since the last kick
  void idle_kick();                 // a kick that showed no work: too many in a row pause the kicks a while
  void on_memory_lost();
  /// Brings the rpmsg device up once the driver is ready; false ends the connection.
  bool start_device();
  void process();
  /// The driver is gone or must be dropped: stops the device and runs on_gone.
  void end_session();
  /// Ends the connection; `why` empty for a plain hang-up.
  void end_connection(std::string why);

  VhostUserServerConfig config_;
  Callbacks callbacks_;
  metal::UnixListener listener_;
  std::unique_ptr<metal::EventLoop> loop_;
  std::unique_ptr<Session> session_;  // the connection served now (loop thread only)
  ProcessOnLoop reschedule_;
  std::uint64_t generation_ = 0;  // numbers connections, so that a late post finds its own gone
  std::optional<metal::SourceId> listener_source_;
  std::optional<metal::SourceId> listener_timer_;  // while accepting rests after an error
  bool stopped_ = false;
  std::mutex live_mutex_;   // guards live_ (stop() reaches the device from the owner's thread)
  Device* live_ = nullptr;  // the running session's device

  mutable std::mutex mutex_;  // guards counters_
  mutable std::condition_variable changed_;
  Counters counters_;
};

}  // namespace amp::rpmsg
