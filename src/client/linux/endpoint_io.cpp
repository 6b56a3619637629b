// SPDX-License-Identifier: BSD-3-Clause
#include "amp/client/linux/endpoint_io.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

namespace amp::client {

metal::SysResult<void> write_message(const EndpointFd& ep, std::span<const std::byte> message) {
  if (message.size() > ep.mtu) {
    return Unexpected<metal::SysError>(metal::SysError(Status::kTooLarge,
                                                       "a " + std::to_string(message.size()) +
                                                           "-byte message; the endpoint's MTU is " +
                                                           std::to_string(ep.mtu),
                                                       EMSGSIZE));
  }
  ssize_t n;
  do {
    n = ::send(ep.fd.get(), message.data(), message.size(), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EPIPE || errno == ECONNRESET) {
      return Unexpected<metal::SysError>(metal::SysError(Status::kClosed, "the endpoint has ended", errno));
    }
    return metal::sys_fail("send on endpoint " + std::to_string(ep.local));
  }
  return {};
}

metal::SysResult<std::size_t> read_message(const EndpointFd& ep, std::span<std::byte> out,
                                           std::chrono::milliseconds timeout) {
  pollfd p{ep.fd.get(), POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, timeout.count() < 0 ? -1 : static_cast<int>(timeout.count()));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return metal::sys_fail("poll endpoint " + std::to_string(ep.local));
  if (rc == 0) {
    return metal::sys_fail(Status::kTimeout, "no message on endpoint " + std::to_string(ep.local) +
                                                 " within " + std::to_string(timeout.count()) + " ms");
  }
  ssize_t n;
  do {
    n = ::recv(ep.fd.get(), out.data(), out.size(), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == ECONNRESET) {
      return Unexpected<metal::SysError>(metal::SysError(Status::kClosed, "the endpoint has ended", errno));
    }
    return metal::sys_fail("recv on endpoint " + std::to_string(ep.local));
  }
  // An empty message and the end both read 0 bytes; the end also hangs up.
  if (n == 0 && (p.revents & POLLHUP) != 0) {
    return Unexpected<metal::SysError>(metal::SysError(Status::kClosed, "the endpoint has ended", EPIPE));
  }
  return static_cast<std::size_t>(n);
}

}  // namespace amp::client
