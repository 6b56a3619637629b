// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rpmsg/linux/channel.hpp"

#include <poll.h>

#include <gtest/gtest.h>

#include <thread>

#include "amp/metal/time.hpp"
#include "loopback_fixture.hpp"

namespace amp::rpmsg {
namespace {

using testing::bytes_of;
using testing::Loopback;

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

class ChannelTest : public Loopback {
 protected:
  void SetUp() override {
    start();
    auto ch = Channel::open(driver_, "chan", 0x500, kAddrAny);
    ASSERT_TRUE(ch) << ch.error().message;
    ch_ = std::move(*ch);
    ASSERT_EQ(device_.create_endpoint(peer_, "", kAddrAny, 0x500, nullptr), Status::kOk);
  }
  std::unique_ptr<Channel> ch_;
  Endpoint peer_;
};

TEST_F(ChannelTest, OneMessagePerReadAndReadiness) {
  std::array<std::byte, 496> buf{};
  EXPECT_FALSE(readable(ch_->fd()));
  EXPECT_EQ(ch_->read(buf).error(), Status::kWouldBlock);
  ASSERT_EQ(peer_.send(bytes_of("first")), Status::kOk);
  ASSERT_EQ(peer_.send(bytes_of("second!")), Status::kOk);
  pump();
  EXPECT_TRUE(readable(ch_->fd()));
  EXPECT_EQ(*ch_->peek_size(), 5U);
  auto n = ch_->read(buf);
  ASSERT_TRUE(n);
  EXPECT_EQ(testing::string_of(std::span(buf).first(*n)), "first");
  EXPECT_TRUE(readable(ch_->fd())) << "one more is queued";
  n = ch_->read(buf);
  ASSERT_TRUE(n);
  EXPECT_EQ(testing::string_of(std::span(buf).first(*n)), "second!");
  EXPECT_FALSE(readable(ch_->fd()));
  EXPECT_EQ(ch_->read(buf).error(), Status::kWouldBlock);
}

TEST_F(ChannelTest, SmallBufferIsAnErrorNotATruncation) {
  ASSERT_EQ(peer_.send(bytes_of("twelve bytes")), Status::kOk);
  pump();
  std::array<std::byte, 4> small{};
  EXPECT_EQ(ch_->read(small).error(), Status::kTooLarge);
  std::array<std::byte, 12> exact{};
  auto n = ch_->read(exact);
  ASSERT_TRUE(n) << "the message was kept";
  EXPECT_EQ(*n, 12U);
}

TEST_F(ChannelTest, WritesGoToTheBoundPeer) {
  Endpoint listener;
  std::string got;
  peer_.destroy();
  ASSERT_EQ(device_.create_endpoint(listener, "", 0x600, kAddrAny,
                                    [&](Endpoint& ep, const Message& m) {
                                      got = testing::string_of(m.payload);
                                      (void)ep.send(bytes_of("hello channel"));
                                    }),
            Status::kOk);
  EXPECT_EQ(ch_->write(bytes_of("x")), Status::kNotFound) << "not bound yet";
  ASSERT_EQ(ch_->endpoint().send_to(0x600, bytes_of("hi")), Status::kOk);
  pump();
  EXPECT_EQ(got, "hi");
  std::array<std::byte, 64> buf{};
  auto n = ch_->read(buf);
  ASSERT_TRUE(n);
  EXPECT_EQ(ch_->endpoint().remote_address(), 0x600U) << "bound by the first message";
  EXPECT_EQ(ch_->write(bytes_of("again")), Status::kOk);
}

TEST_F(ChannelTest, PeerGoneIsAClearErrorAfterTheQueueDrains) {
  ASSERT_EQ(peer_.send(bytes_of("last words")), Status::kOk);
  pump();
  driver_.stop();  // the link went down
  EXPECT_TRUE(readable(ch_->fd()));
  std::array<std::byte, 64> buf{};
  EXPECT_TRUE(ch_->read(buf)) << "what arrived before is still readable";
  EXPECT_EQ(ch_->read(buf).error(), Status::kClosed);
  EXPECT_TRUE(readable(ch_->fd())) << "stays readable so a poller notices";
  EXPECT_TRUE(ch_->peer_gone());
}

TEST_F(ChannelTest, UnreadMessagesHoldTheirBuffers) {
  int sent = 0;
  while (peer_.try_send(bytes_of("fill")) == Status::kOk) {
    ++sent;
    pump();
  }
  EXPECT_EQ(sent, 256) << "backpressure: every receive buffer is queued in the channel";
  std::array<std::byte, 16> buf{};
  ASSERT_TRUE(ch_->read(buf));
  pump();
  EXPECT_EQ(peer_.try_send(bytes_of("room for one")), Status::kOk);
}

TEST_F(ChannelTest, BlockingReadWithTimeout) {
  std::array<std::byte, 64> buf{};
  EXPECT_EQ(ch_->read(buf, std::chrono::milliseconds(10)).error(), Status::kTimeout);
  std::thread t([&] {
    metal::sleep_ns(5'000'000);
    ASSERT_EQ(peer_.send(bytes_of("late")), Status::kOk);
    pump();
  });
  auto n = ch_->read(buf, std::chrono::milliseconds(5000));
  t.join();
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 4U);
}

}  // namespace
}  // namespace amp::rpmsg
