// SPDX-License-Identifier: BSD-3-Clause
// LiteDevice, the smallest device role: against amp's driver role (rpmsg::Device) on the Loopback fixture's
// memory, and against a scripted driver that writes what no well-behaved driver would.
#include "amp/rpmsg/lite_device.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "amp/metal/time.hpp"
#include "amp/rpmsg/device.hpp"
#include "loopback_fixture.hpp"
#include "scripted_driver.hpp"

namespace amp::rpmsg {
namespace {

using testing::bytes_of;
using testing::kBuf;
using testing::kPool;
using testing::kRing1;
using testing::kRingNum;
using testing::kServiceAddr;
using testing::Loopback;
using testing::string_of;

// ---------------------------------------------------------------------------------------------------------
// Against amp's driver role

class LiteLoopback : public Loopback {
 protected:
  LiteConfig lite_config(bool interrupts = true) {
    LiteConfig c;
    c.shm = shm_;
    c.vdev = &device_transport_;
    c.notifier = interrupts ? &to_driver_ : nullptr;
    return c;
  }
  /// Lays out the memory, starts the driver and then the LiteDevice (which wants DRIVER_OK first).
  void start_lite(bool interrupts = true) {
    layout();
    ASSERT_EQ(driver_.start(config(Role::kDriver), driver_storage_), Status::kOk);
    ASSERT_EQ(lite_.start(lite_config(interrupts), lite_storage_), Status::kOk);
  }
  /// The driver's endpoint for the lite side's announcements, made by its name-service handler.
  void bind_announcements() {
    driver_.set_name_service_handler([this](Device& d, std::string_view name, std::uint32_t remote) {
      announced_.emplace_back(name);
      if (host_.attached()) return;
      (void)d.create_endpoint(host_, name, kAddrAny, remote, [this](Endpoint&, const Message& m) {
        replies_.push_back(string_of(m.payload));
      });
    });
  }
  /// An echo service on the lite side.
  void make_echo(std::uint32_t local = kAddrAny) {
    ASSERT_EQ(lite_.create_endpoint(echo_, "amp-echo", local, kAddrAny,
                                    [](LiteEndpoint& self, const LiteMessage& m) {
                                      EXPECT_EQ(self.send_to(m.src, m.payload, 100'000'000), Status::kOk);
                                    }),
              Status::kOk);
  }

  LiteStorage<256> lite_storage_{};
  LiteDevice lite_;
  LiteEndpoint echo_;
  Endpoint host_;
  std::vector<std::string> announced_;
  std::vector<std::string> replies_;
};

TEST_F(LiteLoopback, EchoesEverySizeUpToItsPayloadSizeAndRefusesOneMore) {
  start_lite();
  bind_announcements();
  make_echo();
  pump(lite_);
  ASSERT_EQ(announced_, std::vector<std::string>{"amp-echo"});
  ASSERT_TRUE(host_.attached());
  EXPECT_TRUE(lite_.name_service());
  EXPECT_TRUE(lite_.event_idx());
  ASSERT_EQ(lite_.payload_size(), 496U);
  for (std::size_t n = 1; n <= lite_.payload_size(); ++n) {
    std::string msg(n, '\0');
    for (std::size_t i = 0; i < n; ++i) msg[i] = static_cast<char>('a' + (n + i) % 26);
    ASSERT_EQ(host_.send(bytes_of(msg)), Status::kOk) << n;
    pump(lite_);
    ASSERT_EQ(replies_.size(), n);
    ASSERT_EQ(replies_.back(), msg) << n;
  }
  const std::string one_more(lite_.payload_size() + 1, 'x');
  EXPECT_EQ(echo_.send(bytes_of(one_more)), Status::kTooLarge);
  const Stats s = lite_.stats();
  EXPECT_EQ(s.rx_messages, 496U);
  EXPECT_EQ(s.tx_messages, 497U);  // the announcement and the echoes
  EXPECT_EQ(s.rx_malformed, 0U);
  EXPECT_EQ(s.rx_unroutable, 0U);
  // The echo endpoint learnt its peer from the first message (implicit binding).
  EXPECT_EQ(echo_.remote_address(), host_.address());
}

TEST_F(LiteLoopback, WithoutANotifierNeitherSideIsKickedAndPollingStillMovesEverything) {
  start_lite(/*interrupts=*/false);
  bind_announcements();
  make_echo();
  const int kicks_before = to_driver_.total.load();
  ASSERT_EQ(driver_.process(), Status::kOk);  // the announcement
  ASSERT_TRUE(host_.attached());
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(host_.send(bytes_of("ping " + std::to_string(i))), Status::kOk);
    ASSERT_EQ(lite_.process(), Status::kOk);
    ASSERT_EQ(driver_.process(), Status::kOk);
    ASSERT_EQ(replies_.size(), static_cast<std::size_t>(i + 1));
  }
  EXPECT_EQ(to_driver_.total.load(), kicks_before) << "the lite device kicked a polling host";
  EXPECT_EQ(replies_.back(), "ping 999");
}

TEST_F(LiteLoopback, ServicesCreatedBeforeStartAreAnnouncedByIt) {
  layout();
  make_echo(0x500);
  EXPECT_EQ(echo_.send_to(0x400, bytes_of("x")), Status::kClosed);  // not running yet
  ASSERT_EQ(driver_.start(config(Role::kDriver), driver_storage_), Status::kOk);
  bind_announcements();
  ASSERT_EQ(lite_.start(lite_config(), lite_storage_), Status::kOk);
  EXPECT_EQ(lite_.start(lite_config(), lite_storage_), Status::kBusy);
  pump(lite_);
  ASSERT_EQ(announced_, std::vector<std::string>{"amp-echo"});
  EXPECT_EQ(host_.remote_address(), 0x500U);
}

TEST_F(LiteLoopback, TheHostsAnnouncementBindsAnEndpointOfItsNameAndItsWithdrawalUnbindsIt) {
  start_lite();
  LiteEndpoint ctl;
  std::vector<std::string> got;
  ASSERT_EQ(lite_.create_endpoint(
                ctl, "ctl", kAddrAny, kAddrAny,
                [&](LiteEndpoint&, const LiteMessage& m) { got.push_back(string_of(m.payload)); }),
            Status::kOk);
  pump(lite_);
  // The host makes a service of the same name (as the kernel's rpmsg_ctrl CREATE_DEV does): announced to us.
  Endpoint svc;
  ASSERT_EQ(driver_.create_endpoint(svc, "ctl", kAddrAny, kAddrAny, [](Endpoint&, const Message&) {}),
            Status::kOk);
  pump(lite_);
  EXPECT_EQ(ctl.remote_address(), svc.address());
  ASSERT_EQ(ctl.send(bytes_of("to the host's ctl")), Status::kOk);
  svc.destroy();  // the withdrawal
  pump(lite_);
  EXPECT_EQ(ctl.remote_address(), kAddrAny);
  EXPECT_EQ(ctl.send(bytes_of("nobody")), Status::kNotFound);
}

TEST_F(LiteLoopback, EndpointAddressesAndNamesAreChecked) {
  start_lite();
  LiteEndpoint a, b, c, d, e;
  auto none = [](LiteEndpoint&, const LiteMessage&) {};
  ASSERT_EQ(lite_.create_endpoint(a, "", kAddrAny, 0x400, none), Status::kOk);
  ASSERT_EQ(lite_.create_endpoint(b, "", kAddrAny, 0x400, none), Status::kOk);
  EXPECT_EQ(a.address(), kFirstDynamicAddress);
  EXPECT_EQ(b.address(), kFirstDynamicAddress + 1);
  EXPECT_EQ(lite_.create_endpoint(a, "", 0x50, 0x400, none), Status::kBusy);
  EXPECT_EQ(lite_.create_endpoint(c, "", kFirstDynamicAddress, 0x400, none), Status::kAlreadyExists);
  EXPECT_EQ(lite_.create_endpoint(c, "", kNsAddress, 0x400, none), Status::kAlreadyExists);
  EXPECT_EQ(lite_.create_endpoint(c, std::string(kNameSize, 'n'), 0x50, kAddrAny, none),
            Status::kInvalidArgument);
  a.destroy();
  ASSERT_EQ(lite_.create_endpoint(d, "", kAddrAny, 0x400, none), Status::kOk);
  EXPECT_EQ(d.address(), kFirstDynamicAddress) << "a destroyed endpoint's address is free again";
  ASSERT_EQ(lite_.create_endpoint(e, std::string(kNameSize - 1, 'n'), 0x50, kAddrAny, none), Status::kOk);
  EXPECT_EQ(e.name(), std::string(kNameSize - 1, 'n'));
  EXPECT_FALSE(a.attached());
  EXPECT_EQ(a.send(bytes_of("x")), Status::kClosed);
}

TEST_F(LiteLoopback, StoppingClosesSendsAndForgetsPeersAndAnEndpointMayDestroyItselfInItsCallback) {
  start_lite();
  bind_announcements();
  LiteEndpoint once;
  int calls = 0;
  ASSERT_EQ(lite_.create_endpoint(once, "once", kAddrAny, kAddrAny,
                                  [&](LiteEndpoint& self, const LiteMessage&) {
                                    ++calls;
                                    self.destroy();  // tells the host, from its own callback
                                  }),
            Status::kOk);
  pump(lite_);
  ASSERT_TRUE(host_.attached());
  const std::uint32_t at = once.address();
  ASSERT_EQ(host_.send(bytes_of("1")), Status::kOk);
  pump(lite_);
  ASSERT_EQ(host_.send_to(at, bytes_of("2")), Status::kOk);  // no one there any more
  pump(lite_);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(once.attached());
  EXPECT_EQ(lite_.stats().rx_unroutable, 1U);
  EXPECT_EQ(host_.remote_address(), kAddrAny) << "the host did not hear the withdrawal";

  make_echo();
  pump(lite_);
  lite_.stop();
  EXPECT_FALSE(lite_.running());
  EXPECT_EQ(echo_.send_to(0x400, bytes_of("x")), Status::kClosed);
  EXPECT_EQ(lite_.process(), Status::kClosed);
  EXPECT_EQ(echo_.remote_address(), kAddrAny);
  EXPECT_TRUE(echo_.attached()) << "endpoints stay registered for the next start";
}

// ---------------------------------------------------------------------------------------------------------
// Against a scripted driver

class LiteScripted : public testing::ScriptedDriverBase {
 protected:
  void start_lite(bool interrupts = true) {
    LiteConfig c;
    c.shm = shm_;
    c.vdev = &device_transport_;
    c.notifier = interrupts ? &to_driver_ : nullptr;
    ASSERT_EQ(lite_.start(c, lite_storage_), Status::kOk);
    ASSERT_EQ(lite_.create_endpoint(
                  service_, "svc", kServiceAddr, kAddrAny,
                  [this](LiteEndpoint&, const LiteMessage& m) { received_.push_back(string_of(m.payload)); }),
              Status::kOk);
  }
  /// Takes the next message the device sent (in one of the driver's rx buffers); "" when there is none.
  std::string next_sent(Header* header = nullptr) {
    virtio::DriverQueue::Used u;
    auto r = rx_.pop_used(u);
    if (!r || !*r) return "";
    const metal::DeviceAddress da = rx_.head_buffer(u.head).addr;
    std::byte raw[kHeaderSize];
    std::memcpy(raw, at(da), kHeaderSize);
    const Header h = decode_header(raw);
    if (header != nullptr) *header = h;
    return std::string(reinterpret_cast<const char*>(at(da + kHeaderSize)), h.len);
  }

  LiteStorage<kRingNum> lite_storage_{};
  LiteDevice lite_;
  LiteEndpoint service_;
};

TEST_F(LiteScripted, TheAnnouncementIsOpenAmpsAndLinuxsFortyBytes) {
  start_lite();
  Header h;
  const std::string ns = next_sent(&h);
  ASSERT_EQ(ns.size(), kNsMessageSize);
  EXPECT_EQ(h.src, kServiceAddr);
  EXPECT_EQ(h.dst, kNsAddress);
  EXPECT_EQ(h.flags, 0);
  auto m = decode_ns(std::as_bytes(std::span(ns)));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->name_view(), "svc");
  EXPECT_EQ(m->addr, kServiceAddr);
  EXPECT_EQ(m->flags, kNsCreate);
  EXPECT_EQ(next_sent(), "");
}

TEST_F(LiteScripted, MalformedMessagesAreDroppedCountedAndTheirBuffersGoBack) {
  start_lite();
  (void)next_sent();                                        // the announcement
  write_message(tx_buffer(0), kServiceAddr, "hello", 500);  // claims more than its buffer
  offer(tx_buffer(0), kHeaderSize + 5);
  offer(tx_buffer(1), kHeaderSize - 1);                 // shorter than a header
  write_message(tx_buffer(2), kNsAddress, "short", 5);  // a 5-byte name-service message
  offer(tx_buffer(2), kHeaderSize + 5);
  std::string no_nul(kNsMessageSize, 'n');  // a name without its NUL
  write_message(tx_buffer(3), kNsAddress, no_nul, kNsMessageSize);
  offer(tx_buffer(3), kHeaderSize + kNsMessageSize);
  write_message(tx_buffer(4), 0x999, "lost", 4);  // to no one
  offer(tx_buffer(4), kHeaderSize + 4);
  write_message(tx_buffer(5), kServiceAddr, "fine", 4);
  offer(tx_buffer(5), kHeaderSize + 4);
  ASSERT_EQ(lite_.process(), Status::kOk);
  EXPECT_EQ(received_, std::vector<std::string>{"fine"});
  const Stats s = lite_.stats();
  EXPECT_EQ(s.rx_messages, 6U);
  EXPECT_EQ(s.rx_malformed, 4U);
  EXPECT_EQ(s.rx_unroutable, 1U);
  // Every buffer went back, each with its full length.
  for (std::uint32_t i = 0; i < 6; ++i) {
    virtio::DriverQueue::Used u;
    ASSERT_TRUE(*tx_.pop_used(u)) << i;
  }
  virtio::DriverQueue::Used u;
  EXPECT_FALSE(*tx_.pop_used(u));
  EXPECT_EQ(lite_.fault(), virtio::Fault::kNone);
}

TEST_F(LiteScripted, ADeviceWritableBufferOfferedAsAMessageBreaksTheDevice) {
  start_lite();
  const virtio::Buffer b{tx_buffer(0), kBuf, true};
  ASSERT_TRUE(tx_.add(std::span(&b, 1)));
  EXPECT_EQ(lite_.process(), Status::kBroken);
  EXPECT_EQ(lite_.fault(), virtio::Fault::kBadBuffer);
  EXPECT_EQ(lite_.process(), Status::kBroken);
  EXPECT_EQ(service_.send_to(0x401, bytes_of("x")), Status::kBroken);
}

TEST_F(LiteScripted, ARingIndexThatRunsAheadBreaksTheDeviceWithoutReadingBeyondTheRing) {
  start_lite();
  const std::size_t avail = kRing1 + ring1_.avail;
  const std::uint16_t runaway = kRingNum + 5;
  std::memcpy(at(avail + 2), &runaway, 2);
  EXPECT_EQ(lite_.process(), Status::kBroken);
  EXPECT_EQ(lite_.fault(), virtio::Fault::kIndexRunaway);
  EXPECT_TRUE(received_.empty());
}

TEST_F(LiteScripted, AHostThatOffersOneBufferWithoutEndGetsAtMostARingsWorthPerProcessCall) {
  // The device returns each message's buffer as soon as its callback is done, so a host may offer the same
  // buffer in every entry of the ring; what it cannot do is keep one process() call going.
  start_lite();
  write_message(tx_buffer(0), kServiceAddr, "again", 5);
  const std::uint16_t head = offer(tx_buffer(0), kHeaderSize + 5);
  const std::size_t avail = kRing1 + ring1_.avail;
  for (std::uint16_t round = 1; round <= 3; ++round) {
    for (std::uint16_t i = 0; i < kRingNum; ++i) std::memcpy(at(avail + 4 + 2 * i), &head, 2);
    const auto idx = static_cast<std::uint16_t>(round * kRingNum);  // a whole ring more each round
    std::memcpy(at(avail + 2), &idx, 2);
    ASSERT_EQ(lite_.process(), Status::kOk);
    EXPECT_EQ(received_.size(), round * kRingNum);
    EXPECT_EQ(peek<std::uint16_t>(kRing1 + ring1_.used + 2), idx) << "every entry went back used";
  }
  EXPECT_EQ(lite_.fault(), virtio::Fault::kNone);
}

TEST_F(LiteScripted, AReadOnlyBufferOfferedForSendingBreaksTheDevice) {
  // A driver whose "empty buffers" the device may not write.
  layout(kRingNum, 1U);
  ring0_ = *virtio::RingLayout::compute(kRingNum, 0x1000);
  ring1_ = ring0_;
  ASSERT_EQ(rx_.init(queue(testing::kRing0), std::span(rx_slots_)), Status::kOk);
  ASSERT_EQ(tx_.init(queue(kRing1), std::span(tx_slots_)), Status::kOk);
  const virtio::Buffer b{kPool, kBuf, false};
  ASSERT_TRUE(rx_.add(std::span(&b, 1)));
  driver_transport_.set_driver_features(0);  // no name service: nothing is sent at start
  driver_transport_.set_status(virtio::kStatusDriverOk);
  LiteConfig c;
  c.shm = shm_;
  c.vdev = &device_transport_;
  ASSERT_EQ(lite_.start(c, lite_storage_), Status::kOk);
  EXPECT_FALSE(lite_.name_service());
  LiteEndpoint ep;
  ASSERT_EQ(lite_.create_endpoint(ep, "", kAddrAny, 0x401, [](LiteEndpoint&, const LiteMessage&) {}),
            Status::kOk);
  EXPECT_EQ(ep.send(bytes_of("x")), Status::kBroken);
  EXPECT_EQ(lite_.fault(), virtio::Fault::kBadBuffer);
}

TEST_F(LiteScripted, ABufferTooSmallForAMessageIsKeptForTheNextOneThatFits) {
  // Rebuilt with the driver's first empty buffer 20 bytes long (4 of payload), then normal ones.
  layout(kRingNum, 1U);
  ring0_ = *virtio::RingLayout::compute(kRingNum, 0x1000);
  ring1_ = ring0_;
  ASSERT_EQ(rx_.init(queue(testing::kRing0), std::span(rx_slots_)), Status::kOk);
  ASSERT_EQ(tx_.init(queue(kRing1), std::span(tx_slots_)), Status::kOk);
  const virtio::Buffer small{kPool, kHeaderSize + 4, true};
  ASSERT_TRUE(rx_.add(std::span(&small, 1)));
  driver_transport_.set_driver_features(0);
  driver_transport_.set_status(virtio::kStatusDriverOk);
  LiteConfig c;
  c.shm = shm_;
  c.vdev = &device_transport_;
  ASSERT_EQ(lite_.start(c, lite_storage_), Status::kOk);
  LiteEndpoint ep;
  ASSERT_EQ(lite_.create_endpoint(ep, "", kAddrAny, 0x401, [](LiteEndpoint&, const LiteMessage&) {}),
            Status::kOk);
  EXPECT_EQ(ep.send(bytes_of("too long")), Status::kTooLarge);
  EXPECT_EQ(next_sent(), "") << "nothing was sent, not even a part";
  // No other buffer: the small one is the only one, kept.
  EXPECT_EQ(ep.send(bytes_of("fit")), Status::kOk);
  EXPECT_EQ(next_sent(), "fit");
  EXPECT_EQ(ep.send(bytes_of("more")), Status::kWouldBlock);
}

TEST_F(LiteScripted, ASendWithoutABufferWaitsNoLongerThanItsTimeout) {
  start_lite();
  // The announcement took one of the driver's 16 buffers; the other 15 go to fill the ring.
  for (std::uint32_t i = 0; i + 1 < kRingNum; ++i)
    ASSERT_EQ(service_.send_to(0x401, bytes_of("x")), Status::kOk);
  EXPECT_EQ(service_.send_to(0x401, bytes_of("x")), Status::kWouldBlock);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(service_.send_to(0x401, bytes_of("x"), 20'000'000), Status::kTimeout);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(20));
  EXPECT_EQ(lite_.stats().tx_messages, kRingNum);
}

TEST_F(LiteScripted, RepliesMadeInsideProcessAreVisibleAtItsEndWithOneKick) {
  // Replies from the callbacks are published once, at the end, and the host is kicked once (it asks for
  // every kick: no event index, no suppression flag).
  start_lite();
  (void)next_sent();  // the announcement
  const int kicks = to_driver_.total.load();
  LiteEndpoint echo;
  ASSERT_EQ(lite_.create_endpoint(echo, "", 0x600, kAddrAny,
                                  [](LiteEndpoint& self, const LiteMessage& m) {
                                    EXPECT_EQ(self.send_to(m.src, m.payload), Status::kOk);
                                  }),
            Status::kOk);
  for (std::uint32_t i = 0; i < 8; ++i) {
    write_message(tx_buffer(i), 0x600, std::to_string(i), 1);
    offer(tx_buffer(i), kHeaderSize + 1);
  }
  ASSERT_EQ(lite_.process(), Status::kOk);
  EXPECT_EQ(to_driver_.total.load() - kicks, 2) << "one for the replies, one for the returned buffers";
  for (std::uint32_t i = 0; i < 8; ++i) EXPECT_EQ(next_sent(), std::to_string(i));
}

TEST_F(LiteScripted, StartWantsDriverOkAnRpmsgDeviceAndRingsInsideTheSharedMemory) {
  LiteConfig c;
  c.shm = shm_;
  c.vdev = &device_transport_;
  driver_transport_.set_status(virtio::kStatusAcknowledge | virtio::kStatusDriver);
  EXPECT_EQ(lite_.start(c, lite_storage_), Status::kWouldBlock);
  driver_transport_.set_status(virtio::kStatusDriverOk);
  LiteConfig too_small = c;
  too_small.shm = *shm_.subregion(0, kRing1);  // vring1 is beyond it
  EXPECT_EQ(lite_.start(too_small, lite_storage_), Status::kOutOfRange);
  EXPECT_FALSE(lite_.running());
  EXPECT_EQ(lite_.start(c, std::span<std::uint64_t>{}), Status::kNoMemory);  // no room for the rings' heads
  EXPECT_EQ(lite_.start(c, lite_storage_), Status::kOk);
  lite_.stop();
  LiteConfig no_transport = c;
  no_transport.vdev = nullptr;
  EXPECT_EQ(lite_.start(no_transport, lite_storage_), Status::kInvalidArgument);
}

}  // namespace
}  // namespace amp::rpmsg
