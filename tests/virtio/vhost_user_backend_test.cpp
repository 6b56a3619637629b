// SPDX-License-Identifier: BSD-3-Clause
// VhostUserBackend against a scripted front end on a socketpair: the sequence User-mode Linux's virtio_uml
// sends (../shared notes: SET_OWNER, features, REPLY_ACK and SLAVE_REQ, the memory table, per queue call,
// num, base, addr, then kick and enable), and what a hostile front end sends instead.
#include "amp/virtio/linux/vhost_user_backend.hpp"

#include <gtest/gtest.h>
#include <sys/eventfd.h>

#include <optional>
#include <string>
#include <vector>

#include "amp/virtio/ring.hpp"
#include "virtio/vhost_user_front_end.hpp"

namespace amp::virtio {
namespace {

namespace vu = vhost_user;
using amp::testing::kGuest;
using amp::testing::kMemSize;
using amp::testing::one_region;
using amp::testing::u64_of;
using amp::testing::vring_addr;
using metal::UniqueFd;
using metal::UnixSocket;
using Bytes = amp::testing::LeBytes;

constexpr std::uint64_t kUser = amp::testing::kUser;
constexpr std::uint64_t kFeatures = (1ULL << 0) | (1ULL << 32);  // VIRTIO_RPMSG_F_NS, VIRTIO_F_VERSION_1

class VhostUserBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pair = UnixSocket::pair();
    ASSERT_TRUE(pair);
    // Each request the front end's helpers send is handled here before its reply is read.
    front_.emplace(std::move(pair->first), [this] {
      auto h = handle();
      ASSERT_TRUE(h) << h.error().message;
    });
    back_.emplace(std::move(pair->second));
    auto mem = metal::shm::create_memfd("vhost-user-test", kMemSize);
    ASSERT_TRUE(mem) << mem.error().message;
    memory_ = std::move(*mem);
  }

  /// Sends one request; `need_reply` sets NEED_REPLY.
  void send(vu::Request r, const Bytes& payload = {}, const std::vector<int>& fds = {},
            bool need_reply = false) {
    front_->send(r, payload, fds, need_reply);
  }

  /// The backend handles what was sent.
  metal::SysResult<VhostUserBackend::Handled> handle() { return backend_.handle(*back_); }

  std::vector<std::byte> reply(vu::Request r) { return front_->reply(r); }

  /// The message is refused: the error's text holds `message`.
  void expect_refused(const std::string& message) {
    auto h = handle();
    ASSERT_FALSE(h) << "accepted";
    EXPECT_NE(h.error().message.find(message), std::string::npos) << h.error().message;
  }

  static UniqueFd event_fd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC)); }

  /// The set-up up to the memory table, as UML sends it.
  void negotiate() { front_->negotiate(memory_.fd(), kFeatures, kFeatures); }

  void set_up_queue(std::uint32_t q) {
    UniqueFd call = event_fd(), kick = event_fd();
    front_->set_up_queue(q, call.get(), kick.get());
  }

  std::optional<amp::testing::VhostUserFrontEnd> front_;
  std::optional<UnixSocket> back_;
  metal::SharedMemory memory_;
  VhostUserBackend backend_{VhostUserConfig{.device_features = kFeatures, .queues = 2}};
};

TEST_F(VhostUserBackendTest, UmlsSequenceSetsUpTwoQueuesInTheSharedMemory) {
  ASSERT_NO_FATAL_FAILURE(negotiate());
  EXPECT_EQ(backend_.acked_features(), kFeatures | (1ULL << vu::kFeatureProtocolFeatures));
  ASSERT_EQ(backend_.memory().size(), 1U);
  EXPECT_EQ(backend_.memory()[0].device_address(), kGuest);
  EXPECT_EQ(backend_.memory()[0].size(), kMemSize);
  for (std::uint32_t q = 0; q < 2; ++q) ASSERT_NO_FATAL_FAILURE(set_up_queue(q));
  for (std::uint32_t q = 0; q < 2; ++q) {
    send(vu::Request::kSetVringEnable, Bytes().u32(q).u32(1), {}, true);
    auto h = handle();
    ASSERT_TRUE(h) << h.error().message;
    EXPECT_EQ(u64_of(reply(vu::Request::kSetVringEnable)), 0U);
    EXPECT_EQ(h->change, VhostUserBackend::Change::kQueueEnabled);
    EXPECT_EQ(h->queue, q);
    auto info = backend_.queue_info(q);
    ASSERT_TRUE(info) << info.error().message;
    EXPECT_EQ(info->da, kGuest + 0x10000 * (q + 1)) << "the ring in guest addresses";
    EXPECT_EQ(info->num, 256U);
    EXPECT_EQ(info->align, 4096U);
    EXPECT_TRUE(backend_.queue(q).kick.valid());
    EXPECT_TRUE(backend_.queue(q).call.valid());
  }
  // Power-off: both disabled, then the socket closes.
  send(vu::Request::kSetVringEnable, Bytes().u32(1).u32(0));
  auto off = handle();
  ASSERT_TRUE(off);
  EXPECT_EQ(off->change, VhostUserBackend::Change::kQueueDisabled);
  front_.reset();
  auto gone = handle();
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().status, Status::kClosed);
  EXPECT_EQ(gone.error().message, "vhost-user: the front end hung up");
}

TEST_F(VhostUserBackendTest, RingsOutsideTheSharedMemoryAreRefused) {
  ASSERT_NO_FATAL_FAILURE(negotiate());
  send(vu::Request::kSetVringNum, Bytes().u32(0).u32(256));
  ASSERT_TRUE(handle());
  Bytes outside;
  outside.u32(0).u32(0).u64(kUser + kMemSize - 0x800).u64(kUser).u64(kUser + 0x1000).u64(0);
  send(vu::Request::kSetVringAddr, outside, {}, true);
  expect_refused(
      "SET_VRING_ADDR: queue 0: 0x7f00000ff800 (+4096 bytes) lies in no region of the memory table");
  EXPECT_EQ(u64_of(reply(vu::Request::kSetVringAddr)), 1U) << "a failure is acked with 1";
  EXPECT_FALSE(backend_.queue_info(0));
}

TEST_F(VhostUserBackendTest, AMemoryTableThatLiesAboutItsFileIsRefused) {
  send(vu::Request::kSetMemTable, one_region(2 * kMemSize), {memory_.fd()});
  expect_refused("SET_MEM_TABLE: region 0 (guest 0x60000000, 0x200000 bytes at offset 0x0)");
  send(vu::Request::kSetMemTable, one_region(kMemSize, 0x1000), {memory_.fd()});
  expect_refused("SET_MEM_TABLE: region 0");
  send(vu::Request::kSetMemTable, one_region(), {});
  expect_refused("SET_MEM_TABLE: 0 descriptors attached, not 1");
  EXPECT_TRUE(backend_.memory().empty());
}

TEST_F(VhostUserBackendTest, AQueueIsNotEnabledBeforeItIsSetUp) {
  ASSERT_NO_FATAL_FAILURE(negotiate());
  send(vu::Request::kSetVringEnable, Bytes().u32(0).u32(1));
  expect_refused("SET_VRING_ENABLE: queue 0 has no ring addresses");
  send(vu::Request::kSetVringEnable, Bytes().u32(2).u32(1));
  expect_refused("SET_VRING_ENABLE: queue 2 (the device has 2)");
  send(vu::Request::kSetVringNum, Bytes().u32(0).u32(100));
  expect_refused("SET_VRING_NUM: 100 entries (a power of two up to 1024)");
  send(vu::Request::kSetVringBase, Bytes().u32(0).u32(7));
  expect_refused("SET_VRING_BASE: 7 (amp's queues start at 0)");
}

TEST_F(VhostUserBackendTest, RingsNotInTheLegacyLayoutAreSaidSo) {
  ASSERT_NO_FATAL_FAILURE(negotiate());
  front_->expect_acked(vu::Request::kSetVringNum, Bytes().u32(0).u32(256));
  front_->expect_acked(vu::Request::kSetVringAddr, vring_addr(0, 0x1000));  // the used ring a page further
  auto info = backend_.queue_info(0);
  ASSERT_FALSE(info);
  EXPECT_NE(info.error().message.find("is not the split ring's layout"), std::string::npos)
      << info.error().message;
}

TEST_F(VhostUserBackendTest, WhatIsNotOfferedIsRefused) {
  send(vu::Request::kSetFeatures, Bytes().u64(1ULL << 29));  // EVENT_IDX, not offered by this device
  expect_refused("SET_FEATURES: 0x20000000 has bits not offered (0x20000000)");
  send(vu::Request::kSetProtocolFeatures, Bytes().u64(1ULL << vu::kProtocolInbandNotifications));
  expect_refused("SET_PROTOCOL_FEATURES: 0x4000 has bits not offered");
  auto s = UnixSocket::pair();
  ASSERT_TRUE(s);
  send(vu::Request::kSetSlaveReqFd, {}, {s->first.fd()});
  expect_refused("SET_SLAVE_REQ_FD: SLAVE_REQ was not negotiated");
  send(vu::Request::kGetVringBase, Bytes().u32(0).u32(0));
  expect_refused("GET_VRING_BASE: not supported by amp's backend");
  send(static_cast<vu::Request>(77));
  expect_refused("request 77: not supported by amp's backend");
  send(vu::Request::kSetOwner, {}, {s->first.fd()});
  expect_refused("SET_OWNER: 1 descriptors attached, not 0");
}

TEST_F(VhostUserBackendTest, AMessageCutShortEndsTheConnection) {
  Bytes m;
  m.u32(static_cast<std::uint32_t>(vu::Request::kSetFeatures)).u32(vu::kVersion).u32(8).u32(0);  // 4 of 8
  ASSERT_EQ(front_->socket().send_all(m.v), Status::kOk);
  front_.reset();
  expect_refused("SET_FEATURES: reading its 8 bytes");
}

}  // namespace
}  // namespace amp::virtio
