// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/linux/qemu_doorbell.hpp"

#include <sys/socket.h>

#include <array>
#include <cerrno>

namespace amp::rproc {

Status DoorbellKick::notify(std::uint32_t) noexcept {
  if (fd_ < 0) return Status::kClosed;
  const std::byte ring{1};
  for (;;) {
    const ssize_t n = ::send(fd_, &ring, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == 1) return Status::kOk;
    if (n < 0 && errno == EINTR) continue;
    // Unread bytes fill the socket: the guest has a notification waiting already.
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Status::kOk;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)) return Status::kClosed;
    return Status::kIoError;
  }
}

DoorbellDrain drain_doorbell(int fd, std::size_t max) noexcept {
  DoorbellDrain d;
  std::array<std::byte, 512> bytes;
  while (d.bytes < max) {
    const ssize_t n = ::recv(fd, bytes.data(), bytes.size(), MSG_DONTWAIT);
    if (n > 0) {
      d.bytes += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    d.closed = true;
    break;
  }
  return d;
}

}  // namespace amp::rproc
