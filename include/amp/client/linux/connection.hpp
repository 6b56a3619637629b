// SPDX-License-Identifier: BSD-3-Clause
// A client process's connection to ampd, the broker that owns remotes (docs/ampd-protocol.md): it connects
// to ampd's socket, agrees on a version, and makes requests, each answered within a time limit the caller
// gives. Endpoints come back as descriptors of their own, with rpmsg_char's semantics (one message per
// read and write).
//
// Everything ampd sends is checked: a packet that is not one message of the protocol, a reply to another
// request, a list entry where none belongs, a descriptor that is missing or comes where none should, an
// answer later than the limit: each is an error that says what came, and the connection is not to be used
// again (broken() says so), since what ampd and the client think was asked no longer agree.
//
// Thread-safety: one thread at a time per Connection; separate Connections are independent.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "amp/client/protocol.hpp"
#include "amp/metal/linux/sys_error.hpp"
#include "amp/metal/linux/unique_fd.hpp"
#include "amp/metal/linux/unix_socket.hpp"
#include "amp/rproc/lifecycle.hpp"

namespace amp::client {

/// A service a remote announced.
struct Service {
  std::uint32_t remote = 0;
  std::uint32_t addr = 0;
  std::string name;
};

/// A remote as ampd reports it, with the services announced on it.
struct Remote {
  std::uint32_t index = 0;
  rproc::State state = rproc::State::kOffline;
  std::string name;
  std::vector<Service> services;
};

/// An endpoint ampd opened or created for this client.
struct EndpointFd {
  metal::UniqueFd fd;  ///< one message per read/write (SOCK_SEQPACKET)
  std::uint32_t local = 0;
  std::uint32_t remote_addr = 0;  ///< kAddrAny while unbound (a created endpoint nobody wrote to yet)
  std::uint32_t mtu = 0;          ///< the largest payload one write may carry
};

/// Where ampd listens unless told otherwise: $RUNTIME_DIRECTORY/ampd.sock (systemd's RuntimeDirectory=, the
/// first one), else /run/ampd.sock for root and $XDG_RUNTIME_DIR/ampd.sock for others, else
/// /tmp/ampd-<uid>.sock. A client finds the ampd of its own user there ($AMPD_SOCKET, when set, first).
std::string default_socket_path();

class Connection {
 public:
  /// Connects to ampd at `path` (a SOCK_SEQPACKET UNIX socket; '@' for the abstract namespace) and says
  /// hello; all within `timeout`.
  static metal::SysResult<Connection> connect(const std::string& path, std::chrono::milliseconds timeout);

  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&&) noexcept = default;

  /// The protocol version agreed on.
  std::uint32_t version() const noexcept { return version_; }
  /// Whether an earlier call found ampd's answers out of step (then every call fails with kBroken).
  bool broken() const noexcept { return broken_; }

  /// The remote `remote` (protocol::kAllRemotes: every one) and the services announced on it.
  metal::SysResult<std::vector<Remote>> list(std::uint32_t remote, std::chrono::milliseconds timeout);
  /// The service `name` on `remote` once it is announced (kTimeout when not within `timeout`; ampd is given
  /// the same time, and its answer may take a little longer to arrive).
  metal::SysResult<Service> wait_for(std::uint32_t remote, std::string_view name,
                                     std::chrono::milliseconds timeout);
  /// An endpoint bound to the service `name` on `remote`.
  metal::SysResult<EndpointFd> open(std::uint32_t remote, std::string_view name,
                                    std::chrono::milliseconds timeout);
  /// An endpoint bound to address `dst` on `remote`, at `local` (kAddrAny: ampd picks).
  metal::SysResult<EndpointFd> open_address(std::uint32_t remote, std::uint32_t dst, std::uint32_t local,
                                            std::chrono::milliseconds timeout);
  /// A local endpoint announced to `remote` as `name`, at `local` (kAddrAny: ampd picks).
  metal::SysResult<EndpointFd> create(std::uint32_t remote, std::string_view name, std::uint32_t local,
                                      std::chrono::milliseconds timeout);

 private:
  explicit Connection(metal::UnixSocket socket) : socket_(std::move(socket)) {}

  // What one request brought back: its reply, the entries before it, and the descriptors with the reply.
  struct Answer {
    protocol::Message reply;
    std::vector<protocol::Message> entries;
    std::vector<metal::UniqueFd> fds;
  };
  // Sends `request` (its id set here) and reads until its kReply, all before the deadline. `entries`: the
  // types that may come before the reply; `fds`: how many descriptors the reply must carry on success.
  metal::SysResult<Answer> call(protocol::Message request, std::chrono::milliseconds timeout,
                                std::initializer_list<protocol::Type> entries, std::size_t fds);
  metal::SysResult<EndpointFd> endpoint(protocol::Message request, std::chrono::milliseconds timeout);
  Unexpected<metal::SysError> out_of_step(std::string what);

  metal::UnixSocket socket_;
  std::uint32_t next_id_ = 1;
  std::uint32_t version_ = 0;
  bool broken_ = false;
};

}  // namespace amp::client
