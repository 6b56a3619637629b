// SPDX-License-Identifier: BSD-3-Clause
// Reading and writing an endpoint that ampd opened (an EndpointFd), one message per call, with rpmsg_char's
// errors: a message larger than the endpoint's MTU is refused here (EMSGSIZE, Status::kTooLarge) before it
// reaches the socket; the endpoint's end (its remote gone, or ampd) is Status::kClosed (EPIPE).
//
// Thread-safety: as for the descriptor: one reader and one writer at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <span>

#include "amp/client/linux/connection.hpp"
#include "amp/metal/linux/sys_error.hpp"

namespace amp::client {

/// Sends one message. kTooLarge (errno EMSGSIZE) beyond ep.mtu, kWouldBlock for a non-blocking descriptor
/// whose socket is full, kClosed (EPIPE) once the endpoint ended.
metal::SysResult<void> write_message(const EndpointFd& ep, std::span<const std::byte> message);

/// Receives one message into `out` (at least ep.mtu bytes, so that none is cut), waiting up to `timeout`
/// (-1 ms: as long as it takes): its size. kTimeout, or kClosed once the endpoint ended.
metal::SysResult<std::size_t> read_message(const EndpointFd& ep, std::span<std::byte> out,
                                           std::chrono::milliseconds timeout);

}  // namespace amp::client
