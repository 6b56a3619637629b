// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/bounded_io.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <thread>

#include "amp/metal/linux/event_fd.hpp"

namespace amp::metal {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// An eventfd as a peer would leave it: blocking, its counter at the maximum (a write of 1 blocks).
UniqueFd blocking_full_eventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC));  // no EFD_NONBLOCK: what the peer's fcntl would leave
  const std::uint64_t most = 0xfffffffffffffffeULL;
  EXPECT_EQ(::write(fd.get(), &most, sizeof most), 8);
  return fd;
}

TEST(BoundedIo, AWriteThatWouldBlockForEverFailsAfterTheLimit) {
  ASSERT_TRUE(bounded_io_guarded());
  UniqueFd fd = blocking_full_eventfd();
  const std::uint64_t one = 1;
  const auto t0 = Clock::now();
  const ssize_t rc = bounded_write(fd.get(), &one, sizeof one, 50ms);
  const int err = errno;
  const auto took = Clock::now() - t0;
  EXPECT_EQ(rc, -1);
  EXPECT_EQ(err, ETIMEDOUT);
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, 5s) << "the write was not interrupted";
}

TEST(BoundedIo, EvenTinyLimitsBound) {
  // A limit that can run out before the call starts to block: the timer fires again every millisecond, so
  // the call is interrupted all the same (a one-shot timer left it blocked for ever).
  UniqueFd fd = blocking_full_eventfd();
  const std::uint64_t one = 1;
  for (int i = 0; i < 200; ++i) {
    const auto limit = std::chrono::nanoseconds(1 + (i % 10) * 1000);
    EXPECT_EQ(bounded_write(fd.get(), &one, sizeof one, limit), -1) << i;
    EXPECT_EQ(errno, ETIMEDOUT) << i;
  }
  // A limit of 0 still tries the call once.
  UniqueFd ok_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  EXPECT_EQ(bounded_write(ok_fd.get(), &one, sizeof one, std::chrono::nanoseconds(0)), 8);
}

TEST(BoundedIo, ReadNowaitNeverWaitsWhateverTheFlags) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC));  // blocking and empty
  std::uint64_t v = 0;
  const auto t0 = Clock::now();
  EXPECT_EQ(read_nowait(fd.get(), &v, sizeof v, 5s), -1);
  EXPECT_TRUE(errno == EAGAIN || errno == ETIMEDOUT) << errno;
  EXPECT_LT(Clock::now() - t0, 4s);
  const std::uint64_t two = 2;
  ASSERT_EQ(::write(fd.get(), &two, sizeof two), 8);
  ASSERT_EQ(read_nowait(fd.get(), &v, sizeof v, 5s), 8);
  EXPECT_EQ(v, 2U);
}

TEST(BoundedIo, AReadThatWouldBlockForEverFailsAfterTheLimit) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC));  // blocking and empty
  std::uint64_t v = 0;
  EXPECT_EQ(bounded_read(fd.get(), &v, sizeof v, 50ms), -1);
  EXPECT_EQ(errno, ETIMEDOUT);
}

TEST(BoundedIo, CallsThatDoNotBlockAreUntouched) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const std::uint64_t three = 3;
  ASSERT_EQ(bounded_write(fd.get(), &three, sizeof three, 50ms), 8);
  std::uint64_t v = 0;
  ASSERT_EQ(bounded_read(fd.get(), &v, sizeof v, 50ms), 8);
  EXPECT_EQ(v, 3U);
  EXPECT_EQ(bounded_read(fd.get(), &v, sizeof v, 50ms), -1);
  EXPECT_EQ(errno, EAGAIN);  // empty and non-blocking: at once, not a timeout
  // A blocking call that completes within the limit is not cut short.
  UniqueFd slow(::eventfd(0, EFD_CLOEXEC));
  std::thread later([&] {
    std::this_thread::sleep_for(20ms);
    const std::uint64_t one = 1;
    (void)!::write(slow.get(), &one, sizeof one);
  });
  EXPECT_EQ(bounded_read(slow.get(), &v, sizeof v, 5s), 8);
  later.join();
}

TEST(BoundedIo, EveryThreadIsGuarded) {
  bool guarded = false;
  std::thread t([&] {
    guarded = bounded_io_guarded();
    UniqueFd fd = blocking_full_eventfd();
    const std::uint64_t one = 1;
    EXPECT_EQ(bounded_write(fd.get(), &one, sizeof one, 20ms), -1);
  });
  t.join();
  EXPECT_TRUE(guarded);
}

TEST(EventFdInterference, APeerThatClearsNonBlockAndFillsTheCounterCannotBlockSignal) {
  // The peer holds the same open file (passed over a socket): clearing O_NONBLOCK on its descriptor
  // clears ours.
  auto e = EventFd::create();
  ASSERT_TRUE(e);
  UniqueFd peer(::fcntl(e->fd(), F_DUPFD_CLOEXEC, 0));
  ASSERT_GE(::fcntl(peer.get(), F_SETFL, 0), 0);
  const std::uint64_t most = 0xfffffffffffffffeULL;
  ASSERT_EQ(::write(peer.get(), &most, sizeof most), 8);
  EXPECT_EQ(e->signal(), Status::kBroken);
  // And one that took the count first cannot block consume().
  std::uint64_t v = 0;
  ASSERT_EQ(::read(peer.get(), &v, sizeof v), 8);
  auto c = e->consume();
  ASSERT_TRUE(c) << "consume() must come back at once with nothing, not block";
  EXPECT_EQ(*c, 0U);
}

TEST(EventFdInterference, ASemaphoreEventfdIsNotADoorbell) {
  // One write of 2^64-2 would hand out 2^64-2 readable wake-ups, one per read: a loop spinning for ever.
  UniqueFd sem(::eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE));
  auto e = EventFd::adopt(std::move(sem));
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("semaphore"), std::string::npos) << e.error().message;
  auto plain = EventFd::adopt(UniqueFd(::eventfd(0, EFD_CLOEXEC)));
  EXPECT_TRUE(plain) << plain.error().message;
}

TEST(EventFdInterference, APrivateEventfdSignalsWithAPlainWrite) {
  auto p = EventFd::create_private();
  ASSERT_TRUE(p);
  ASSERT_EQ(p->signal(5), Status::kOk);
  auto n = p->consume();
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 5U);
}

}  // namespace
}  // namespace amp::metal
