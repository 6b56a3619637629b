// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/event_fd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

namespace amp::metal {
namespace {

TEST(EventFd, SignalsAddUpAndConsumeResets) {
  auto e = EventFd::create();
  ASSERT_TRUE(e) << e.error().what();
  EXPECT_EQ(e->signal(), Status::kOk);
  EXPECT_EQ(e->signal(2), Status::kOk);
  EXPECT_EQ(e->signal(40), Status::kOk);
  auto c = e->consume();
  ASSERT_TRUE(c) << c.error().what();
  EXPECT_EQ(*c, 43U);
  auto again = e->consume();
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0U);
}

TEST(EventFd, ConsumeOfNothingReturnsZeroWithoutBlocking) {
  auto e = EventFd::create();
  ASSERT_TRUE(e);
  // If consume() blocked, this test would hang (and hit the ctest timeout) instead of passing.
  auto c = e->consume();
  ASSERT_TRUE(c) << c.error().what();
  EXPECT_EQ(*c, 0U);
  EXPECT_NE(::fcntl(e->fd(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(e->fd(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(EventFd, InitialValueIsPending) {
  auto small = EventFd::create(5);
  ASSERT_TRUE(small);
  EXPECT_EQ(small->consume().value(), 5U);
  // Larger than eventfd(2)'s unsigned int argument.
  const std::uint64_t big = (std::uint64_t{1} << 40) + 3;
  auto large = EventFd::create(big);
  ASSERT_TRUE(large) << large.error().what();
  EXPECT_EQ(large->consume().value(), big);
}

TEST(EventFd, SignalMakesTheDescriptorReadable) {
  auto e = EventFd::create();
  ASSERT_TRUE(e);
  pollfd p{e->fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
  ASSERT_EQ(e->signal(), Status::kOk);
  EXPECT_EQ(::poll(&p, 1, 0), 1);
  EXPECT_EQ(e->consume().value(), 1U);
  EXPECT_EQ(::poll(&p, 1, 0), 0);
}

TEST(EventFd, OverflowingTheCounterWouldBlock) {
  auto e = EventFd::create();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->signal(0xFFFFFFFFFFFFFFFEULL), Status::kOk);
  EXPECT_EQ(e->signal(1), Status::kWouldBlock);
  EXPECT_EQ(e->signal(~std::uint64_t{0}), Status::kInvalidArgument);
  EXPECT_EQ(e->consume().value(), 0xFFFFFFFFFFFFFFFEULL);
}

TEST(EventFd, AdoptTakesAnEventfdAndMakesItNonBlocking) {
  const int raw = ::eventfd(7, 0);  // blocking, no cloexec, as another process might have made it
  ASSERT_GE(raw, 0);
  auto e = EventFd::adopt(UniqueFd(raw));
  ASSERT_TRUE(e) << e.error().what();
  EXPECT_EQ(e->fd(), raw);
  EXPECT_NE(::fcntl(raw, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(raw, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(e->consume().value(), 7U);
  EXPECT_EQ(e->consume().value(), 0U);  // would hang if still blocking
}

TEST(EventFd, AdoptRefusesOtherFilesAndClosesThem) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ::close(p[1]);
  auto e = EventFd::adopt(UniqueFd(p[0]));
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().status, Status::kInvalidArgument);
  EXPECT_NE(e.error().what().find("not an eventfd"), std::string::npos) << e.error().what();
  // adopt() owned it, so it is closed now.
  EXPECT_EQ(::fcntl(p[0], F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);

  const int dev_null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  ASSERT_GE(dev_null, 0);
  auto n = EventFd::adopt(UniqueFd(dev_null));
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().status, Status::kInvalidArgument);
  EXPECT_NE(n.error().what().find("/dev/null"), std::string::npos) << n.error().what();

  auto bad = EventFd::adopt(UniqueFd());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, Status::kInvalidArgument);
}

TEST(EventFd, MoveTransfersOwnership) {
  auto e = EventFd::create();
  ASSERT_TRUE(e);
  const int fd = e->fd();
  EventFd moved = std::move(*e);
  EXPECT_EQ(moved.fd(), fd);
  EXPECT_EQ(e->fd(), -1);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_EQ(moved.signal(), Status::kOk);
  EXPECT_EQ(moved.consume().value(), 1U);
}

TEST(EventFd, ConcurrentSignalsAreAllCounted) {
  auto e = EventFd::create();
  ASSERT_TRUE(e);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::uint64_t consumed = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) ASSERT_EQ(e->signal(), Status::kOk);
    });
  }
  // Consume concurrently with the signallers.
  for (int i = 0; i < 1000; ++i) consumed += e->consume().value();
  for (auto& t : threads) t.join();
  consumed += e->consume().value();
  EXPECT_EQ(consumed, std::uint64_t{kThreads} * kPerThread);
}

}  // namespace
}  // namespace amp::metal
