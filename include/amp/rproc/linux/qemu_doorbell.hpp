// SPDX-License-Identifier: BSD-3-Clause
// The doorbell between a host and a firmware under QEMU: a serial line of the emulated board (its second
// UART) routed to a UNIX stream socket. One byte, any value, is one notification, each way: the host's byte
// raises the UART's receive interrupt in the guest, the guest's bytes make the socket readable here.
//
// The host never blocks on it: a kick is a non-blocking one-byte send, and a full socket (EAGAIN) means
// bytes the guest has not read yet are there, so a kick is pending already. Draining reads what is there
// without waiting.
//
// Thread-safety: DoorbellKick::notify() may be called from any thread (one send(2)); set_fd() belongs to
// the owner while nobody kicks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "amp/metal/result.hpp"
#include "amp/rpmsg/device.hpp"

namespace amp::rproc {

class DoorbellKick final : public rpmsg::Notifier {
 public:
  explicit DoorbellKick(int fd = -1) noexcept : fd_(fd) {}
  void set_fd(int fd) noexcept { fd_ = fd; }
  /// One byte into the socket, without waiting: kOk when sent or when one is pending already (the socket
  /// is full), kClosed when the other end is gone (QEMU ended), kIoError otherwise.
  [[nodiscard]] Status notify(std::uint32_t notify_id = 0) noexcept override;

 private:
  int fd_;
};

/// What drain_doorbell() found.
struct DoorbellDrain {
  std::size_t bytes = 0;  ///< notifications read (and discarded)
  bool closed = false;    ///< the other end is gone (end of stream, or an error)
};

/// Reads and discards what the socket `fd` holds, up to `max` bytes, without waiting.
DoorbellDrain drain_doorbell(int fd, std::size_t max = 64 * 1024) noexcept;

}  // namespace amp::rproc
