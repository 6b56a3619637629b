// SPDX-License-Identifier: BSD-3-Clause
// ampd's broker: it brings up and owns the configured remotes, listens on its UNIX socket (SOCK_SEQPACKET,
// the protocol of docs/ampd-protocol.md), and gives each client the endpoints it asks for, within what the
// policy allows, as descriptors of their own (EndpointRelay). An endpoint lives as long as the client's
// descriptor does (a client that closes it, or dies, ends it: ampd destroys it, withdrawing what it
// announced), not as long as the connection it was asked for on; a remote that goes away ends every endpoint
// on it at once (their readers see end of file, their writers EPIPE), and when it comes back (recovery) its
// services are announced again and clients open them anew.
//
// Thread-safety: start() and run() on one thread (the loop's), stop() from any thread or a signal handler's
// helper. Everything else happens on the loop thread, except what the remotes' threads report (link up and
// down, announcements, withdrawals), which is guarded by the broker's mutex and handed to the loop.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "amp/client/protocol.hpp"
#include "amp/metal/linux/event_loop.hpp"
#include "amp/metal/linux/unix_socket.hpp"
#include "amp/rproc/linux/process.hpp"
#include "config.hpp"
#include "endpoint_relay.hpp"
#include "policy.hpp"

namespace amp::ampd {

class Broker {
 public:
  /// Checks the configuration against the system (the firmware files are read here) and makes the loop.
  static metal::SysResult<std::unique_ptr<Broker>> create(Config config);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  /// Starts the remotes and listens. A remote that fails to start is logged and reported as such to
  /// clients (its state); the socket failing to listen is an error.
  metal::SysResult<void> start();
  /// Serves until stop().
  Status run();
  void stop();

  const std::string& socket_path() const { return socket_path_; }
  /// Clients connected now (for tests and the log).
  std::size_t client_count() const;
  /// Endpoints open now, all clients together (for tests and the log).
  std::size_t endpoint_count() const { return endpoint_count_.load(std::memory_order_relaxed); }
  /// The process of remote `index`, while it runs (for tests and the log).
  std::optional<pid_t> remote_pid(std::uint32_t index) const;

 private:
  struct Remote;
  struct Client;
  struct Wait;
  struct Open;

  explicit Broker(Config config, std::unique_ptr<metal::EventLoop> loop);
  void on_accept();
  void on_client_readable(Client& c, std::uint32_t revents);
  void handle(Client& c, const client::protocol::Message& m);
  void handle_list(Client& c, const client::protocol::Message& m);
  void handle_wait(Client& c, const client::protocol::Message& m);
  void handle_open(Client& c, const client::protocol::Message& m, bool create);
  /// Sends `m` (and `fd`, if any) to the client without waiting; false (and the client is dropped) when
  /// its socket is full: a client that does not read its replies is not waited for.
  bool send(Client& c, const client::protocol::Message& m, int fd = -1);
  void reply(Client& c, std::uint32_t id, Status s, std::uint32_t value = 0, std::uint32_t local = 0,
             std::uint32_t remote = 0, int fd = -1);
  void drop_client(Client& c, const std::string& why);
  /// Completes the waits a new announcement satisfies (loop thread).
  void complete_waits();
  void end_remote_endpoints(Remote& r);  // loop thread, or any once the loop stopped
  void forget(Open& open);               // its connection's count

  // Remote threads.
  void on_link_up(Remote& r, rpmsg::Link& link);
  void on_link_down(Remote& r);
  void on_announcement(Remote& r, std::string_view name, std::uint32_t addr);

  Config config_;
  Policy policy_;
  std::string socket_path_;
  std::unique_ptr<metal::EventLoop> loop_;
  std::optional<metal::UnixListener> listener_;
  metal::SourceId listen_src_{};
  std::vector<std::unique_ptr<Remote>> remotes_;
  std::map<Client*, std::unique_ptr<Client>> clients_;
  std::vector<std::unique_ptr<Wait>> waits_;
  std::map<EndpointRelay*, Open> endpoints_;  // every endpoint open, by relay
  mutable std::mutex mutex_;   // guards the remotes' link, services and watchers, and the two below
  bool loop_running_ = false;  // run() is dispatching: endpoints are the loop thread's to end
  bool relays_gone_ = false;   // the destructor ended every client's endpoints
  std::condition_variable gone_cv_;
  std::atomic<std::size_t> client_count_{0};
  std::atomic<std::size_t> endpoint_count_{0};
};

}  // namespace amp::ampd
