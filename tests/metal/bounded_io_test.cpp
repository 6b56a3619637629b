// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/bounded_io.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
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
  // A limit that runs out before the call starts to block: the watchdog signals the thread at every tick
  // while the call is in progress, so one signal that came too early does not leave it blocked for ever.
  UniqueFd fd = blocking_full_eventfd();
  const std::uint64_t one = 1;
  for (int i = 0; i < 20; ++i) {
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

/// The watchdog thread's voluntary context switches (one per tick while it runs), or -1 if not found.
long watchdog_switches() {
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(t.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name != "amp-io-watch") continue;
    std::ifstream status(t.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return std::stol(line.substr(24));
    }
  }
  return -1;
}

TEST(BoundedIo, TheWatchdogSleepsWhenNoCallIsMade) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const std::uint64_t one = 1;
  // Calls keep it looking (a tick every 50 ms)...
  ASSERT_EQ(bounded_write(fd.get(), &one, sizeof one, 50ms), 8);
  const long before = watchdog_switches();
  ASSERT_GE(before, 0) << "no amp-io-watch thread";
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(bounded_write(fd.get(), &one, sizeof one, 50ms), 8);
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_GE(watchdog_switches() - before, 4);
  // ...and 200 ms after the last one it sleeps until the next: idle is 0% CPU.
  std::this_thread::sleep_for(1000ms);
  const long idle = watchdog_switches();
  std::this_thread::sleep_for(500ms);
  EXPECT_LE(watchdog_switches() - idle, 1) << "it kept ticking with nothing to watch";
  // The next call wakes it, and is bounded again.
  UniqueFd stuck = blocking_full_eventfd();
  EXPECT_EQ(bounded_write(stuck.get(), &one, sizeof one, 20ms), -1);
  EXPECT_EQ(errno, ETIMEDOUT);
}

/// Waits (up to 5 s) until this process's watchdog thread sleeps in its idle futex wait, past its start-up.
/// A fork while a thread is starting can copy an allocator lock that thread holds into the child (glibc's
/// malloc takes care of that at fork, ASan's allocator in GCC 12 does not): the child's own watchdog
/// thread then waits on it for ever.
bool watchdog_asleep() {
  namespace fs = std::filesystem;
  for (int i = 0; i < 500; ++i) {
    for (const auto& task : fs::directory_iterator("/proc/self/task")) {
      std::string comm, wchan;
      std::getline(std::ifstream(task.path() / "comm"), comm);
      std::getline(std::ifstream(task.path() / "wchan"), wchan);
      if (comm == "amp-io-watch" && wchan.find("futex") != std::string::npos) return true;
    }
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST(BoundedIo, AForkedChildIsBoundedToo) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "ThreadSanitizer cannot start threads in the child of a multi-threaded fork (the other "
                  "builds run this test)";
#endif
  UniqueFd warm(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const std::uint64_t one = 1;
  ASSERT_EQ(bounded_write(warm.get(), &one, sizeof one, 50ms), 8);  // the parent's watchdog runs
  ASSERT_TRUE(watchdog_asleep()) << "the watchdog thread did not go idle within 5 s";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    UniqueFd fd = blocking_full_eventfd();
    const ssize_t rc = bounded_write(fd.get(), &one, sizeof one, 20ms);
    ::_exit(rc == -1 && errno == ETIMEDOUT ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);  // a child whose write stayed blocked would hang here
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
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
