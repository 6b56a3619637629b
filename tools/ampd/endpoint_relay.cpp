// SPDX-License-Identifier: BSD-3-Clause
#include "endpoint_relay.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "amp/metal/log.hpp"

namespace amp::ampd {

namespace {

/// Packets taken from a client's socket per wake-up, so that one busy client cannot hold the loop.
constexpr int kReadBatch = 16;
/// How often a message that waits for a buffer (or for the endpoint's peer) is tried again.
constexpr std::chrono::milliseconds kRetryPeriod{1};

}  // namespace

EndpointRelay::EndpointRelay(metal::EventLoop& loop, std::uint32_t mtu, EndFn on_end)
    : loop_(loop),
      mtu_(mtu),
      on_end_(std::move(on_end)),
      ours_(metal::UniqueFd()),
      theirs_(metal::UniqueFd()) {}

metal::SysResult<std::shared_ptr<EndpointRelay>> EndpointRelay::open(metal::EventLoop& loop,
                                                                     rpmsg::Device& device,
                                                                     const std::string& name,
                                                                     std::uint32_t local,
                                                                     std::uint32_t remote, EndFn on_end) {
  auto pair = metal::UnixSocket::pair(metal::SocketKind::kSeqPacket);
  if (!pair) return Unexpected<metal::SysError>(pair.error());
  std::shared_ptr<EndpointRelay> r(new EndpointRelay(loop, device.payload_size(), std::move(on_end)));
  r->ours_ = std::move(pair->first);
  r->theirs_ = std::move(pair->second);
  if (const Status s = r->ours_.set_nonblocking(true); !ok(s))
    return metal::sys_fail(s, "a socket for the endpoint");
  r->ours_for_out_ = metal::UniqueFd(::fcntl(r->ours_.fd(), F_DUPFD_CLOEXEC, 0));
  if (!r->ours_for_out_.valid()) return metal::sys_fail("dup the endpoint's socket");

  EndpointRelay* self = r.get();
  std::weak_ptr<EndpointRelay> weak = r;
  const Status s = device.create_endpoint(
      r->ep_, name, local, remote,
      [self](rpmsg::Endpoint&, const rpmsg::Message& m) { self->from_remote(m.payload); },
      [&loop, weak](rpmsg::Endpoint&) {
        // On the link's thread (a withdrawal) or the driver's (the link closing): end it on the loop's.
        (void)loop.post([weak] {
          if (auto relay = weak.lock()) relay->finish("the remote withdrew it, or went away");
        });
      });
  if (!ok(s)) return metal::sys_fail(s, std::string("creating the endpoint: ") + to_string(s));

  auto in =
      loop.add_fd(r->ours_.fd(), EPOLLIN | EPOLLRDHUP, [self](std::uint32_t ev) { self->on_readable(ev); });
  if (!in) return Unexpected<metal::SysError>(in.error());
  r->in_src_ = *in;
  auto out = loop.add_fd(r->ours_for_out_.get(), EPOLLOUT, [self](std::uint32_t) { self->on_writable(); });
  if (!out) return Unexpected<metal::SysError>(out.error());
  r->out_src_ = *out;
  (void)loop.disable(r->out_src_);
  auto retry = loop.add_timer(kRetryPeriod, kRetryPeriod, [self](std::uint64_t) { self->retry_pending(); });
  if (!retry) return Unexpected<metal::SysError>(retry.error());
  r->retry_src_ = *retry;
  (void)loop.disable(r->retry_src_);
  return r;
}

EndpointRelay::~EndpointRelay() {
  end();
}

EndpointRelay::Counters EndpointRelay::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

void EndpointRelay::from_remote(std::span<const std::byte> payload) {
  std::lock_guard lock(mutex_);
  if (ended()) return;
  if (backlog_.empty()) {
    const ssize_t n = ::send(ours_.fd(), payload.data(), payload.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      ++counters_.to_client;
      return;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) return;  // the client is gone: the loop sees the hang-up
  }
  if (backlog_.size() >= kMaxBacklog) {
    // Never hold the remote's buffers for one client: they are every client's.
    if (counters_.dropped++ % 1000 == 0) {
      AMP_LOG_WARNING("ampd: endpoint %u: the client does not read; dropped %llu messages so far",
                      static_cast<unsigned>(ep_.address()),
                      static_cast<unsigned long long>(counters_.dropped));
    }
    return;
  }
  backlog_.emplace_back(payload.begin(), payload.end());
  if (backlog_.size() == 1) (void)loop_.enable(out_src_);
}

void EndpointRelay::on_writable() {
  std::lock_guard lock(mutex_);
  while (!backlog_.empty()) {
    const std::vector<std::byte>& m = backlog_.front();
    const ssize_t n = ::send(ours_.fd(), m.data(), m.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // still full: wait for EPOLLOUT again
      backlog_.clear();                                     // the client is gone
      break;
    }
    ++counters_.to_client;
    backlog_.pop_front();
  }
  (void)loop_.disable(out_src_);
}

bool EndpointRelay::hung_up(std::uint32_t revents) const {
  // The event that woke the handler may predate the hang-up: ask the socket again.
  if ((revents & (EPOLLHUP | EPOLLRDHUP)) != 0) return true;
  pollfd p{ours_.fd(), POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP)) != 0;
}

void EndpointRelay::on_readable(std::uint32_t revents) {
  for (int i = 0; i < kReadBatch && !ended(); ++i) {
    pending_.resize(std::size_t{mtu_} + 1);
    const ssize_t n = ::recv(ours_.fd(), pending_.data(), pending_.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      finish(std::string("reading the client's socket: ") + std::strerror(errno));
      return;
    }
    // An empty packet is an empty message, unless the client hung up: then it is the end.
    if (n == 0 && hung_up(revents)) {
      finish("the client closed it");
      return;
    }
    if (static_cast<std::size_t>(n) > mtu_) {
      finish("the client wrote a message of " + std::to_string(n) + " bytes, more than the MTU (" +
             std::to_string(mtu_) + ")");
      return;
    }
    pending_.resize(static_cast<std::size_t>(n));
    has_pending_ = true;
    const Status s = send_pending();
    if (s == Status::kWouldBlock) {
      // Backpressure on this endpoint only: read no more of its socket until the message is out.
      (void)loop_.disable(in_src_);
      (void)loop_.enable(retry_src_);
      return;
    }
    if (!ok(s)) return;  // ended
  }
}

void EndpointRelay::retry_pending() {
  if (ended() || !has_pending_) {
    (void)loop_.disable(retry_src_);
    return;
  }
  if (send_pending() == Status::kWouldBlock) return;
  (void)loop_.disable(retry_src_);
  if (!ended()) (void)loop_.enable(in_src_);
}

Status EndpointRelay::send_pending() {
  const Status s = ep_.try_send(pending_);
  if (ok(s)) {
    has_pending_ = false;
    std::lock_guard lock(mutex_);
    ++counters_.to_remote;
    return Status::kOk;
  }
  // No buffer free, or (an endpoint the client created) no peer yet: the message waits.
  if (s == Status::kWouldBlock || s == Status::kNotFound) return Status::kWouldBlock;
  finish(std::string("the remote took no message: ") + to_string(s));
  return s;
}

void EndpointRelay::finish(const std::string& why) {
  if (ended()) return;
  end();
  if (on_end_) on_end_(*this, why);
}

void EndpointRelay::end() {
  if (ended_.exchange(true, std::memory_order_acq_rel)) return;
  ep_.destroy();  // no receive callback runs after this
  for (metal::SourceId id : {in_src_, out_src_, retry_src_}) {
    if (id != metal::SourceId{}) (void)loop_.remove(id);
  }
  {
    std::lock_guard lock(mutex_);
    backlog_.clear();
  }
  ours_ = metal::UnixSocket(metal::UniqueFd());
  ours_for_out_ = metal::UniqueFd();
}

}  // namespace amp::ampd
