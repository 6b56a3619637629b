// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rpmsg/device.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "amp/metal/time.hpp"
#include "loopback_fixture.hpp"

namespace amp::rpmsg {
namespace {

using testing::bytes_of;
using testing::kPool;
using testing::kRing0;
using testing::kRing1;
using testing::kShmSize;
using testing::Loopback;
using testing::string_of;

/// Collects what an endpoint receives.
struct Inbox {
  std::vector<std::string> messages;
  std::vector<std::uint32_t> sources;
  int unbinds = 0;
  Endpoint::ReceiveFn receiver() {
    return [this](Endpoint&, const Message& m) {
      messages.push_back(string_of(m.payload));
      sources.push_back(m.src);
    };
  }
  Endpoint::UnbindFn unbinder() {
    return [this](Endpoint&) { ++unbinds; };
  }
};

TEST(RpmsgWire, HeaderGoldenBytes) {
  std::byte raw[kHeaderSize];
  encode(Header{0x400, 0x35, 0, 40, 0}, raw);
  const std::uint8_t expected[16] = {0x00, 0x04, 0, 0, 0x35, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0};
  EXPECT_EQ(std::memcmp(raw, expected, 16), 0);
  const Header h = decode_header(raw);
  EXPECT_EQ(h.src, 0x400U);
  EXPECT_EQ(h.dst, 53U);
  EXPECT_EQ(h.len, 40);
}

TEST(RpmsgWire, NameServiceGoldenBytes) {
  std::byte raw[kNsMessageSize];
  ASSERT_EQ(encode_ns("rpmsg-openamp-demo-channel", 0x400, kNsCreate, raw), Status::kOk);
  std::uint8_t expected[40] = {};
  std::memcpy(expected, "rpmsg-openamp-demo-channel", 26);
  expected[32] = 0x00;
  expected[33] = 0x04;
  EXPECT_EQ(std::memcmp(raw, expected, 40), 0);
  auto m = decode_ns(raw);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->name_view(), "rpmsg-openamp-demo-channel");
  EXPECT_EQ(m->addr, 0x400U);
  EXPECT_EQ(m->flags, kNsCreate);
}

TEST(RpmsgWire, NameServiceRejects) {
  std::byte raw[kNsMessageSize];
  ASSERT_EQ(encode_ns("x", 1, kNsDestroy, raw), Status::kOk);
  EXPECT_TRUE(decode_ns(raw));
  EXPECT_EQ(decode_ns(std::span(raw).first(39)).error(), Status::kMalformed);
  std::memset(raw, 'A', kNameSize);  // no terminator
  EXPECT_EQ(decode_ns(raw).error(), Status::kMalformed);
  ASSERT_EQ(encode_ns("x", 1, 7, raw), Status::kOk);  // unknown flag
  EXPECT_EQ(decode_ns(raw).error(), Status::kMalformed);
  ASSERT_EQ(encode_ns("x", kAddrAny, kNsCreate, raw), Status::kOk);  // a channel nothing can write to
  EXPECT_EQ(decode_ns(raw).error(), Status::kMalformed);
  EXPECT_EQ(encode_ns(std::string(32, 'n'), 1, kNsCreate, raw), Status::kInvalidArgument);
}

TEST_F(Loopback, StartsNegotiatesAndAnnounces) {
  start();
  EXPECT_TRUE(driver_.running());
  EXPECT_TRUE(device_.running());
  EXPECT_TRUE(driver_.name_service());
  EXPECT_TRUE(device_.name_service());
  EXPECT_TRUE(driver_.event_idx());
  EXPECT_EQ(driver_.payload_size(), 496U);
  EXPECT_EQ(device_transport_.status(), virtio::kStatusAcknowledge | virtio::kStatusDriver |
                                            virtio::kStatusFeaturesOk | virtio::kStatusDriverOk);
  EXPECT_EQ(device_transport_.driver_features(), 1U | (1U << virtio::kFeatureEventIdx));
}

TEST_F(Loopback, NameServiceBindsAndEchoWorksDeviceToDriver) {
  start();
  Inbox host;
  Endpoint host_ep;
  driver_.set_name_service_handler([&](Device& d, std::string_view name, std::uint32_t remote) {
    ASSERT_EQ(d.create_endpoint(host_ep, name, kAddrAny, remote, host.receiver()), Status::kOk);
  });
  Endpoint echo;
  ASSERT_EQ(device_.create_endpoint(
                echo, "rpmsg-echo", kAddrAny, kAddrAny,
                [](Endpoint& ep, const Message& m) { ASSERT_EQ(ep.send(m.payload), Status::kOk); }),
            Status::kOk);
  EXPECT_EQ(echo.address(), kFirstDynamicAddress);
  pump();
  ASSERT_TRUE(host_ep.attached()) << "the host created an endpoint for the announcement";
  EXPECT_EQ(host_ep.name(), "rpmsg-echo");
  EXPECT_EQ(host_ep.remote_address(), echo.address());
  for (int i = 0; i < 600; ++i) {  // more than the ring holds: buffers must be recycled
    ASSERT_EQ(host_ep.send(bytes_of("ping " + std::to_string(i))), Status::kOk) << i;
    pump();
  }
  ASSERT_EQ(host.messages.size(), 600U);
  EXPECT_EQ(host.messages[599], "ping 599");
  EXPECT_EQ(host.sources[0], echo.address());
  EXPECT_EQ(echo.remote_address(), host_ep.address()) << "implicit binding on the first message";
  EXPECT_EQ(driver_.stats().rx_malformed, 0U);
  EXPECT_EQ(device_.stats().tx_messages, 601U);  // the announcement and 600 echoes
}

TEST_F(Loopback, OneRolesStorageStartsThatRoleOnly) {
  layout();
  auto driver_only = std::make_unique<DriverRoleStorage<256>>();
  auto device_only = std::make_unique<DeviceRoleStorage<256>>();
  EXPECT_EQ(driver_.start(config(Role::kDevice), *driver_only), Status::kInvalidArgument);
  EXPECT_EQ(device_.start(config(Role::kDriver), *device_only), Status::kInvalidArgument);
  EXPECT_EQ(device_.start_driver_role(config(Role::kDevice), driver_only->slots, driver_only->tx_free),
            Status::kInvalidArgument);
  EXPECT_FALSE(driver_.running());
  EXPECT_FALSE(device_.running());
  ASSERT_EQ(driver_.start(config(Role::kDriver), *driver_only), Status::kOk);
  ASSERT_EQ(device_.start(config(Role::kDevice), *device_only), Status::kOk);
  EXPECT_EQ(driver_.role(), Role::kDriver);
  EXPECT_EQ(device_.role(), Role::kDevice);
  Inbox host;
  Endpoint host_ep;
  driver_.set_name_service_handler([&](Device& d, std::string_view name, std::uint32_t remote) {
    ASSERT_EQ(d.create_endpoint(host_ep, name, kAddrAny, remote, host.receiver()), Status::kOk);
  });
  Endpoint echo;
  ASSERT_EQ(device_.create_endpoint(
                echo, "rpmsg-echo", kAddrAny, kAddrAny,
                [](Endpoint& ep, const Message& m) { ASSERT_EQ(ep.send(m.payload), Status::kOk); }),
            Status::kOk);
  pump();
  ASSERT_TRUE(host_ep.attached());
  for (int i = 0; i < 300; ++i) {  // more than the ring holds
    ASSERT_EQ(host_ep.send(bytes_of("ping " + std::to_string(i))), Status::kOk) << i;
    pump();
  }
  ASSERT_EQ(host.messages.size(), 300U);
  EXPECT_EQ(host.messages[299], "ping 299");
}

TEST_F(Loopback, EchoWorksWithTheRolesSwapped) {
  // The announcing service lives on the driver side this time.
  start();
  Inbox remote;
  Endpoint remote_ep;
  device_.set_name_service_handler([&](Device& d, std::string_view name, std::uint32_t addr) {
    ASSERT_EQ(d.create_endpoint(remote_ep, name, kAddrAny, addr, remote.receiver()), Status::kOk);
  });
  Endpoint echo;
  ASSERT_EQ(driver_.create_endpoint(
                echo, "host-echo", 0x500, kAddrAny,
                [](Endpoint& ep, const Message& m) { ASSERT_EQ(ep.send(m.payload), Status::kOk); }),
            Status::kOk);
  pump();
  ASSERT_TRUE(remote_ep.attached());
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(remote_ep.send(bytes_of(std::string(static_cast<std::size_t>(i % 496) + 1, 'x'))), Status::kOk);
    pump();
  }
  ASSERT_EQ(remote.messages.size(), 300U);
  EXPECT_EQ(remote.messages[299].size(), 300U % 496 + 0U);
  EXPECT_EQ(remote.sources[0], 0x500U);
}

TEST_F(Loopback, MessageGoldenBytesInSharedMemory) {
  start();
  Endpoint host;
  ASSERT_EQ(driver_.create_endpoint(host, "", 0x401, 0x400, nullptr), Status::kOk);
  ASSERT_EQ(host.send(bytes_of("hi")), Status::kOk);
  // The first transmit buffer follows the 256 receive buffers in the pool.
  const std::byte* tx = at(kPool + 256 * 512);
  const std::uint8_t expected[18] = {0x01, 0x04, 0, 0, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 'h', 'i'};
  EXPECT_EQ(std::memcmp(tx, expected, sizeof expected), 0);
  // ...published as descriptor 0 of vring1 with length 18, read-only.
  std::uint64_t addr;
  std::uint32_t len;
  std::uint16_t flags;
  std::memcpy(&addr, at(kRing1), 8);
  std::memcpy(&len, at(kRing1 + 8), 4);
  std::memcpy(&flags, at(kRing1 + 12), 2);
  EXPECT_EQ(addr, kPool + 256 * 512);
  EXPECT_EQ(len, 18U);
  EXPECT_EQ(flags, 0);
}

TEST_F(Loopback, AnnouncementGoldenBytes) {
  start();
  Endpoint ep;
  ASSERT_EQ(device_.create_endpoint(ep, "rpmsg-openamp-demo-channel", kAddrAny, kAddrAny, nullptr),
            Status::kOk);
  // The device wrote it into the driver's first receive buffer (pool offset 0).
  const std::byte* rx = at(kPool);
  std::uint8_t expected[56] = {0x00, 0x04, 0, 0, 0x35, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0};
  std::memcpy(expected + 16, "rpmsg-openamp-demo-channel", 26);
  expected[16 + 33] = 0x04;
  EXPECT_EQ(std::memcmp(rx, expected, sizeof expected), 0);
}

TEST_F(Loopback, AddressAllocationAndExhaustion) {
  layout();
  auto dev_cfg = config(Role::kDevice);
  dev_cfg.dynamic_addresses = 3;
  start(config(Role::kDriver), dev_cfg);
  Endpoint a, b, c, d, fixed, dup, ns;
  ASSERT_EQ(device_.create_endpoint(a, "", kAddrAny, kAddrAny, nullptr), Status::kOk);
  ASSERT_EQ(device_.create_endpoint(b, "", kAddrAny, kAddrAny, nullptr), Status::kOk);
  ASSERT_EQ(device_.create_endpoint(c, "", kAddrAny, kAddrAny, nullptr), Status::kOk);
  EXPECT_EQ(a.address(), 1024U);
  EXPECT_EQ(b.address(), 1025U);
  EXPECT_EQ(c.address(), 1026U);
  EXPECT_EQ(device_.create_endpoint(d, "", kAddrAny, kAddrAny, nullptr), Status::kNoMemory);
  EXPECT_FALSE(d.attached());
  b.destroy();
  ASSERT_EQ(device_.create_endpoint(d, "", kAddrAny, kAddrAny, nullptr), Status::kOk);
  EXPECT_EQ(d.address(), 1025U) << "a freed address is reused";
  ASSERT_EQ(device_.create_endpoint(fixed, "", 30, kAddrAny, nullptr), Status::kOk);
  EXPECT_EQ(device_.create_endpoint(dup, "", 30, kAddrAny, nullptr), Status::kAlreadyExists);
  EXPECT_EQ(device_.create_endpoint(ns, "", kNsAddress, kAddrAny, nullptr), Status::kAlreadyExists);
  EXPECT_EQ(device_.create_endpoint(a, "", 31, kAddrAny, nullptr), Status::kBusy) << "already created";
  EXPECT_EQ(device_.create_endpoint(dup, std::string(32, 'n'), 31, kAddrAny, nullptr),
            Status::kInvalidArgument);
}

/// Endpoints on a device with an AddressIndex, and what each receives.
struct Routed {
  explicit Routed(std::size_t count) : inboxes(count), eps(count), alive(count, false) {}
  std::vector<std::uint32_t> addrs;
  std::vector<Inbox> inboxes;
  std::vector<Endpoint> eps;
  std::vector<bool> alive;
};

/// Sends one message from `driver` to each of `r.addrs` (pumping after each) and checks that each endpoint
/// still alive got its own as its latest.
void send_to_each(Device& driver, Routed& r, const std::string& tag, const std::function<void()>& pump) {
  Endpoint tx;
  ASSERT_EQ(driver.create_endpoint(tx, "", kAddrAny, kAddrAny, nullptr), Status::kOk);
  for (std::size_t i = 0; i < r.addrs.size(); ++i) {
    ASSERT_EQ(tx.send_to(r.addrs[i], bytes_of(tag + std::to_string(r.addrs[i]))), Status::kOk) << i;
    pump();
  }
  for (std::size_t i = 0; i < r.addrs.size(); ++i) {
    if (!r.alive[i]) continue;
    ASSERT_FALSE(r.inboxes[i].messages.empty()) << r.addrs[i];
    EXPECT_EQ(r.inboxes[i].messages.back(), tag + std::to_string(r.addrs[i])) << "each endpoint gets its own";
  }
}

TEST_F(Loopback, EndpointsBeyondTheIndexAreFoundTooAndTakeTheRoomOfDestroyedOnes) {
  // An index of 8: the other endpoints are found on the list, and each destroy of an indexed one moves one
  // of them into the index. Whichever way each is found, each message reaches its endpoint and no other,
  // and a destroyed endpoint's address is unroutable.
  std::vector<AddressIndex::Slot> slots(AddressIndex::slots_for(8));
  Device device(slots);
  ASSERT_NO_FATAL_FAILURE(start_with(device));
  constexpr std::size_t kCount = 40;
  Routed r(kCount);
  for (std::size_t i = 0; i < kCount; ++i) {
    r.addrs.push_back(0x2000 + static_cast<std::uint32_t>(i) * 7);
    ASSERT_EQ(device.create_endpoint(r.eps[i], "", r.addrs[i], kAddrAny, r.inboxes[i].receiver()),
              Status::kOk);
    r.alive[i] = true;
  }
  const auto pump_fn = [&] { pump(device); };
  ASSERT_NO_FATAL_FAILURE(send_to_each(driver_, r, "first ", pump_fn));
  for (std::size_t i = 0; i < kCount; ++i) EXPECT_EQ(r.inboxes[i].messages.size(), 1U) << r.addrs[i];
  // Destroy the oldest (indexed first) and every third one.
  for (std::size_t i = 0; i < kCount; ++i) {
    if (i < 8 || i % 3 == 0) {
      r.eps[i].destroy();
      r.alive[i] = false;
    }
  }
  ASSERT_NO_FATAL_FAILURE(send_to_each(driver_, r, "second ", pump_fn));
  std::uint64_t dead = 0;
  for (std::size_t i = 0; i < kCount; ++i) {
    EXPECT_EQ(r.inboxes[i].messages.size(), r.alive[i] ? 2U : 1U) << r.addrs[i];
    if (!r.alive[i]) ++dead;
  }
  EXPECT_EQ(device.stats().rx_unroutable, dead);
  // The freed addresses can be taken again, and are found.
  for (std::size_t i = 0; i < kCount; ++i) {
    if (r.alive[i]) continue;
    ASSERT_EQ(device.create_endpoint(r.eps[i], "", r.addrs[i], kAddrAny, r.inboxes[i].receiver()),
              Status::kOk);
    r.alive[i] = true;
  }
  ASSERT_NO_FATAL_FAILURE(send_to_each(driver_, r, "third ", pump_fn));
  EXPECT_EQ(device.stats().rx_unroutable, dead);
  for (auto& ep : r.eps) ep.destroy();
}

TEST_F(Loopback, ADeviceWithAnIndexOf1024RoutesToEachOf1024Endpoints) {
  std::vector<AddressIndex::Slot> slots(AddressIndex::slots_for(1024));
  Device device(slots);
  ASSERT_NO_FATAL_FAILURE(start_with(device));
  constexpr std::size_t kCount = 1024;
  Routed r(kCount);
  for (std::size_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(device.create_endpoint(r.eps[i], "", kAddrAny, kAddrAny, r.inboxes[i].receiver()), Status::kOk);
    r.addrs.push_back(r.eps[i].address());
    r.alive[i] = true;
  }
  EXPECT_EQ(r.addrs.back(), kFirstDynamicAddress + 1023);
  ASSERT_NO_FATAL_FAILURE(send_to_each(driver_, r, "to ", [&] { pump(device); }));
  for (std::size_t i = 0; i < kCount; ++i) EXPECT_EQ(r.inboxes[i].messages.size(), 1U) << r.addrs[i];
  EXPECT_EQ(device.stats().rx_unroutable, 0U);
  for (auto& ep : r.eps) ep.destroy();
}

TEST_F(Loopback, BufferSizeAndCountPerDirection) {
  layout();
  auto drv = config(Role::kDriver);
  drv.rx_buffers = 64;
  drv.tx_buffers = 32;
  drv.rx_buffer_size = 512;
  drv.tx_buffer_size = 1024;
  auto dev = config(Role::kDevice);
  dev.rx_buffer_size = 1024;  // what it expects of the driver's transmit buffers
  dev.tx_buffer_size = 512;
  start(drv, dev);
  EXPECT_EQ(driver_.payload_size(), 1008U);
  EXPECT_EQ(device_.payload_size(), 496U);
  std::string got;
  Endpoint rx, tx, back;
  ASSERT_EQ(device_.create_endpoint(rx, "", 0x500, kAddrAny,
                                    [&](Endpoint&, const Message& m) { got = string_of(m.payload); }),
            Status::kOk);
  ASSERT_EQ(driver_.create_endpoint(tx, "", kAddrAny, 0x500, nullptr), Status::kOk);
  const std::string big(1008, 'b');
  ASSERT_EQ(tx.send(bytes_of(big)), Status::kOk);
  pump();
  EXPECT_EQ(got, big);
  EXPECT_EQ(tx.send(bytes_of(std::string(1009, 'b'))), Status::kTooLarge);
  // 32 transmit buffers, 64 receive buffers.
  for (int i = 0; i < 32; ++i) ASSERT_EQ(tx.try_send(bytes_of("t")), Status::kOk) << i;
  EXPECT_EQ(tx.try_send(bytes_of("t")), Status::kWouldBlock);
  ASSERT_EQ(device_.create_endpoint(back, "", kAddrAny, tx.address(), nullptr), Status::kOk);
  EXPECT_EQ(back.send(bytes_of(std::string(497, 'x'))), Status::kTooLarge);
  for (int i = 0; i < 64; ++i) ASSERT_EQ(back.try_send(bytes_of("r")), Status::kOk) << i;
  EXPECT_EQ(back.try_send(bytes_of("r")), Status::kWouldBlock);
}

TEST_F(Loopback, BadBufferSizesAreRefused) {
  layout();
  auto drv = config(Role::kDriver);
  drv.tx_buffer_size = 16;  // no room for a payload
  EXPECT_EQ(driver_.start(drv, driver_storage_), Status::kInvalidArgument);
  drv.tx_buffer_size = 500;  // not a multiple of 8
  EXPECT_EQ(driver_.start(drv, driver_storage_), Status::kInvalidArgument);
  drv.tx_buffer_size = 0;
  drv.buffer_size = 4096;  // 512 buffers of 4 KiB do not fit the 256 KiB pool
  EXPECT_EQ(driver_.start(drv, driver_storage_), Status::kNoMemory);
}

TEST_F(Loopback, OversizeMessagesAreRefusedNotTruncated) {
  start();
  Endpoint ep;
  ASSERT_EQ(driver_.create_endpoint(ep, "", kAddrAny, 0x400, nullptr), Status::kOk);
  const std::string max(496, 'm');
  const std::string over(497, 'o');
  EXPECT_EQ(ep.send(bytes_of(over)), Status::kTooLarge);
  EXPECT_EQ(driver_.stats().tx_messages, 0U);
  EXPECT_EQ(ep.send(bytes_of(max)), Status::kOk);
  auto buf = ep.get_tx_buffer();
  ASSERT_TRUE(buf);
  EXPECT_EQ(buf->payload().size(), 496U);
  EXPECT_EQ(ep.send_nocopy(*buf, 497), Status::kTooLarge);
  EXPECT_TRUE(*buf) << "a refused buffer stays with the caller";
}

TEST_F(Loopback, SendsTimeOutWhenNoBufferComesBack) {
  start();
  Endpoint ep;
  ASSERT_EQ(device_.create_endpoint(ep, "", kAddrAny, 0x400, nullptr), Status::kOk);
  // The driver never processes: after its 256 receive buffers the device has nowhere to write.
  for (int i = 0; i < 256; ++i) ASSERT_EQ(ep.try_send(bytes_of("x")), Status::kOk) << i;
  EXPECT_EQ(ep.try_send(bytes_of("x")), Status::kWouldBlock);
  const auto t0 = metal::monotonic_ns();
  EXPECT_EQ(ep.send(bytes_of("x"), 20'000'000), Status::kTimeout);
  EXPECT_GE(metal::monotonic_ns() - t0, 20'000'000U);
  // Once the driver processes (and returns the buffers), sending works again.
  pump();
  EXPECT_EQ(ep.try_send(bytes_of("x")), Status::kOk);
}

TEST_F(Loopback, DriverSideTimesOutWhenTheDeviceDoesNotConsume) {
  start();
  Endpoint ep;
  ASSERT_EQ(driver_.create_endpoint(ep, "", kAddrAny, 0x400, nullptr), Status::kOk);
  for (int i = 0; i < 256; ++i) ASSERT_EQ(ep.try_send(bytes_of("x")), Status::kOk) << i;
  EXPECT_EQ(ep.try_send(bytes_of("x")), Status::kWouldBlock);
  EXPECT_EQ(ep.send(bytes_of("x"), 5'000'000), Status::kTimeout);
  pump();
  EXPECT_EQ(ep.try_send(bytes_of("x")), Status::kOk);
}

TEST_F(Loopback, BlockedSenderWakesWhenABufferComesBack) {
  start();
  Endpoint ep;
  ASSERT_EQ(device_.create_endpoint(ep, "", kAddrAny, 0x400, nullptr), Status::kOk);
  for (int i = 0; i < 256; ++i) ASSERT_EQ(ep.try_send(bytes_of("x")), Status::kOk);
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    EXPECT_EQ(ep.send(bytes_of("late"), 10'000'000'000), Status::kOk);
    sent = true;
  });
  // Wait until the sender is blocked (asked the driver for kicks), then let the driver return buffers.
  while (to_driver_.pending.load() == 0 || !device_.running()) std::this_thread::yield();
  while (!sent) {
    if (to_device_.pending.exchange(0) != 0) {
      ASSERT_EQ(device_.process(), Status::kOk);
    }
    if (to_driver_.pending.exchange(0) != 0) {
      ASSERT_EQ(driver_.process(), Status::kOk);
    }
    std::this_thread::yield();
  }
  sender.join();
  EXPECT_TRUE(sent);
}

// An echo from inside a receive callback when the peer has no buffer free at that moment: the thread that
// would be woken by process() is the one blocked in the callback, so the send must look at the ring itself.
TEST_F(Loopback, SendFromACallbackWaitsForABufferWithoutDeadlock) {
  start();
  Inbox inbox;
  Endpoint host_ep;
  ASSERT_EQ(driver_.create_endpoint(host_ep, "", 0x500, kAddrAny, inbox.receiver()), Status::kOk);
  std::atomic<Status> echo_result{Status::kInternal};
  Endpoint echo;
  ASSERT_EQ(device_.create_endpoint(echo, "", 0x400, kAddrAny,
                                    [&](Endpoint& self, const Message& m) {
                                      echo_result.store(self.send_to(m.src, m.payload));  // no timeout
                                    }),
            Status::kOk);
  // Use up every buffer the driver gave the device to send in.
  for (int i = 0; i < 256; ++i) ASSERT_EQ(echo.send_to(0x500, bytes_of("x"), 0), Status::kOk);
  EXPECT_EQ(echo.send_to(0x500, bytes_of("x"), 0), Status::kWouldBlock);
  ASSERT_EQ(host_ep.send_to(0x400, bytes_of("ping")), Status::kOk);
  std::thread remote([&] { EXPECT_EQ(device_.process(), Status::kOk); });  // blocks inside the callback
  while (device_.stats().rx_messages == 0) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(driver_.process(), Status::kOk);  // takes the 256 messages, gives the buffers back
  // (the kick it sends goes nowhere: the device's processing thread is the blocked one)
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (echo_result.load() == Status::kInternal && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const Status result = echo_result.load();
  if (result == Status::kInternal) device_.stop();  // deadlocked: release the sender so the test can end
  remote.join();
  EXPECT_EQ(result, Status::kOk) << "the send inside the callback never saw the buffers come back";
  ASSERT_EQ(driver_.process(), Status::kOk);
  ASSERT_FALSE(inbox.messages.empty());
  EXPECT_EQ(inbox.messages.back(), "ping");
}

TEST_F(Loopback, ZeroCopySendAndUnsentBufferGoesBack) {
  start();
  Inbox inbox;
  Endpoint rx, tx;
  ASSERT_EQ(driver_.create_endpoint(rx, "", 0x500, kAddrAny, inbox.receiver()), Status::kOk);
  ASSERT_EQ(device_.create_endpoint(tx, "", kAddrAny, 0x500, nullptr), Status::kOk);
  {
    auto b = tx.get_tx_buffer();
    ASSERT_TRUE(b);
    std::memcpy(b->payload().data(), "zero-copy", 9);
    ASSERT_EQ(tx.send_nocopy(*b, 9), Status::kOk);
    EXPECT_FALSE(*b) << "consumed";
  }
  pump();
  ASSERT_EQ(inbox.messages.size(), 1U);
  EXPECT_EQ(inbox.messages[0], "zero-copy");
  // Take every buffer, send none: they all come back when the handles die.
  {
    std::vector<TxBuffer> held;
    for (;;) {
      auto b = tx.get_tx_buffer(0);
      if (!b) {
        EXPECT_EQ(b.error(), Status::kWouldBlock);
        break;
      }
      held.push_back(std::move(*b));
    }
    EXPECT_EQ(held.size(), 256U);  // every receive buffer of the driver
    EXPECT_EQ(tx.try_send(bytes_of("none left")), Status::kWouldBlock);
  }
  for (int i = 0; i < 256; ++i) ASSERT_EQ(tx.try_send(bytes_of("again")), Status::kOk) << i;
  pump();
  EXPECT_EQ(inbox.messages.size(), 257U);
}

TEST_F(Loopback, HeldReceiveBuffersStayUntilReleased) {
  start();
  std::vector<RxBuffer> held;
  Endpoint rx, tx;
  ASSERT_EQ(driver_.create_endpoint(rx, "", 0x500, kAddrAny,
                                    [&](Endpoint&, const Message& m) { held.push_back(m.hold()); }),
            Status::kOk);
  ASSERT_EQ(device_.create_endpoint(tx, "", kAddrAny, 0x500, nullptr), Status::kOk);
  for (int i = 0; i < 256; ++i) {
    ASSERT_EQ(tx.try_send(bytes_of("held " + std::to_string(i))), Status::kOk);
    pump();
  }
  ASSERT_EQ(held.size(), 256U);
  EXPECT_EQ(string_of(held[7].payload()), "held 7") << "still readable after the callback";
  EXPECT_EQ(held[7].src(), tx.address());
  // Every receive buffer is held by the driver's application: the device cannot send.
  EXPECT_EQ(tx.try_send(bytes_of("blocked")), Status::kWouldBlock);
  held[3].release();
  pump();
  EXPECT_EQ(tx.try_send(bytes_of("one more")), Status::kOk);
  held.clear();  // releases the rest
  pump();
  for (int i = 0; i < 200; ++i) ASSERT_EQ(tx.try_send(bytes_of("free")), Status::kOk);
}

TEST_F(Loopback, NameServiceDestroyUnbindsThePeer) {
  start();
  Inbox host;
  Endpoint host_ep;
  driver_.set_name_service_handler([&](Device& d, std::string_view name, std::uint32_t remote) {
    ASSERT_EQ(d.create_endpoint(host_ep, name, kAddrAny, remote, host.receiver(), host.unbinder()),
              Status::kOk);
  });
  {
    Endpoint svc;
    ASSERT_EQ(device_.create_endpoint(svc, "svc", kAddrAny, kAddrAny, nullptr), Status::kOk);
    pump();
    ASSERT_EQ(host_ep.remote_address(), svc.address());
  }  // svc destroyed: announces its destruction
  pump();
  EXPECT_EQ(host.unbinds, 1);
  EXPECT_EQ(host_ep.remote_address(), kAddrAny);
  EXPECT_EQ(host_ep.send(bytes_of("anyone?")), Status::kNotFound);
}

TEST_F(Loopback, AWithdrawalUnbindsEveryEndpointBoundToTheService) {
  // A broker's clients each hold an endpoint bound to the same service: its withdrawal ends them all, and
  // leaves alone an endpoint of another name bound to the same address.
  start();
  Endpoint svc;
  ASSERT_EQ(device_.create_endpoint(svc, "svc", kAddrAny, kAddrAny, nullptr), Status::kOk);
  pump();
  Inbox a, b, other;
  Endpoint ea, eb, eo;
  ASSERT_EQ(driver_.create_endpoint(ea, "svc", kAddrAny, svc.address(), a.receiver(), a.unbinder()),
            Status::kOk);
  ASSERT_EQ(driver_.create_endpoint(eb, "svc", kAddrAny, svc.address(), b.receiver(), b.unbinder()),
            Status::kOk);
  ASSERT_EQ(driver_.create_endpoint(eo, "else", kAddrAny, svc.address(), other.receiver(), other.unbinder()),
            Status::kOk);
  svc.destroy();  // announces the withdrawal
  pump();
  EXPECT_EQ(a.unbinds, 1);
  EXPECT_EQ(b.unbinds, 1);
  EXPECT_EQ(ea.remote_address(), kAddrAny);
  EXPECT_EQ(eb.remote_address(), kAddrAny);
  EXPECT_EQ(other.unbinds, 0) << "another name: not the withdrawn service's";
  EXPECT_NE(eo.remote_address(), kAddrAny);
}

TEST_F(Loopback, AnnouncementsBeforeAHandlerAreReplayedToIt) {
  start();
  Endpoint a, b, gone;
  ASSERT_EQ(device_.create_endpoint(a, "first", kAddrAny, kAddrAny, nullptr), Status::kOk);
  ASSERT_EQ(device_.create_endpoint(gone, "withdrawn", kAddrAny, kAddrAny, nullptr), Status::kOk);
  ASSERT_EQ(device_.create_endpoint(b, "second", kAddrAny, kAddrAny, nullptr), Status::kOk);
  gone.destroy();  // announces its destruction: the pending announcement is forgotten
  pump();
  std::vector<std::pair<std::string, std::uint32_t>> seen;
  driver_.set_name_service_handler([&](Device&, std::string_view name, std::uint32_t addr) {
    seen.emplace_back(std::string(name), addr);
  });
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[0], std::make_pair(std::string("first"), a.address()));
  EXPECT_EQ(seen[1], std::make_pair(std::string("second"), b.address()));
}

TEST_F(Loopback, AnnouncementForAnExistingEndpointBindsIt) {
  start();
  Endpoint host_ep;
  ASSERT_EQ(driver_.create_endpoint(host_ep, "svc", 0x500, kAddrAny, nullptr), Status::kOk);
  int handler_calls = 0;
  driver_.set_name_service_handler([&](Device&, std::string_view, std::uint32_t) { ++handler_calls; });
  Endpoint svc;
  ASSERT_EQ(device_.create_endpoint(svc, "svc", kAddrAny, kAddrAny, nullptr), Status::kOk);
  pump();
  EXPECT_EQ(handler_calls, 0);
  EXPECT_EQ(host_ep.remote_address(), svc.address());
}

TEST_F(Loopback, StopUnbindsEndpointsAndFailsSends) {
  start();
  Inbox inbox;
  Endpoint ep;
  ASSERT_EQ(driver_.create_endpoint(ep, "", 0x500, 0x400, inbox.receiver(), inbox.unbinder()), Status::kOk);
  driver_.stop();
  EXPECT_EQ(inbox.unbinds, 1);
  EXPECT_FALSE(driver_.running());
  EXPECT_EQ(ep.send_to(0x400, bytes_of("x")), Status::kClosed);
  // Unbound by the stop: the send says the device stopped, not that the peer is unknown.
  EXPECT_EQ(ep.remote_address(), kAddrAny);
  EXPECT_EQ(ep.send(bytes_of("x")), Status::kClosed);
  EXPECT_EQ(ep.get_tx_buffer(0).error(), Status::kClosed);
  EXPECT_EQ(driver_.process(), Status::kClosed);
}

TEST_F(Loopback, StopWakesABlockedSender) {
  start();
  Endpoint ep;
  ASSERT_EQ(device_.create_endpoint(ep, "", kAddrAny, 0x400, nullptr), Status::kOk);
  for (int i = 0; i < 256; ++i) ASSERT_EQ(ep.try_send(bytes_of("x")), Status::kOk);
  std::atomic<bool> stop_called{false};
  bool returned_after_stop = false;
  Status result = Status::kOk;
  std::thread sender([&] {
    result = ep.send_to(0x400, bytes_of("x"));  // no timeout: only stop() can end it
    returned_after_stop = stop_called.load();
  });
  metal::sleep_ns(20'000'000);
  stop_called = true;
  device_.stop();
  sender.join();
  EXPECT_EQ(result, Status::kClosed);
  EXPECT_TRUE(returned_after_stop);
}

TEST_F(Loopback, EndpointDestroyedInsideItsOwnCallback) {
  start();
  Endpoint rx, tx;
  int calls = 0;
  ASSERT_EQ(driver_.create_endpoint(rx, "", 0x500, kAddrAny,
                                    [&](Endpoint& self, const Message&) {
                                      ++calls;
                                      self.destroy();
                                    }),
            Status::kOk);
  ASSERT_EQ(device_.create_endpoint(tx, "", kAddrAny, 0x500, nullptr), Status::kOk);
  ASSERT_EQ(tx.send(bytes_of("1")), Status::kOk);
  ASSERT_EQ(tx.send(bytes_of("2")), Status::kOk);
  pump();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(rx.attached());
  EXPECT_EQ(driver_.stats().rx_unroutable, 1U);
}

TEST_F(Loopback, SpinModeSendsWithoutBlocking) {
  layout();
  auto drv = config(Role::kDriver);
  auto dev = config(Role::kDevice);
  drv.wait_mode = WaitMode::kSpin;
  dev.wait_mode = WaitMode::kSpin;
  start(drv, dev);
  Inbox inbox;
  Endpoint rx, tx;
  ASSERT_EQ(driver_.create_endpoint(rx, "", 0x500, kAddrAny, inbox.receiver()), Status::kOk);
  ASSERT_EQ(device_.create_endpoint(tx, "", kAddrAny, 0x500, nullptr), Status::kOk);
  std::atomic<bool> done{false};
  std::thread poller([&] {
    while (!done) (void)driver_.process();
  });
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(tx.send(bytes_of("s")), Status::kOk);
  while (driver_.stats().rx_messages < 2000) std::this_thread::yield();
  done = true;
  poller.join();
  EXPECT_EQ(inbox.messages.size(), 2000U);
}

TEST_F(Loopback, SingleThreadedDevicesTakeNoLockAndSpinForBuffers) {
  layout();
  auto drv = config(Role::kDriver);
  auto dev = config(Role::kDevice);
  drv.single_threaded = true;
  dev.single_threaded = true;
  start(drv, dev);
  Inbox inbox;
  Endpoint rx, tx;
  ASSERT_EQ(driver_.create_endpoint(rx, "", 0x500, kAddrAny, inbox.receiver()), Status::kOk);
  ASSERT_EQ(device_.create_endpoint(tx, "", kAddrAny, 0x500, nullptr), Status::kOk);
  for (int i = 0; i < 256; ++i) ASSERT_EQ(tx.try_send(bytes_of("s")), Status::kOk);
  // No buffer comes back while nobody processes: a blocking send spins until its deadline.
  EXPECT_EQ(tx.send(bytes_of("s"), 2'000'000), Status::kTimeout);
  pump();
  EXPECT_EQ(inbox.messages.size(), 256U);
  // Sends are held back until a burst is full, process() runs, or flush() is called.
  ASSERT_EQ(tx.send(bytes_of("held"), 1'000'000'000), Status::kOk);
  pump();
  EXPECT_EQ(inbox.messages.size(), 256U) << "not visible yet";
  device_.flush();
  pump();
  ASSERT_EQ(inbox.messages.size(), 257U);
  EXPECT_EQ(inbox.messages.back(), "held");
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(tx.send(bytes_of("again"), 1'000'000'000), Status::kOk);
    if (i % 3 == 0) (void)device_.process();  // also publishes
    pump();
  }
  device_.flush();
  pump();
  EXPECT_EQ(inbox.messages.size(), 1257U);
}

TEST_F(Loopback, SingleThreadedBurstsNeverStrandMessagesOnASmallRing) {
  layout(8);  // fewer buffers than a burst
  auto drv = config(Role::kDriver);
  auto dev = config(Role::kDevice);
  drv.single_threaded = true;
  dev.single_threaded = true;
  start(drv, dev);
  Inbox inbox;
  Endpoint rx, tx;
  ASSERT_EQ(driver_.create_endpoint(rx, "", 0x500, kAddrAny, inbox.receiver()), Status::kOk);
  ASSERT_EQ(device_.create_endpoint(tx, "", kAddrAny, 0x500, nullptr), Status::kOk);
  for (int i = 0; i < 100; ++i) {
    while (tx.try_send(bytes_of("m")) == Status::kWouldBlock) pump();  // running out flushes the burst
  }
  device_.flush();
  pump();
  EXPECT_EQ(inbox.messages.size(), 100U);
}

TEST_F(Loopback, PollingPeersPublishInBurstsFlushedByProcess) {
  layout();
  auto drv = config(Role::kDriver);
  auto dev = config(Role::kDevice);
  drv.notify_peer = false;  // both sides poll: no kicks at all
  dev.notify_peer = false;
  start(drv, dev);
  Inbox inbox;
  Endpoint rx, tx;
  ASSERT_EQ(driver_.create_endpoint(rx, "", 0x500, kAddrAny, inbox.receiver()), Status::kOk);
  ASSERT_EQ(device_.create_endpoint(tx, "", kAddrAny, 0x500, nullptr), Status::kOk);
  EXPECT_EQ(to_driver_.total.load() + to_device_.total.load(), 0) << "polling peers are never kicked";
  ASSERT_EQ(tx.send(bytes_of("one")), Status::kOk);
  ASSERT_EQ(driver_.process(), Status::kOk);
  EXPECT_TRUE(inbox.messages.empty()) << "held back until the sender's side processes";
  ASSERT_EQ(device_.process(), Status::kOk);  // the sender's polling loop publishes it
  ASSERT_EQ(driver_.process(), Status::kOk);
  ASSERT_EQ(inbox.messages.size(), 1U);
  for (int i = 0; i < 16; ++i) ASSERT_EQ(tx.send(bytes_of("burst")), Status::kOk);  // a full burst goes out
  ASSERT_EQ(driver_.process(), Status::kOk);
  EXPECT_EQ(inbox.messages.size(), 17U);
  EXPECT_EQ(to_driver_.total.load() + to_device_.total.load(), 0);
}

TEST_F(Loopback, WithoutEventIdxAndWithoutNameService) {
  layout(64, 0);  // the device offers nothing
  start(config(Role::kDriver), config(Role::kDevice));
  EXPECT_FALSE(driver_.name_service());
  EXPECT_FALSE(driver_.event_idx());
  Inbox inbox;
  Endpoint rx, tx;
  ASSERT_EQ(driver_.create_endpoint(rx, "named", 0x500, kAddrAny, inbox.receiver()), Status::kOk);
  ASSERT_EQ(device_.create_endpoint(tx, "named", kAddrAny, 0x500, nullptr), Status::kOk);
  pump();
  EXPECT_EQ(driver_.stats().rx_messages, 0U) << "no announcement without the NS feature";
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(tx.send(bytes_of("m")), Status::kOk);
    pump();
  }
  EXPECT_EQ(inbox.messages.size(), 200U);
}

TEST_F(Loopback, ManyConcurrentSenders) {
  start();
  std::atomic<int> received{0};
  Endpoint rx;
  ASSERT_EQ(driver_.create_endpoint(rx, "", 0x500, kAddrAny, [&](Endpoint&, const Message&) { ++received; }),
            Status::kOk);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::unique_ptr<Endpoint>> eps;
  for (int t = 0; t < kThreads; ++t) {
    eps.push_back(std::make_unique<Endpoint>());
    ASSERT_EQ(device_.create_endpoint(*eps.back(), "", kAddrAny, 0x500, nullptr), Status::kOk);
  }
  std::atomic<bool> done{false};
  // Each side processes on its own thread when notified.
  std::thread drv([&] {
    while (!done) {
      if (to_driver_.pending.exchange(0) != 0) {
        ASSERT_EQ(driver_.process(), Status::kOk);
      }
      std::this_thread::yield();
    }
  });
  std::thread dev([&] {
    while (!done) {
      if (to_device_.pending.exchange(0) != 0) {
        ASSERT_EQ(device_.process(), Status::kOk);
      }
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_EQ(eps[static_cast<std::size_t>(t)]->send(bytes_of("concurrent"), 10'000'000'000),
                  Status::kOk);
      }
    });
  }
  for (auto& s : senders) s.join();
  while (received.load() < kThreads * kPerThread) std::this_thread::yield();
  done = true;
  drv.join();
  dev.join();
  EXPECT_EQ(received.load(), kThreads * kPerThread);
  EXPECT_EQ(device_.stats().tx_messages, static_cast<std::uint64_t>(kThreads * kPerThread));
}

// ---- Malformed values from the peer --------------------------------------------------------------------

class Malformed : public Loopback {
 protected:
  void SetUp() override {
    start();
    ASSERT_EQ(driver_.create_endpoint(rx_, "", 0x500, kAddrAny, inbox_.receiver()), Status::kOk);
    ASSERT_EQ(device_.create_endpoint(tx_, "", kAddrAny, 0x500, nullptr), Status::kOk);
  }
  /// The driver's n-th receive buffer (where the device's n-th message lands).
  std::byte* rx_buffer(int n) { return at(kPool + static_cast<std::size_t>(n) * 512); }
  Inbox inbox_;
  Endpoint rx_, tx_;
};

TEST_F(Malformed, HeaderLengthLargerThanTheBuffer) {
  ASSERT_EQ(tx_.send(bytes_of("victim")), Status::kOk);
  const std::uint16_t huge = 600;
  std::memcpy(rx_buffer(0) + 12, &huge, 2);
  pump();
  EXPECT_EQ(inbox_.messages.size(), 0U);
  EXPECT_EQ(driver_.stats().rx_malformed, 1U);
  // The buffer went back and traffic goes on.
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(tx_.send(bytes_of("after")), Status::kOk) << i;
    pump();
  }
  EXPECT_EQ(inbox_.messages.size(), 300U);
}

TEST_F(Malformed, HeaderLengthLargerThanWhatWasWritten) {
  ASSERT_EQ(tx_.send(bytes_of("abc")), Status::kOk);
  const std::uint16_t len = 100;  // fits the buffer, but the used length says 19 bytes were written
  std::memcpy(rx_buffer(0) + 12, &len, 2);
  pump();
  EXPECT_EQ(inbox_.messages.size(), 0U);
  EXPECT_EQ(driver_.stats().rx_malformed, 1U);
}

TEST_F(Malformed, NameServiceNameWithoutTerminator) {
  int handler_calls = 0;
  driver_.set_name_service_handler([&](Device&, std::string_view, std::uint32_t) { ++handler_calls; });
  Endpoint svc;
  ASSERT_EQ(device_.create_endpoint(svc, "svc", kAddrAny, kAddrAny, nullptr), Status::kOk);
  std::memset(rx_buffer(0) + kHeaderSize, 'A', kNameSize);
  pump();
  EXPECT_EQ(handler_calls, 0);
  EXPECT_EQ(driver_.stats().rx_malformed, 1U);
}

TEST_F(Malformed, NameServiceMessageOfTheWrongSize) {
  int handler_calls = 0;
  driver_.set_name_service_handler([&](Device&, std::string_view, std::uint32_t) { ++handler_calls; });
  ASSERT_EQ(tx_.send_to(kNsAddress, bytes_of("short")), Status::kOk);
  pump();
  EXPECT_EQ(handler_calls, 0);
  EXPECT_EQ(driver_.stats().rx_malformed, 1U);
}

// The faults tests/kernel/fault_remote.cpp makes the Linux kernel see, made here for amp's driver role (the
// kernel's role): the kernel's complaint about each (kernel.faults) is the oracle for amp's own check.
TEST_F(Malformed, WhatLinuxCallsAMalformedNameServiceMessageAmpDropsToo) {
  int handler_calls = 0;
  driver_.set_name_service_handler([&](Device&, std::string_view, std::uint32_t) { ++handler_calls; });
  std::byte ns[kNsMessageSize + 1] = {};
  ASSERT_EQ(encode_ns("amp-fault", 0x400, kNsCreate, std::span(ns).first<kNsMessageSize>()), Status::kOk);
  // "malformed ns msg (39)", "(41)"
  ASSERT_EQ(tx_.send_to(kNsAddress, std::span(ns).first(39)), Status::kOk);
  ASSERT_EQ(tx_.send_to(kNsAddress, std::span(ns)), Status::kOk);
  // Linux takes this one ("creating channel amp-fault-any addr 0xffffffff"), amp does not.
  ASSERT_EQ(encode_ns("amp-fault-any", kAddrAny, kNsCreate, std::span(ns).first<kNsMessageSize>()),
            Status::kOk);
  ASSERT_EQ(tx_.send_to(kNsAddress, std::span(ns).first(kNsMessageSize)), Status::kOk);
  pump();
  EXPECT_EQ(handler_calls, 0);
  EXPECT_EQ(driver_.stats().rx_malformed, 3U);
  EXPECT_EQ(inbox_.messages.size(), 0U);
}

TEST_F(Malformed, WhatLinuxReceivesWithNoRecipientAmpCountsAsUnroutable) {
  Endpoint stray;  // "msg received with no recipient"
  ASSERT_EQ(device_.create_endpoint(stray, "", kAddrAny, 0x7777, nullptr), Status::kOk);
  ASSERT_EQ(stray.send(bytes_of("to nobody")), Status::kOk);
  pump();
  EXPECT_EQ(driver_.stats().rx_unroutable, 1U);
  EXPECT_EQ(driver_.stats().rx_malformed, 0U);
}

TEST_F(Malformed, AWithdrawalOfWhatWasNeverAnnouncedUnbindsNothing) {
  // "rpmsg_destroy_channel failed: -22" in Linux; amp keeps every binding and counts no error.
  std::byte ns[kNsMessageSize] = {};
  ASSERT_EQ(encode_ns("amp-never-announced", 0x9999, kNsDestroy, ns), Status::kOk);
  ASSERT_EQ(tx_.send_to(kNsAddress, ns), Status::kOk);
  ASSERT_EQ(tx_.send(bytes_of("still bound")), Status::kOk);
  pump();
  EXPECT_EQ(tx_.remote_address(), 0x500U);
  EXPECT_EQ(rx_.remote_address(), tx_.address());  // bound by the message that came after
  EXPECT_EQ(driver_.stats().rx_malformed, 0U);
  ASSERT_EQ(inbox_.messages.size(), 1U);
}

TEST_F(Malformed, UsedLengthBeyondTheBufferBreaksTheDevice) {
  ASSERT_EQ(tx_.send(bytes_of("x")), Status::kOk);
  // vring0's used element 0: claim 4096 bytes were written into a 512-byte buffer.
  auto layout = *virtio::RingLayout::compute(256, 0x1000);
  const std::uint32_t big = 4096;
  std::memcpy(at(kRing0 + layout.used_entry(0) + 4), &big, 4);
  EXPECT_EQ(driver_.process(), Status::kBroken);
  EXPECT_EQ(driver_.fault(), virtio::Fault::kUsedLengthTooLarge);
  EXPECT_EQ(inbox_.messages.size(), 0U);
  EXPECT_EQ(driver_.process(), Status::kBroken);
}

TEST_F(Malformed, DeviceGivenAReadOnlyBufferToWriteInto) {
  // Corrupt the driver's first free receive descriptor: mark it read-only.
  std::uint16_t flags = 0;
  std::memcpy(at(kRing0 + 12), &flags, 2);
  EXPECT_EQ(tx_.try_send(bytes_of("x")), Status::kBroken);
  EXPECT_EQ(device_.fault(), virtio::Fault::kBadBuffer);
}

TEST_F(Malformed, DescriptorPointingOutsideTheSharedMemory) {
  const std::uint64_t outside = kShmSize + 0x1000;
  std::memcpy(at(kRing0), &outside, 8);
  EXPECT_EQ(tx_.try_send(bytes_of("x")), Status::kBroken);
  EXPECT_EQ(device_.fault(), virtio::Fault::kDescriptorAddress);
}

}  // namespace
}  // namespace amp::rpmsg
