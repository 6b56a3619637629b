// SPDX-License-Identifier: BSD-3-Clause
// A vhost-user front end written by hand, for tests: the requests User-mode Linux's virtio_uml sends, in its
// order (SET_OWNER, features, REPLY_ACK and SLAVE_REQ, the memory table, per queue call, num, base, addr and
// kick, then enable), over a UNIX stream socket. The guest memory is one file at guest address kGuest,
// which the front end's "user" addresses see at kUser; queue q's rings lie at ring_offset(q) in it, in the
// legacy layout virtio_uml uses (avail right after the descriptors, used at the next 4096 boundary).
//
// vhost_user_backend_test drives a VhostUserBackend message by message with it (the `handled` hook runs
// the backend between a request and its reply); vhost_user_server_test talks to a VhostUserServer, which
// answers on a thread of its own.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "amp/metal/linux/unix_socket.hpp"
#include "amp/virtio/linux/vhost_user_message.hpp"
#include "le_bytes.hpp"

namespace amp::testing {

inline constexpr std::uint64_t kGuest = 0x6000'0000;
inline constexpr std::uint64_t kUser = 0x7F00'0000'0000;
inline constexpr std::size_t kMemSize = 1 << 20;
inline constexpr std::uint32_t kRingEntries = 256;
inline constexpr std::uint32_t kRingAlign = 4096;

/// Where queue q's descriptor table lies in the guest memory (its avail ring 0x1000 further, its used ring
/// 0x2000 further).
constexpr std::uint64_t ring_offset(std::uint32_t q) {
  return 0x10000 * std::uint64_t{q + 1};
}

/// A reply's u64 (a GET_*'s value or an ack).
inline std::uint64_t u64_of(const std::vector<std::byte>& b) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8 && i < b.size(); ++i) v |= std::to_integer<std::uint64_t>(b[i]) << (8 * i);
  return v;
}

/// SET_MEM_TABLE's payload: one region of `size` bytes of the file from `offset`.
inline LeBytes one_region(std::uint64_t size = kMemSize, std::uint64_t offset = 0) {
  LeBytes b;
  b.u32(1).u32(0).u64(kGuest).u64(size).u64(kUser).u64(offset);
  return b;
}

/// SET_VRING_ADDR's payload for queue q of kRingEntries entries, in user addresses, as virtio_uml places it;
/// `shift` moves the used ring further.
inline LeBytes vring_addr(std::uint32_t q, std::uint64_t shift = 0) {
  const std::uint64_t desc = kUser + ring_offset(q);
  LeBytes b;
  b.u32(q).u32(0).u64(desc).u64(desc + 0x2000 + shift).u64(desc + 0x1000).u64(0);  // desc, used, avail, log
  return b;
}

class VhostUserFrontEnd {
 public:
  using Request = virtio::vhost_user::Request;

  /// `handled` runs after each request() is sent, before its reply is read (empty: the other side answers
  /// on its own).
  explicit VhostUserFrontEnd(metal::UnixSocket socket, std::function<void()> handled = {})
      : socket_(std::move(socket)), handled_(std::move(handled)) {}

  metal::UnixSocket& socket() noexcept { return socket_; }

  /// Sends one request; `need_reply` sets NEED_REPLY.
  void send(Request r, const LeBytes& payload = {}, const std::vector<int>& fds = {},
            bool need_reply = false) {
    namespace vu = virtio::vhost_user;
    LeBytes m;
    m.u32(static_cast<std::uint32_t>(r)).u32(vu::kVersion | (need_reply ? vu::kFlagNeedReply : 0U));
    m.u32(static_cast<std::uint32_t>(payload.v.size()));
    m.v.insert(m.v.end(), payload.v.begin(), payload.v.end());
    ASSERT_EQ(socket_.send_all(m.v, fds), Status::kOk);
  }

  /// send(), then the `handled` hook.
  void request(Request r, const LeBytes& payload = {}, const std::vector<int>& fds = {},
               bool need_reply = false) {
    ASSERT_NO_FATAL_FAILURE(send(r, payload, fds, need_reply));
    if (handled_) handled_();
  }

  /// Reads a reply to `r`: its payload.
  std::vector<std::byte> reply(Request r) {
    namespace vu = virtio::vhost_user;
    std::array<std::byte, vu::kHeaderSize> head{};
    EXPECT_EQ(socket_.receive_exact(head, nullptr, 0, std::chrono::milliseconds(1000)), Status::kOk);
    LeBytes want;
    std::vector<std::byte> got(head.begin(), head.end());
    std::uint32_t size = 0;
    std::memcpy(&size, head.data() + 8, 4);
    want.u32(static_cast<std::uint32_t>(r)).u32(vu::kVersion | vu::kFlagReply).u32(size);
    EXPECT_EQ(got, want.v) << "the reply's header";
    std::vector<std::byte> body(size);
    if (size > 0) {
      EXPECT_EQ(socket_.receive_exact(body, nullptr, 0, std::chrono::milliseconds(1000)), Status::kOk);
    }
    return body;
  }

  /// A request with NEED_REPLY whose ack must be `ack` (0: taken).
  void expect_acked(Request r, const LeBytes& payload = {}, const std::vector<int>& fds = {},
                    std::uint64_t ack = 0) {
    ASSERT_NO_FATAL_FAILURE(request(r, payload, fds, true));
    EXPECT_EQ(u64_of(reply(r)), ack) << virtio::vhost_user::to_string(static_cast<std::uint32_t>(r));
  }

  /// The set-up up to the memory table, as UML sends it: the device must offer `offered` (VIRTIO features,
  /// without vhost-user's own bit), the front end acks `acked` of them, and shares `memory_fd`.
  void negotiate(int memory_fd, std::uint64_t offered, std::uint64_t acked) {
    namespace vu = virtio::vhost_user;
    const std::uint64_t protocol_bit = 1ULL << vu::kFeatureProtocolFeatures;
    ASSERT_NO_FATAL_FAILURE(request(Request::kSetOwner));
    ASSERT_NO_FATAL_FAILURE(request(Request::kGetFeatures));
    EXPECT_EQ(u64_of(reply(Request::kGetFeatures)), offered | protocol_bit);
    ASSERT_NO_FATAL_FAILURE(request(Request::kGetProtocolFeatures));
    const std::uint64_t protocol = u64_of(reply(Request::kGetProtocolFeatures));
    EXPECT_EQ(protocol, (1ULL << vu::kProtocolReplyAck) | (1ULL << vu::kProtocolSlaveReq));
    ASSERT_NO_FATAL_FAILURE(expect_acked(Request::kSetProtocolFeatures, LeBytes().u64(protocol)));
    auto slave = metal::UnixSocket::pair();
    ASSERT_TRUE(slave);
    ASSERT_NO_FATAL_FAILURE(expect_acked(Request::kSetSlaveReqFd, {}, {slave->first.fd()}));
    ASSERT_NO_FATAL_FAILURE(expect_acked(Request::kSetFeatures, LeBytes().u64(acked | protocol_bit)));
    ASSERT_NO_FATAL_FAILURE(expect_acked(Request::kSetMemTable, one_region(), {memory_fd}));
  }

  /// Queue q, as UML sets it up: call, num, base, addr, kick.
  void set_up_queue(std::uint32_t q, int call, int kick) {
    ASSERT_NO_FATAL_FAILURE(expect_acked(Request::kSetVringCall, LeBytes().u64(q), {call}));
    ASSERT_NO_FATAL_FAILURE(expect_acked(Request::kSetVringNum, LeBytes().u32(q).u32(kRingEntries)));
    ASSERT_NO_FATAL_FAILURE(expect_acked(Request::kSetVringBase, LeBytes().u32(q).u32(0)));
    ASSERT_NO_FATAL_FAILURE(expect_acked(Request::kSetVringAddr, vring_addr(q)));
    ASSERT_NO_FATAL_FAILURE(expect_acked(Request::kSetVringKick, LeBytes().u64(q), {kick}));
  }

  /// SET_VRING_ENABLE, acked.
  void enable(std::uint32_t q, bool on) {
    ASSERT_NO_FATAL_FAILURE(expect_acked(Request::kSetVringEnable, LeBytes().u32(q).u32(on ? 1 : 0)));
  }

  /// The other side closes the connection, each byte it still sends before that within `timeout`.
  void expect_hung_up(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
    std::array<std::byte, 1> rest{};
    for (int i = 0; i < 1024; ++i) {
      const Status s = socket_.receive_exact(rest, nullptr, 0, timeout);
      if (s == Status::kClosed) return;
      ASSERT_EQ(s, Status::kOk) << "the connection is still open";
    }
    FAIL() << "the other side keeps sending";
  }

 private:
  metal::UnixSocket socket_;
  std::function<void()> handled_;
};

}  // namespace amp::testing
