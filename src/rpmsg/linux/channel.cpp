// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rpmsg/linux/channel.hpp"

#include <poll.h>

#include <cstring>

namespace amp::rpmsg {

metal::SysResult<std::unique_ptr<Channel>> Channel::open(Device& dev, std::string_view name,
                                                         std::uint32_t local, std::uint32_t remote) {
  auto ready = metal::EventFd::create_private();
  if (!ready) return metal::sys_fail(ready.error().status, ready.error().message);
  std::unique_ptr<Channel> ch(new Channel(std::move(*ready)));
  Channel* c = ch.get();
  const Status s = dev.create_endpoint(
      ch->endpoint_, name, local, remote, [c](Endpoint&, const Message& m) { c->on_message(m); },
      [c](Endpoint&) { c->on_gone(); });
  if (!ok(s)) return metal::sys_fail(s, std::string("creating the channel's endpoint: ") + amp::to_string(s));
  return ch;
}

Channel::~Channel() {
  endpoint_.destroy();  // no callback runs after this
  std::lock_guard lock(mutex_);
  queue_.clear();  // gives the held buffers back
}

void Channel::on_message(const Message& m) {
  RxBuffer held = m.hold();
  std::lock_guard lock(mutex_);
  queue_.push_back(std::move(held));
  (void)ready_.signal();
  cv_.notify_one();
}

void Channel::on_gone() {
  std::lock_guard lock(mutex_);
  gone_ = true;
  (void)ready_.signal();
  cv_.notify_all();
}

bool Channel::peer_gone() const noexcept {
  std::lock_guard lock(mutex_);
  return gone_;
}

Result<std::size_t> Channel::peek_size() noexcept {
  std::lock_guard lock(mutex_);
  if (!queue_.empty()) return queue_.front().payload().size();
  return fail(gone_ ? Status::kClosed : Status::kWouldBlock);
}

Result<std::size_t> Channel::read(std::span<std::byte> out) noexcept {
  RxBuffer msg;
  {
    std::lock_guard lock(mutex_);
    if (queue_.empty()) return fail(gone_ ? Status::kClosed : Status::kWouldBlock);
    if (queue_.front().payload().size() > out.size()) return fail(Status::kTooLarge);
    msg = std::move(queue_.front());
    queue_.pop_front();
    // Level-triggered readiness: readable exactly while something is queued (or the peer is gone).
    if (queue_.empty() && !gone_) (void)ready_.consume();
  }
  const std::size_t n = msg.payload().size();
  if (n != 0) std::memcpy(out.data(), msg.payload().data(), n);
  return n;  // `msg` gives its buffer back to the peer here
}

Result<std::size_t> Channel::read(std::span<std::byte> out, std::chrono::milliseconds timeout) noexcept {
  {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || gone_; })) return fail(Status::kTimeout);
  }
  return read(out);
}

}  // namespace amp::rpmsg
