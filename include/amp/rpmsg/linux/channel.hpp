// SPDX-License-Identifier: BSD-3-Clause
// Channel: an rpmsg endpoint behind a pollable file descriptor, with read semantics like Linux's
// rpmsg_char: one message per read, and a clear error once the peer is gone. An application can put fd()
// into its own epoll/asio/Qt loop.
//
// Received messages stay in their shared-memory buffers (held, zero-copy) until read, so a slow reader
// slows the sender down instead of losing messages: the queue is bounded by the peer's buffers, whatever
// the peer does (the rings record which buffers this side holds, and a peer that offers a held buffer again
// breaks the device instead of growing the queue). A read into a buffer smaller than the next message fails
// with kTooLarge and keeps the message, instead of truncating it as rpmsg_char does.
//
// Thread-safety: all methods may be called from any thread; reads from several threads each get whole,
// distinct messages.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string_view>

#include "amp/metal/linux/event_fd.hpp"
#include "amp/metal/linux/sys_error.hpp"
#include "amp/rpmsg/device.hpp"

namespace amp::rpmsg {

class Channel {
 public:
  /// Creates the endpoint (see Device::create_endpoint) with the channel as its receiver.
  static metal::SysResult<std::unique_ptr<Channel>> open(Device& dev, std::string_view name,
                                                         std::uint32_t local, std::uint32_t remote);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  /// Readable when a message is waiting or the peer is gone.
  int fd() const noexcept { return ready_.fd(); }

  /// Copies the next message into `out` and returns its length. kWouldBlock when none is waiting; kTooLarge
  /// (the message stays queued) when `out` is too small; kClosed once the peer is gone and all is read.
  [[nodiscard]] Result<std::size_t> read(std::span<std::byte> out) noexcept;
  /// As read(), waiting up to `timeout` for a message (kTimeout).
  [[nodiscard]] Result<std::size_t> read(std::span<std::byte> out,
                                         std::chrono::milliseconds timeout) noexcept;
  /// Length of the next message without taking it (kWouldBlock / kClosed as read()).
  [[nodiscard]] Result<std::size_t> peek_size() noexcept;

  /// Sends to the bound peer.
  [[nodiscard]] Status write(std::span<const std::byte> data, std::uint64_t timeout_ns = kForever) noexcept {
    return endpoint_.send(data, timeout_ns);
  }

  Endpoint& endpoint() noexcept { return endpoint_; }
  bool peer_gone() const noexcept;

 private:
  explicit Channel(metal::EventFd ready) : ready_(std::move(ready)) {}
  void on_message(const Message& m);
  void on_gone();

  metal::EventFd ready_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<RxBuffer> queue_;
  bool gone_ = false;
  Endpoint endpoint_;  // last: destroyed (and unregistered) before the queue
};

}  // namespace amp::rpmsg
