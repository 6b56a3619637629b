// SPDX-License-Identifier: BSD-3-Clause
// One endpoint a client opened through ampd: an rpmsg::Endpoint on a remote's Device, and ampd's end of a
// SOCK_SEQPACKET socket pair whose other end the client holds. What the remote sends the endpoint becomes
// one packet on the socket; each packet the client writes becomes one message to the remote. That gives the
// client's descriptor rpmsg_char's semantics (docs/ampd.md): one message per read and write, poll and
// O_NONBLOCK as for any socket, end of file on read and EPIPE on write once the endpoint ends.
//
// Flow control, per endpoint: a client that reads slowly gets the remote's messages queued for it, up to
// kMaxBacklog (beyond that they are dropped, counted and logged: the remote's buffers, which every client
// shares, are never held for one client); a client that writes faster than the remote takes its messages
// waits, since ampd stops reading its socket until the remote has a buffer again.
//
// Thread-safety: created, used and ended on the broker's loop thread; the receive callback runs on the
// remote's link thread and touches only the socket and the backlog (under the relay's mutex).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "amp/metal/linux/event_loop.hpp"
#include "amp/metal/linux/unix_socket.hpp"
#include "amp/rpmsg/device.hpp"

namespace amp::ampd {

class EndpointRelay : public std::enable_shared_from_this<EndpointRelay> {
 public:
  /// Messages queued for a client that does not read, per endpoint.
  static constexpr std::size_t kMaxBacklog = 256;

  /// Called (on the loop thread) once the relay ended by itself: the client closed its descriptor, wrote
  /// more than the MTU, or the remote unbound the endpoint. `why` is for the log.
  using EndFn = std::function<void(EndpointRelay&, const std::string& why)>;

  struct Counters {
    std::uint64_t to_client = 0;
    std::uint64_t to_remote = 0;
    std::uint64_t dropped = 0;  ///< the remote's messages beyond kMaxBacklog
  };

  /// Opens an endpoint on `device` (rpmsg::Device::create_endpoint's `name`, `local` and `remote`: a named
  /// endpoint without a remote is announced) and the socket pair; client_socket() is the client's end.
  static metal::SysResult<std::shared_ptr<EndpointRelay>> open(metal::EventLoop& loop, rpmsg::Device& device,
                                                               const std::string& name, std::uint32_t local,
                                                               std::uint32_t remote, EndFn on_end);
  ~EndpointRelay();
  EndpointRelay(const EndpointRelay&) = delete;
  EndpointRelay& operator=(const EndpointRelay&) = delete;

  /// The client's end of the pair, until it is handed over (then invalid).
  metal::UnixSocket& client_socket() { return theirs_; }
  std::uint32_t local() const { return ep_.address(); }
  std::uint32_t remote() const { return ep_.remote_address(); }
  std::uint32_t mtu() const { return mtu_; }
  Counters counters() const;

  /// Ends the endpoint (withdrawing its announcement while the remote runs) and closes ampd's end: the
  /// client reads end of file. Idempotent; loop thread only (or any thread once the loop has stopped).
  void end();
  bool ended() const { return ended_.load(std::memory_order_acquire); }

 private:
  EndpointRelay(metal::EventLoop& loop, std::uint32_t mtu, EndFn on_end);
  void from_remote(std::span<const std::byte> payload);  // link thread
  void on_readable(std::uint32_t revents);               // loop thread: the client wrote
  void on_writable();                                    // loop thread: room for the backlog
  void retry_pending();                                  // loop thread: a message waits for a buffer
  /// Sends `pending_` to the remote: kOk, kWouldBlock when it has to wait (no buffer, or no peer yet), or
  /// the error that ended the relay.
  Status send_pending();
  void finish(const std::string& why);
  /// Whether the client hung up (an empty read is then the end, not an empty message).
  bool hung_up(std::uint32_t revents) const;

  metal::EventLoop& loop_;
  std::uint32_t mtu_;
  EndFn on_end_;
  rpmsg::Endpoint ep_;
  metal::UnixSocket ours_;
  metal::UnixSocket theirs_;
  metal::UniqueFd ours_for_out_;  // a dup of ours_, watched for EPOLLOUT while the backlog is not empty
  metal::SourceId in_src_{};
  metal::SourceId out_src_{};
  metal::SourceId retry_src_{};
  std::atomic<bool> ended_{false};
  std::vector<std::byte> pending_;  // a message of the client's that waits for a buffer or a peer
  bool has_pending_ = false;
  mutable std::mutex mutex_;  // guards backlog_ and counters_ (the link thread adds to them)
  std::deque<std::vector<std::byte>> backlog_;
  Counters counters_;
};

}  // namespace amp::ampd
